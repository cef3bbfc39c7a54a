"""The skeleton drawing (ControlNet's OpenPose hand style) and map PNG files."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
from PIL import Image

from handsynth.errors import UserError
from handsynth.render import MAP_NAMES, draw_skeleton, load_map, save_map
from handsynth.render.skeleton import BONE_COLORS, BONES, JOINT_COLOR

# controlnet_aux / ControlNet `draw_handpose` edge list (OpenPose-21 hand)
CONTROLNET_EDGES = [[0, 1], [1, 2], [2, 3], [3, 4], [0, 5], [5, 6], [6, 7], [7, 8], [0, 9], [9, 10],
                    [10, 11], [11, 12], [0, 13], [13, 14], [14, 15], [15, 16], [0, 17], [17, 18],
                    [18, 19], [19, 20]]  # fmt: skip


def _fan_hand(center=(256.0, 300.0)) -> np.ndarray:
    """A spread hand: five straight fingers fanning up from the wrist, 40 px phalanges."""
    j = np.zeros((21, 2))
    j[0] = center
    for f, angle in enumerate(np.radians([-150, -120, -90, -60, -30])):
        d = np.array([np.cos(angle), np.sin(angle)])
        for k in range(4):
            j[1 + 4 * f + k] = j[0] + d * 40 * (k + 1.5)
    return j


def test_bones_and_colors_follow_controlnet():
    assert [list(b) for b in BONES] == CONTROLNET_EDGES
    for i, c in enumerate(BONE_COLORS):
        ref = np.array(colorsys.hsv_to_rgb(i / 20, 1.0, 1.0)) * 255
        assert np.abs(np.array(c) - ref).max() <= 0.5


def test_skeleton_pixels():
    j = _fan_hand()
    img = draw_skeleton([j], 512, 512)
    for p in j:  # every joint is a blue disc, radius 4 at 512 px
        assert tuple(img[int(p[1]), int(p[0])]) == JOINT_COLOR
        assert tuple(img[int(p[1]), int(p[0]) + 3]) == JOINT_COLOR
    for (a, b), color in zip(BONES, BONE_COLORS):
        mid = (j[a] + j[b]) / 2
        assert tuple(img[int(mid[1]), int(mid[0])]) == color
    # nothing is painted far from the skeleton
    yy, xx = np.mgrid[0:512, 0:512] + 0.5
    near = np.zeros((512, 512), bool)
    for a, b in BONES:
        d = j[b] - j[a]
        t = np.clip(((xx - j[a][0]) * d[0] + (yy - j[a][1]) * d[1]) / (d @ d), 0, 1)
        near |= (xx - j[a][0] - t * d[0]) ** 2 + (yy - j[a][1] - t * d[1]) ** 2 <= 4.5**2
    assert img.any(axis=-1)[near].mean() > 0.2 and not img[~near].any()


def test_skeleton_missing_joints_and_errors():
    j = _fan_hand()
    j[8] = np.nan  # index tip missing: its bone is skipped, others drawn
    img = draw_skeleton([j], 512, 512)
    mid = (j[7] + _fan_hand()[8]) / 2
    assert not img[int(mid[1]) - 1 : int(mid[1]) + 2, int(mid[0]) - 1 : int(mid[0]) + 2].any()
    assert img.any()
    with pytest.raises(UserError, match="21, 2"):
        draw_skeleton([np.zeros((20, 2))], 64, 64)


def test_skeleton_scales_with_size():
    j = _fan_hand() / 4
    img = draw_skeleton([j], 128, 128)
    assert tuple(img[int(j[0][1]), int(j[0][0])]) == JOINT_COLOR
    assert (img == JOINT_COLOR).all(-1).sum() < 21 * 12  # radius 1 discs, not radius 4


@pytest.mark.parametrize("name", MAP_NAMES)
def test_save_load_round_trip(tmp_path, name):
    rng = np.random.default_rng(0)
    if name == "depth":
        arr = rng.integers(0, 65535, size=(24, 32), dtype=np.uint16)
    elif name == "seg":
        arr = rng.integers(0, 4, size=(24, 32), dtype=np.uint8)
    else:
        arr = rng.integers(0, 255, size=(24, 32, 3), dtype=np.uint8)
    path = save_map(name, arr, tmp_path / "sub" / f"{name}.png")
    back = load_map(name, path)
    assert back.dtype == arr.dtype and np.array_equal(back, arr)
    assert [p.name for p in path.parent.iterdir()] == [f"{name}.png"]  # no temp file left
    with Image.open(path) as im:
        assert im.format == "PNG"
        if name == "depth":
            assert im.mode.startswith("I")  # 16-bit grayscale, values above 255 survive


def test_save_rejects_wrong_layout(tmp_path):
    with pytest.raises(UserError, match="uint16"):
        save_map("depth", np.zeros((4, 4), np.uint8), tmp_path / "d.png")
    with pytest.raises(UserError, match=r"\(H, W, 3\)"):
        save_map("normal", np.zeros((4, 4), np.uint8), tmp_path / "n.png")
    with pytest.raises(UserError, match="unknown"):
        save_map("albedo", np.zeros((4, 4, 3), np.uint8), tmp_path / "a.png")
    with pytest.raises(UserError, match="does not exist"):
        load_map("seg", tmp_path / "missing.png")
    assert not list(tmp_path.iterdir())
