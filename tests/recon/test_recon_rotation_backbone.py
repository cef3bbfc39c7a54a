"""Rotation conversions against scipy, and the ResNet layouts against torchvision's parameter counts."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from handsynth.recon.backbone import build_backbone
from handsynth.recon.rotation import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rot6d,
    mirror_axis_angle,
    rot6d_to_matrix,
)


def _random_rotvecs(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = Rotation.random(n, random_state=seed).as_rotvec()
    v[:3] = rng.normal(0, 1e-6, (3, 3))  # near-identity branch
    axis = rng.normal(size=3)
    v[3] = axis / np.linalg.norm(axis) * (np.pi - 1e-4)  # near pi
    return v


def test_axis_angle_matrix_matches_scipy_both_ways() -> None:
    v = _random_rotvecs(200)
    m = axis_angle_to_matrix(torch.tensor(v)).numpy()
    np.testing.assert_allclose(m, Rotation.from_rotvec(v).as_matrix(), atol=1e-10)
    back = matrix_to_axis_angle(torch.tensor(m)).numpy()
    np.testing.assert_allclose(Rotation.from_rotvec(back).as_matrix(), m, atol=1e-9)
    np.testing.assert_allclose(back[4:], Rotation.from_matrix(m[4:]).as_rotvec(), atol=1e-8)


def test_rot6d_round_trip_and_orthonormal_output() -> None:
    m = torch.tensor(Rotation.random(50, random_state=1).as_matrix())
    torch.testing.assert_close(rot6d_to_matrix(matrix_to_rot6d(m)), m)
    r = rot6d_to_matrix(torch.randn(50, 6, dtype=torch.float64))
    torch.testing.assert_close(r @ r.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(50, 3, 3))
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(50, dtype=torch.float64))


def test_mirror_axis_angle_is_conjugation_by_the_x_mirror() -> None:
    v = _random_rotvecs(20, seed=2)
    mirror = np.diag([-1.0, 1.0, 1.0])
    expected = mirror @ Rotation.from_rotvec(v).as_matrix() @ mirror
    got = axis_angle_to_matrix(mirror_axis_angle(torch.tensor(v))).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-10)
    flat = torch.tensor(v[:15].reshape(1, 45))  # per-joint on a flattened 45-vector
    np.testing.assert_allclose(mirror_axis_angle(flat).numpy().reshape(15, 3), v[:15] * [1, -1, -1])


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_resnet_layouts_match_torchvision_parameter_counts() -> None:
    # torchvision resnet18 / resnet34 have 11,689,512 / 21,797,672 parameters including the
    # 512*1000+1000 classifier, which this encoder omits.
    assert _count(build_backbone("resnet18", 1.0)) == 11_689_512 - 513_000
    assert _count(build_backbone("resnet34", 1.0)) == 21_797_672 - 513_000


def test_width_multiplier_scales_channels_and_features() -> None:
    net = build_backbone("resnet18", 0.25).eval()
    assert net.out_dim == 128
    assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 128)
    assert _count(net) < _count(build_backbone("resnet18", 0.5)) / 3
