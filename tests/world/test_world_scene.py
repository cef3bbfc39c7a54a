"""World samples: exact labels, lab-vs-wild statistics as designed, captions true to the scene."""

from __future__ import annotations

import io
import os

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import numpy as np
import pytest
import torch
from PIL import Image

from handsynth.data import Sample
from handsynth.hand import load_hand_model
from handsynth.pinhole import project
from handsynth.render.scene import vertex_normals
from handsynth.world import WorldConfig, WorldGenerator

N = 10
SIZE = 64


def _generate(domain: str):
    gen = WorldGenerator(WorldConfig(domain=domain, size=SIZE, seed=7, maps=("mesh", "seg")))
    try:
        return [gen.generate(i) for i in range(N)]
    finally:
        gen.release()


@pytest.fixture(scope="module")
def lab():
    return _generate("lab")


@pytest.fixture(scope="module")
def wild():
    return _generate("wild")


@pytest.fixture(scope="module")
def models():
    return {s: load_hand_model("openhand", side=s).eval() for s in ("right", "left")}


def _both(lab, wild):
    return [("lab", s, f) for s, f in lab] + [("wild", s, f) for s, f in wild]


def test_records_round_trip_through_the_format(lab, wild):
    for _, s, files in _both(lab, wild):
        again = Sample.from_dict(s.to_dict(), "test")
        assert again.to_dict() == s.to_dict()
        assert s.file_name in files and s.file_name.endswith(".jpg")
        assert set(s.conditions) == {"mesh", "seg"} and all(p in files for p in s.conditions.values())
        assert s.local is not None and s.local.file_name in files
        assert s.source["generator"] == "handsynth world" and s.source["flat_hand_mean"] is False


def test_joints_are_the_hand_model_output_and_project_with_K(lab, wild, models):
    for _, s, _ in _both(lab, wild):
        h = s.hands[0]
        with torch.no_grad():
            out = models[h.side](
                *(
                    torch.tensor([v], dtype=torch.float32)
                    for v in (h.global_orient, h.hand_pose, h.betas, h.transl)
                )
            )
        assert np.allclose(out.joints[0].numpy(), h.joints_3d, atol=1e-6)
        assert np.allclose(project(np.array(h.joints_3d), np.array(s.K)), h.joints_2d, atol=1e-6)
        x, y, w, hh = h.bbox
        uv = np.array(h.joints_2d)
        assert np.all(uv >= [x - 1e-6, y - 1e-6]) and np.all(uv <= [x + w + 1e-6, y + hh + 1e-6])
        assert x >= 0 and y >= 0 and x + w <= SIZE and y + hh <= SIZE  # the whole hand is in frame


def test_seg_condition_is_the_hand_inside_its_box(lab, wild):
    for _, s, files in _both(lab, wild):
        seg = files[s.conditions["seg"]]
        label = 1 if s.hands[0].side == "right" else 2
        assert set(np.unique(seg)) <= {0, label}  # hand only: no forearm, no object in the labels
        ys, xs = np.nonzero(seg)
        assert len(xs) > 20
        x, y, w, h = s.hands[0].bbox
        assert xs.min() >= np.floor(x) - 1 and xs.max() <= np.ceil(x + w) and ys.min() >= np.floor(y) - 1
        assert ys.max() <= np.ceil(y + h)


def test_the_photo_shows_the_hand_where_the_labels_say(lab):
    # Lab backgrounds are dark, so the hand's pixels are brighter than the rest of the image.
    brighter = []
    for s, files in lab:
        img = np.asarray(Image.open(io.BytesIO(files[s.file_name])).convert("L"), np.float64)
        seg = files[s.conditions["seg"]] > 0
        brighter.append(img[seg].mean() > img[~seg].mean() + 10)
    assert np.mean(brighter) >= 0.8  # a darkest skin tone may sit close to the backdrop


def test_local_crop_is_the_photo_cut_by_the_box(wild):
    from handsynth.render import crop_image

    for s, files in wild[:3]:
        photo = np.asarray(Image.open(io.BytesIO(files[s.file_name])).convert("RGB"))
        assert np.array_equal(files[s.local.file_name], crop_image(photo, s.local.box, s.local.size))


def test_local_crops_stay_inside_the_photo_unless_asked_centred():
    """Padding past the photo's edge taught shared-weight guidance modules to draw a black frame."""
    from handsynth.errors import UserError

    boxes = {}
    for mode in ("inside", "centred"):
        cfg = WorldConfig(domain="wild", size=SIZE, seed=7, maps=("mesh",), hand_fraction=(0.6, 0.75))
        cfg.local_crop = mode
        gen = WorldGenerator(cfg)
        boxes[mode] = [gen.generate(i)[0].local.box for i in range(6)]
        gen.release()
    for x, y, side in boxes["inside"]:
        assert x >= 0 and y >= 0 and x + side <= SIZE + 1e-6 and y + side <= SIZE + 1e-6
    assert any(b[0] < 0 or b[1] < 0 or b[0] + b[2] > SIZE or b[1] + b[2] > SIZE for b in boxes["centred"])
    assert [b[2] for b in boxes["inside"]] == [b[2] for b in boxes["centred"]]  # same side, moved
    with pytest.raises(UserError, match="local crop"):
        WorldConfig(local_crop="middle")


def test_domains_differ_as_designed(lab, wild):
    def area(s):
        x, y, w, h = s.hands[0].bbox
        return w * h / (s.width * s.height)

    lab_area = np.mean([area(s) for s, _ in lab])
    wild_area = np.mean([area(s) for s, _ in wild])
    assert lab_area > 2 * wild_area
    assert all("object" not in s.extra for s, _ in lab)
    assert any("object" in s.extra for s, _ in wild)
    assert len({s.source["attributes"]["background"]["name"] for s, _ in wild}) >= 4
    assert {s.source["attributes"]["background"]["kind"] for s, _ in lab} == {"lab"}
    assert len({str(s.source["attributes"]["lighting"]) for s, _ in lab}) == 1  # fixed studio light
    assert len({str(s.source["attributes"]["lighting"]) for s, _ in wild}) == N
    lab_q = {s.source["attributes"]["degradation"]["jpeg_quality"] for s, _ in lab}
    assert lab_q == {95} and min(s.source["attributes"]["degradation"]["jpeg_quality"] for s, _ in wild) < 95

    # Wild backgrounds vary from photo to photo, the studio backdrop does not: compare the spread of
    # the corner colours (median of the four corners, robust to an arm crossing one of them).
    def corners(files, s):
        img = np.asarray(Image.open(io.BytesIO(files[s.file_name])).convert("RGB"), np.float64)
        k = 6
        patches = [img[:k, :k], img[:k, -k:], img[-k:, :k], img[-k:, -k:]]
        return np.median([p.reshape(-1, 3).mean(0) for p in patches], axis=0)

    spread_wild = np.std([corners(f, s) for s, f in wild], axis=0).mean()
    spread_lab = np.std([corners(f, s) for s, f in lab], axis=0).mean()
    assert spread_wild > 4 * spread_lab


def test_captions_mention_the_side_and_the_object(lab, wild):
    for domain, s, _ in _both(lab, wild):
        side = s.hands[0].side
        assert f"{side} hand" in s.prompt
        if "object" in s.extra:
            o = s.extra["object"]
            assert f"{o['color']} {o['name']}" in s.prompt
        assert s.source["attributes"]["background"]["phrase"] in s.prompt or domain == "lab"


def test_same_seed_same_files_other_seed_other_files(wild):
    gen = WorldGenerator(WorldConfig(domain="wild", size=SIZE, seed=7, maps=("mesh", "seg")))
    other = WorldGenerator(WorldConfig(domain="wild", size=SIZE, seed=8, maps=("mesh", "seg")))
    try:
        for i in (3, 1):  # out of order: sample i does not depend on what was generated before
            s, files = gen.generate(i)
            s0, files0 = wild[i]
            assert s.to_dict() == s0.to_dict()
            for rel, content in files.items():
                a, b = content, files0[rel]
                assert (a == b) if isinstance(a, bytes) else np.array_equal(a, b)
        s2, files2 = other.generate(1)
        assert s2.hands[0].joints_3d != wild[1][0].hands[0].joints_3d
    finally:
        gen.release()
        other.release()


def test_hand_mesh_normals_point_outwards(models):
    # Shading (and the skin layout's palm / nail sides) rely on outward normals, for both sides.
    for side, m in models.items():
        with torch.no_grad():
            v = m(hand_pose=-m.hand_mean[None]).vertices[0].numpy()
        n = vertex_normals(v, m.faces)
        c = v.mean(axis=0)
        palm_region = np.linalg.norm(v - c, axis=1) < 0.04
        assert np.mean(np.sum(n[palm_region] * (v[palm_region] - c), axis=1) > 0) > 0.9, side


def test_poses_reuse_a_records_hand_camera_and_placement_in_another_domain(tmp_path, lab):
    from handsynth.data import write_metadata

    sample, _ = lab[0]
    write_metadata(tmp_path / "poses.jsonl", [sample])
    gen = WorldGenerator(
        WorldConfig(domain="wild", size=SIZE, seed=3, maps=(), poses=str(tmp_path / "poses.jsonl"))
    )
    try:
        wild, files = gen.generate(0)
    finally:
        gen.release()
    assert wild.source["domain"] == "wild" and wild.hands[0].side == sample.hands[0].side
    assert np.allclose(wild.hands[0].joints_2d, sample.hands[0].joints_2d)
    assert np.allclose(wild.K, sample.K) and wild.file_name in files


def test_hand_fraction_overrides_the_domains_hand_size():
    gen = WorldGenerator(
        WorldConfig(domain="wild", size=SIZE, seed=3, maps=(), local=False, hand_fraction=(0.5, 0.6))
    )
    try:
        sides = [max(gen.generate(i)[0].hands[0].bbox[2:]) / SIZE for i in range(3)]
    finally:
        gen.release()
    assert min(sides) >= 0.4, sides
