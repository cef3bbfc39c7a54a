"""The micro world's parts: palette, colour space, backgrounds, lights, camera placement, arm, objects."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from handsynth.pinhole import intrinsics, project
from handsynth.render.scene import vertex_normals
from handsynth.world import backgrounds, camera, captions, degrade, forearm, lighting, objects, skin


def test_monk_palette_is_the_published_scale():
    assert len(skin.MONK_SKIN_TONES) == 10
    assert np.allclose(skin.tone_rgb(1) * 255, [0xF6, 0xED, 0xE4])
    assert np.allclose(skin.tone_rgb(10) * 255, [0x29, 0x24, 0x20])
    lum = [skin.tone_rgb(t) @ [0.2126, 0.7152, 0.0722] for t in range(1, 11)]
    assert all(a > b for a, b in zip(lum[2:], lum[3:]))  # MST-3 .. 10 get darker monotonically
    with pytest.raises(ValueError):
        skin.tone_rgb(11)


def test_srgb_round_trip_matches_the_standard():
    c = np.linspace(0, 1, 101)
    assert np.allclose(skin.linear_to_srgb(skin.srgb_to_linear(c)), c, atol=1e-9)
    assert skin.srgb_to_linear(np.array([0.5]))[0] == pytest.approx(0.214041, abs=1e-5)  # IEC 61966-2-1


@pytest.mark.parametrize("name", list(backgrounds.PROCEDURAL))
def test_procedural_backgrounds(name):
    bg = backgrounds.PROCEDURAL[name](np.random.default_rng(0), 64)
    assert bg.image.shape == (64, 64, 3) and bg.image.dtype == np.uint8
    assert bg.image.std() > 3  # a texture, not a flat fill
    assert bg.phrase.split()[0] in ("in", "on", "over", "above", "against")
    again = backgrounds.PROCEDURAL[name](np.random.default_rng(0), 64)
    assert np.array_equal(bg.image, again.image)


def test_natural_backgrounds_come_from_scikit_image():
    names = backgrounds.available_natural()
    assert len(names) >= 5  # the wheel ships these, no download
    bg = backgrounds.natural(np.random.default_rng(1), 64, names[0])
    assert bg.kind == "natural" and bg.image.shape == (64, 64, 3)


def test_lab_background_is_dark_and_near_uniform():
    bg = backgrounds.lab_background(np.random.default_rng(0), 64)
    assert bg.image.mean() < 35 and bg.image.std() < 6


def test_kelvin_colours_run_from_warm_to_cool():
    warm, cool = lighting.kelvin_rgb(2700), lighting.kelvin_rgb(9000)
    assert warm[0] > warm[2] and cool[2] > cool[0]
    assert np.allclose(lighting.kelvin_rgb(6600), 1.0, atol=0.03)  # about white


def test_shading_is_lambert_in_linear_light():
    albedo = np.full((3, 3), 0.5)
    normals = np.array([[0, 0, -1.0], [0, 0, 1.0], [0, -np.sqrt(0.5), -np.sqrt(0.5)]])
    verts = np.array([[0, 0, 1.0]] * 3)
    light = lighting.Lighting(
        ambient=np.full(3, 0.1), lights=[lighting.Light(np.array([0, 0, 1.0]), np.ones(3), 0.8)]
    )
    out = skin.srgb_to_linear(lighting.shade(albedo, verts, normals, light))  # albedo is linear
    a = 0.5
    assert np.allclose(out[0], a * 0.9, atol=1e-5)  # facing the light
    assert np.allclose(out[1], a * 0.1, atol=1e-5)  # facing away: ambient only
    assert np.allclose(out[2], a * (0.1 + 0.8 * np.sqrt(0.5)), atol=1e-5)
    wrapped = skin.srgb_to_linear(lighting.shade(albedo, verts, normals, light, wrap=(0.5, 0.0, 0.0)))
    assert wrapped[1, 0] == pytest.approx(out[1, 0], abs=1e-5)  # wrap never lights the exact back
    assert wrapped[2, 0] > out[2, 0] and wrapped[2, 1] == pytest.approx(out[2, 1], abs=1e-5)


def test_lab_lighting_is_fixed_and_wild_varies():
    a, b = (
        lighting.sample_lighting("lab", np.random.default_rng(0)),
        lighting.sample_lighting("lab", np.random.default_rng(1)),
    )
    assert a.to_dict() == b.to_dict()
    w = [lighting.sample_lighting("wild", np.random.default_rng(i)).to_dict() for i in range(5)]
    assert len({str(x) for x in w}) == 5


def test_rotation_helpers():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.normal(size=3), rng.normal(size=3)
        R = camera.rotation_between(a, b)
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-9) and np.linalg.det(R) == pytest.approx(1.0)
        assert np.allclose(R @ (a / np.linalg.norm(a)), b / np.linalg.norm(b), atol=1e-9)
    R = camera.rotation_between(np.array([0, 0, 1.0]), np.array([0, 0, -1.0]))
    assert np.allclose(R @ [0, 0, 1.0], [0, 0, -1.0])


@pytest.mark.parametrize("domain", ["lab", "wild"])
def test_arm_direction_never_points_much_at_the_camera(domain):
    rng = np.random.default_rng(0)
    d = np.array([camera.sample_arm_direction(domain, rng) for _ in range(500)])
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0)
    assert d[:, 2].min() >= -0.3 - 1e-9
    if domain == "wild":
        assert (d[:, 1] > 0).mean() > 0.7  # mostly from below (+y is down)


@pytest.mark.parametrize("domain", ["lab", "wild"])
def test_place_hand_hits_the_wanted_size_inside_the_frame(domain):
    rng = np.random.default_rng(3)
    blob = rng.normal(size=(3000, 3)) * [0.04, 0.08, 0.02]  # a hand-sized point cloud
    for _ in range(10):
        framing = camera.sample_framing(domain, rng, 128)
        t = camera.place_hand(blob, framing, 128)
        uv = project(blob + t, framing.K)
        lo, hi = uv.min(0), uv.max(0)
        assert lo.min() >= 0 and hi.max() <= 128
        assert np.max(hi - lo) / 128 == pytest.approx(framing.hand_fraction, rel=0.06)


def test_place_hand_keeps_the_wanted_centre_when_it_fits():
    blob = np.random.default_rng(0).normal(size=(2000, 3)) * 0.03
    framing = camera.Framing(intrinsics(128, 128, 50.0), 50.0, 0.3, (40.0, 70.0))
    uv = project(blob + camera.place_hand(blob, framing, 128), framing.K)
    assert np.allclose(0.5 * (uv.min(0) + uv.max(0)), [40.0, 70.0], atol=0.5)


def _fake_hand():
    """A box 'palm' with OpenPose-like joints: wrist at the origin, fingers along -y, palm facing +z."""
    j = np.zeros((21, 3))
    for f, x in enumerate([0.03, 0.02, 0.0, -0.02, -0.035]):
        for k in range(4):
            j[1 + 4 * f + k] = [x, -0.08 - 0.02 * k, 0.0]
    j[0] = [0.0, 0.0, 0.0]
    box = np.random.default_rng(0).uniform([-0.04, -0.09, -0.012], [0.04, 0.01, 0.012], size=(500, 3))
    return box, j


def test_forearm_starts_in_the_wrist_and_runs_away_from_the_fingers():
    verts, j = _fake_hand()
    arm = forearm.make_forearm(verts, j, length=0.5, sleeve_start=0.2)
    d = forearm.arm_direction(j)
    assert np.allclose(d, [0, 1.0, 0], atol=0.05)
    s = (arm.vertices - j[0]) @ d
    assert s.min() < 0.0 and s.max() == pytest.approx(0.5 + s.min() + 0.0, abs=0.03)
    assert arm.sleeve.any() and not arm.sleeve.all()
    assert np.all(s[arm.sleeve] > s[~arm.sleeve].min())
    # Faces wind outwards: smooth normals point away from the arm's axis.
    n = vertex_normals(arm.vertices, arm.faces)
    radial = arm.vertices - j[0] - np.outer(s, d)
    mid = (s > 0.05) & (s < 0.45)
    assert np.mean(np.sum(n[mid] * radial[mid], axis=1) > 0) > 0.95


@pytest.mark.parametrize("name", list(objects.OBJECTS))
def test_objects_are_coloured_meshes_placed_on_the_palm_side(name):
    rng = np.random.default_rng(0)
    obj = objects.make_object(name, rng)
    assert obj.colors.shape == obj.vertices.shape and obj.faces.max() < len(obj.vertices)
    assert obj.color_name in objects.OBJECTS[name][1]
    assert 0.003 < obj.thickness < 0.06
    verts, j = _fake_hand()
    for side in ("right", "left"):
        placed = objects.place_in_hand(obj, j, side, rng)
        n = skin.palm_normal(j, side)
        palm = j[[0, 5, 9, 13, 17]].mean(0)
        assert (placed.mean(0) - palm) @ n > 0  # in front of the palm, not behind the hand


def test_grasp_curls_more_around_thin_objects():
    from handsynth.world.grasp import grip_curl

    assert grip_curl(0.006) > grip_curl(0.03) > grip_curl(0.045)


def test_extended_fingers_and_gesture_words():
    j = np.zeros((21, 3))
    j[0] = [0.04, -0.2, 0.0]  # wrist well below the knuckles: the palm continues into each finger
    for f in range(5):
        for k in range(4):
            j[1 + 4 * f + k] = [0.02 * f, 0.03 + 0.02 * k, 0.0]  # all straight
    assert all(captions.extended_fingers(j).values())
    assert captions.gesture(j)[1] == "open hand"

    def fold(joints, digits):
        out = joints.copy()
        for f in digits:  # 0 thumb .. 4 little: the tip folded back onto the base
            out[1 + 4 * f + 3] = out[1 + 4 * f]
        return out

    assert captions.gesture(fold(j, (2, 3, 4)))[1] == "pointing"  # index (+ thumb) out
    assert captions.gesture(fold(j, (0, 3, 4)))[1] == "peace sign"
    assert captions.gesture(fold(j, (1, 2, 3, 4)))[1] == "thumbs up"
    assert captions.gesture(fold(j, (0, 1, 2, 3, 4)))[1] == "fist"
    assert captions.gesture(fold(j, (0, 1, 4))) == ("showing two fingers", "two fingers")
    assert captions.gesture(fold(j, (0, 1, 2, 4))) == ("showing one finger", "one finger")
    # Folded at the knuckle but straight beyond it: not extended.
    knuckle = j.copy()
    knuckle[6:9] = knuckle[5] + np.array([0.0, 0.0, -1.0]) * (0.02 * np.arange(1, 4))[:, None]
    assert not captions.extended_fingers(knuckle)["index"] and captions.extended_fingers(knuckle)["middle"]


def test_captions_name_the_side_and_the_object():
    rng = np.random.default_rng(0)
    for _ in range(30):
        facts = captions.CaptionFacts("left", "making a fist", "in front of a brick wall", "cup", "red")
        text = captions.caption(facts, rng)
        assert "left hand" in text and "red cup" in text and "brick wall" in text
        facts = captions.CaptionFacts("right", "pointing with the index finger", "over gravel")
        text = captions.caption(facts, rng)
        assert "right hand" in text and "pointing" in text and "  " not in text


def test_jpeg_quality_controls_the_artefacts():
    img = backgrounds.brick_wall(np.random.default_rng(0), 96).image

    def err(q: int) -> float:
        back = np.asarray(Image.open(io.BytesIO(degrade.encode_jpeg(img, q))).convert("RGB"), np.float64)
        return float(np.abs(back - img).mean())

    assert err(30) > err(60) > err(95)
    assert degrade.encode_jpeg(img, 50) == degrade.encode_jpeg(img, 50)  # deterministic


def test_degradation_ranges_per_domain():
    lab = degrade.sample_degradation("lab", np.random.default_rng(0))
    assert lab.jpeg_quality == 95 and lab.blur_sigma == 0 and lab.background_blur == 0
    wild = [degrade.sample_degradation("wild", np.random.default_rng(i)) for i in range(30)]
    assert min(d.jpeg_quality for d in wild) < 60 and any(d.blur_sigma > 0 for d in wild)


def _palm_back_distance(contrast: str, tone: int) -> float:
    """sRGB distance (0..255 per channel) between the mean palm-side and back-side albedo of the world's
    right hand."""
    from handsynth.world.scene import WorldConfig, WorldGenerator

    layout = WorldGenerator(WorldConfig(domain="wild", size=64, maps=())).assets("right").layout
    rgb = skin.linear_to_srgb(skin.skin_albedo(layout, tone, np.random.default_rng(0), contrast)) * 255
    return float(np.linalg.norm(rgb[layout.palm > 0.9].mean(0) - rgb[layout.palm == 0].mean(0)))


@pytest.mark.parametrize("tone", [1, 2, 3, 6, 10])
def test_strong_palm_contrast_sets_palm_apart_from_back_for_every_tone(tone):
    strong, subtle = _palm_back_distance("strong", tone), _palm_back_distance("subtle", tone)
    assert strong > 15 and strong > subtle + 10
    if tone <= 2:  # the lightest tones: the subtle palm is almost the colour of the back
        assert subtle < 6


def test_palm_contrast_draws_the_same_random_numbers_and_refuses_unknown_names():
    from handsynth.errors import UserError
    from handsynth.world.config import WorldConfig

    layout = skin.skin_layout(*_tiny_hand())
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    skin.skin_albedo(layout, 5, a, "subtle"), skin.skin_albedo(layout, 5, b, "strong")
    assert a.random() == b.random()  # same draws: a world's other facts do not move with the knob
    with pytest.raises(ValueError, match="palm contrast"):
        skin.skin_albedo(layout, 5, a, "stark")
    with pytest.raises(UserError, match="palm contrast"):
        WorldConfig(palm_contrast="stark")


def _tiny_hand() -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """A 4-vertex stand-in mesh with OpenPose-21 joints (enough for skin_layout)."""
    v = np.array([[0, 0, 0], [0.01, 0, 0], [0, 0.01, 0], [0, 0, 0.01]], np.float64)
    f = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]], np.int64)
    j = np.zeros((21, 3))
    j[5], j[17] = [0.02, 0.08, 0], [-0.02, 0.07, 0]
    return v, f, j, "right"
