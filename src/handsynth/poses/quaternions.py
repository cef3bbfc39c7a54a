"""Small pure quaternion helpers (``w, x, y, z`` order) for pose vectors; numpy only, batched.

Kept separate from torch code so the sampling commands need neither torch nor scipy at run time.
"""

from __future__ import annotations

import numpy as np


def canonical(q: np.ndarray) -> np.ndarray:
    """``q`` with ``w >= 0``: q and -q are the same rotation, and the cosine between pose vectors
    must not see the sign flip."""
    q = np.asarray(q, dtype=np.float64)
    return np.where(q[..., :1] < 0, -q, q)


def axis_angle_to_quaternion(aa: np.ndarray) -> np.ndarray:
    """Axis-angle vectors ``(..., 3)`` (angle = norm, radians) to unit quaternions ``(..., 4)``, w >= 0."""
    aa = np.asarray(aa, dtype=np.float64)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    half = 0.5 * angle
    # sin(half)/angle -> 1/2 as angle -> 0 (Taylor), so tiny rotations stay exact
    small = angle < 1e-8
    scale = np.where(small, 0.5 - angle**2 / 48.0, np.sin(half) / np.where(small, 1.0, angle))
    return canonical(np.concatenate([np.cos(half), aa * scale], axis=-1))


def axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    """Axis-angle vectors ``(..., 3)`` to rotation matrices ``(..., 3, 3)`` (via the quaternion)."""
    return quaternion_to_matrix(axis_angle_to_quaternion(aa))


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """Unit quaternions ``(..., 4)`` (w, x, y, z) to rotation matrices ``(..., 3, 3)``."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` to unit quaternions ``(..., 4)``, w >= 0.

    Shepperd's method: the largest of the four diagonal combinations is the divisor, so the result is
    stable for every rotation (including 180 degrees, where ``w`` is 0).
    """
    R = np.asarray(R, dtype=np.float64)
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    cands = np.stack(
        [
            np.stack(
                [
                    1 + m00 + m11 + m22,
                    R[..., 2, 1] - R[..., 1, 2],
                    R[..., 0, 2] - R[..., 2, 0],
                    R[..., 1, 0] - R[..., 0, 1],
                ],
                -1,
            ),
            np.stack(
                [
                    R[..., 2, 1] - R[..., 1, 2],
                    1 + m00 - m11 - m22,
                    R[..., 0, 1] + R[..., 1, 0],
                    R[..., 0, 2] + R[..., 2, 0],
                ],
                -1,
            ),
            np.stack(
                [
                    R[..., 0, 2] - R[..., 2, 0],
                    R[..., 0, 1] + R[..., 1, 0],
                    1 - m00 + m11 - m22,
                    R[..., 1, 2] + R[..., 2, 1],
                ],
                -1,
            ),
            np.stack(
                [
                    R[..., 1, 0] - R[..., 0, 1],
                    R[..., 0, 2] + R[..., 2, 0],
                    R[..., 1, 2] + R[..., 2, 1],
                    1 - m00 - m11 + m22,
                ],
                -1,
            ),
        ],
        axis=-2,
    )  # (..., 4 candidates, 4): candidate k has 4*q_k^2 in position k
    best = np.argmax(
        np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1), -1
    )
    q = np.take_along_axis(cands, best[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return canonical(q)


def rotation_angle_deg(R_a: np.ndarray, R_b: np.ndarray) -> np.ndarray:
    """Angle of ``R_aᵀ R_b`` in degrees: arccos(clamp((trace − 1) / 2)), the relative rotation error."""
    rel = np.swapaxes(np.asarray(R_a, dtype=np.float64), -1, -2) @ np.asarray(R_b, dtype=np.float64)
    cos = np.clip((np.trace(rel, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    return np.degrees(np.arccos(cos))


def quaternion_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """Unit quaternions ``(..., 4)`` to axis-angle vectors ``(..., 3)`` with angle in [0, pi]."""
    q = canonical(np.asarray(q, dtype=np.float64))
    v = q[..., 1:]
    s = np.linalg.norm(v, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(s, q[..., :1])
    # angle / sin(angle/2) -> 2 as the angle -> 0, so tiny rotations stay exact
    small = s < 1e-8
    scale = np.where(small, 2.0 + angle**2 / 12.0, angle / np.where(small, 1.0, s))
    return v * scale


def matrix_to_axis_angle(R: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` to axis-angle vectors ``(..., 3)``."""
    return quaternion_to_axis_angle(matrix_to_quaternion(R))
