"""Quaternion helpers agree with scipy's Rotation (w, x, y, z order, w >= 0)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from handsynth.poses.quaternions import (
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    canonical,
    matrix_to_quaternion,
    quaternion_to_matrix,
    rotation_angle_deg,
)


def _scipy_wxyz(rot: Rotation) -> np.ndarray:
    q = rot.as_quat()  # x, y, z, w
    return canonical(np.concatenate([q[:, 3:], q[:, :3]], axis=1))


def test_axis_angle_to_quaternion_matches_scipy_including_tiny_and_half_turns():
    rng = np.random.default_rng(0)
    aa = rng.normal(size=(200, 3)) * 1.5
    aa[0] = 0.0
    aa[1] = [1e-10, 0.0, 0.0]
    aa[2] = [np.pi, 0.0, 0.0]
    q = axis_angle_to_quaternion(aa)
    np.testing.assert_allclose(q, _scipy_wxyz(Rotation.from_rotvec(aa)), atol=1e-12)
    assert (q[:, 0] >= 0).all()
    np.testing.assert_allclose(axis_angle_to_matrix(aa), Rotation.from_rotvec(aa).as_matrix(), atol=1e-12)


def test_matrix_to_quaternion_matches_scipy_and_round_trips():
    rots = Rotation.random(300, random_state=1)
    mats = rots.as_matrix()
    mats[0] = Rotation.from_rotvec([0.0, np.pi, 0.0]).as_matrix()  # w = 0: Shepperd's other branches
    mats[1] = Rotation.from_rotvec([0.0, 0.0, np.pi]).as_matrix()
    q = matrix_to_quaternion(mats)
    expected = _scipy_wxyz(Rotation.from_matrix(mats))
    # at w = 0 both signs are canonical: compare up to sign
    sign = np.sign(np.sum(q * expected, axis=1, keepdims=True))
    np.testing.assert_allclose(q, expected * sign, atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix(q), mats, atol=1e-12)


def test_canonical_flips_negative_w_only():
    q = np.array([[-0.5, 0.5, 0.5, 0.5], [0.5, -0.5, 0.5, 0.5]])
    np.testing.assert_array_equal(canonical(q), [[0.5, -0.5, -0.5, -0.5], [0.5, -0.5, 0.5, 0.5]])


def test_rotation_angle_of_a_known_relative_rotation():
    R0 = Rotation.random(random_state=2).as_matrix()
    R1 = R0 @ Rotation.from_rotvec([0.0, 0.0, np.radians(37.0)]).as_matrix()
    assert abs(rotation_angle_deg(R0, R1) - 37.0) < 1e-9
