"""The shared LBS core against smplx's reference implementation, and MANO's mirroring convention."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from handsynth.hand.joints import MANO_PARENTS
from handsynth.hand.kinematics import axis_angle_to_matrix, lbs, mirror_pose


def test_rodrigues_matches_scipy_and_has_finite_gradient_at_zero():
    aa = torch.tensor(np.random.default_rng(0).normal(0, 1.2, (64, 3)))
    ours = axis_angle_to_matrix(aa).numpy()
    ref = Rotation.from_rotvec(aa.numpy()).as_matrix()
    assert np.abs(ours - ref).max() < 1e-12
    z = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    axis_angle_to_matrix(z).sum().backward()
    assert torch.isfinite(z.grad).all()
    assert torch.allclose(axis_angle_to_matrix(torch.zeros(3)), torch.eye(3))


@pytest.mark.parametrize("with_posedirs", [True, False])
def test_lbs_matches_smplx(with_posedirs):
    smplx_lbs = pytest.importorskip("smplx.lbs")
    rng = np.random.default_rng(1)
    V, B = 120, 4
    v = torch.tensor(rng.normal(0, 0.05, (V, 3)))
    shapedirs = torch.tensor(rng.normal(0, 0.01, (V, 3, 10)))
    posedirs = torch.tensor(rng.normal(0, 0.001, (135, V * 3)))
    Jr = torch.tensor(rng.random((16, V)))
    Jr = Jr / Jr.sum(1, keepdim=True)
    W = torch.tensor(rng.random((V, 16)) ** 4)
    W = W / W.sum(1, keepdim=True)
    betas = torch.tensor(rng.normal(0, 1, (B, 10)))
    pose = torch.tensor(rng.normal(0, 0.6, (B, 48)))
    pd = posedirs if with_posedirs else torch.zeros_like(posedirs)
    ref_v, ref_j = smplx_lbs.lbs(betas, pose, v, shapedirs, pd, Jr, torch.tensor(MANO_PARENTS), W)
    ours_v, ours_j = lbs(betas, pose, v, shapedirs, posedirs if with_posedirs else None, Jr, MANO_PARENTS, W)
    assert (ours_v - ref_v).abs().max() < 1e-7  # smplx adds 1e-8 inside its Rodrigues
    assert (ours_j - ref_j).abs().max() < 1e-7
    # The joints-only path skins a vertex subset identically.
    ids = torch.tensor([3, 50, 7])
    sub_v, _ = lbs(betas, pose, v, shapedirs, posedirs if with_posedirs else None, Jr, MANO_PARENTS, W, ids)
    assert (sub_v - ref_v[:, ids]).abs().max() < 1e-9


def test_mirror_pose_is_conjugation_by_the_x_reflection():
    rng = np.random.default_rng(2)
    aa = rng.normal(0, 1, (10, 3))
    M = np.diag([-1.0, 1.0, 1.0])
    R = Rotation.from_rotvec(aa).as_matrix()
    Rm = Rotation.from_rotvec(mirror_pose(aa)).as_matrix()
    assert np.abs(Rm - M @ R @ M).max() < 1e-12
    t = torch.tensor(aa.reshape(1, 30))
    assert np.allclose(mirror_pose(t).numpy().reshape(10, 3), mirror_pose(aa))
