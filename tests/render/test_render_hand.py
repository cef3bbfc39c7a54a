"""Rendering real OpenHand meshes: joints, boxes, crops and depth agree with the hand model's labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from render_helpers import decode_normals, rays
from scipy.ndimage import binary_dilation
from scipy.spatial.transform import Rotation

from handsynth.data.records import LocalCrop
from handsynth.hand import canonical_pose, load_hand_model
from handsynth.render import (
    Renderer,
    SceneMesh,
    bbox_from_points,
    crop_box,
    crop_image,
    project,
    to_local,
)

SIZE = 256
K = np.array([[300.0, 0.0, 128.0], [0.0, 300.0, 128.0], [0.0, 0.0, 1.0]])
CENTRES = {"right": np.array([-0.07, 0.0, 0.5]), "left": np.array([0.07, 0.01, 0.52])}
POSES = {"right": "peace", "left": "pinch"}


@pytest.fixture(scope="module")
def hands():
    """side -> (vertices, faces, joints) of a posed OpenHand hand, palm towards the camera."""
    out = {}
    for side in ("right", "left"):
        model = load_hand_model("openhand", side=side, flat_hand_mean=True).eval()
        turn = Rotation.from_euler("x", -90, degrees=True).as_rotvec()
        pose = canonical_pose(POSES[side], side=side)
        with torch.no_grad():
            o = model(
                global_orient=torch.tensor(turn[None], dtype=torch.float32),
                hand_pose=torch.tensor(pose[None], dtype=torch.float32),
            )
        v, j = o.vertices[0].numpy().astype(np.float64), o.joints[0].numpy().astype(np.float64)
        shift = CENTRES[side] - v.mean(axis=0)
        out[side] = (v + shift, np.asarray(model.faces), j + shift)
    return out


@pytest.fixture(scope="module")
def hand_renderer():
    r = Renderer(SIZE, SIZE)
    yield r
    r.release()


def test_joints_inside_image_bbox_and_silhouette(hands, hand_renderer):
    for side, (v, f, j) in hands.items():
        out = hand_renderer.render([SceneMesh(v, f, side)], K, maps=("seg", "depth"))
        uv, juv = project(v, K), project(j, K)
        x, y, w, h = bbox_from_points(uv)
        assert ((juv >= 0) & (juv < SIZE)).all()
        assert ((juv >= [x, y]) & (juv <= [x + w, y + h])).all()  # joints lie inside the mesh's box
        mask = binary_dilation(out["seg"] == (1 if side == "right" else 2), iterations=1)
        rows, cols = np.floor(juv[:, 1]).astype(int), np.floor(juv[:, 0]).astype(int)
        assert mask[rows, cols].all()  # every joint projects onto its hand
        # Joints are inside the hand (tips on its surface): the visible surface is never behind them.
        surface = out["depth"][rows, cols].astype(float)
        assert ((surface == 0) | (surface <= j[:, 2] * 1000 + 2)).all()
        assert np.median(j[:, 2] * 1000 - surface) > 0


def test_real_hand_maps_geometry(hands, hand_renderer):
    meshes = [SceneMesh(v, f, side) for side, (v, f, _) in hands.items()]
    joints = [project(j, K) for _, _, j in hands.values()]
    out = hand_renderer.render(meshes, K, joints_2d=joints)
    fg = out["seg"] > 0
    assert set(np.unique(out["seg"])) == {0, 1, 2}
    assert np.array_equal(out["depth"] > 0, fg) and np.array_equal(out["mesh"][..., 0] > 0, fg)
    n = decode_normals(out["normal"])[fg]
    assert np.abs(np.linalg.norm(n, axis=-1) - 1).max() < 0.012
    assert (np.einsum("ij,ij->i", n, rays(K, SIZE, SIZE)[fg]) <= 0.01).all()
    for j in joints:  # the skeleton's joints are drawn where the hand model's joints project
        rows, cols = np.floor(j[:, 1]).astype(int), np.floor(j[:, 0]).astype(int)
        assert (out["skeleton"][rows, cols] == (0, 0, 255)).all()


def test_local_crop_of_two_hands(hands, hand_renderer):
    meshes = [SceneMesh(v, f, side) for side, (v, f, _) in hands.items()]
    joints = [project(j, K) for _, _, j in hands.values()]
    box = crop_box(bbox_from_points(*[project(m.vertices, K) for m in meshes], *joints), expand=1.25)
    size = 128
    local = hand_renderer.render_local(meshes, K, box, size, joints_2d=joints)
    glob = hand_renderer.render(meshes, K, maps=("seg",))
    ref = crop_image(glob["seg"], box, size)
    for label in (1, 2):
        a, b = local["seg"] == label, ref == label
        assert (a & b).sum() / (a | b).sum() > 0.9
    crop = LocalCrop(box=box, size=size)
    for j in joints:
        lj = to_local(j, box, size)
        assert np.allclose(lj, crop.to_local(j)) and np.allclose(crop.to_global(lj), j)
        assert ((lj >= 0) & (lj < size)).all()
        rows, cols = np.floor(lj[:, 1]).astype(int), np.floor(lj[:, 0]).astype(int)
        assert (local["skeleton"][rows, cols] == (0, 0, 255)).all()
        assert (binary_dilation(local["seg"] > 0, iterations=1)[rows, cols]).all()
