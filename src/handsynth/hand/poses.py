"""Anatomical joint angles <-> MANO axis-angle, and the named canonical hand poses.

Why: people (and the pose prior) think in flexion / abduction / twist per joint, MANO takes one
axis-angle per joint in its rest frame. Each joint's anatomical axes come from the rest skeleton
(MANO's mean template, shared by OpenHand): the bone direction ``d`` (twist axis), the flexion axis
(rotating ``d`` towards the palm, i.e. -y for the fingers; for the thumb mostly -y, slightly across
the palm) and the abduction axis (rotating ``d`` towards the thumb side for the fingers, away from the
index finger for the thumb). A joint's rotation is ``R = R_flex R_abd R_twist``. All angles are
defined for the right hand; a left hand gets the mirrored parameters (MANO's convention).

Poses returned here are *absolute* (a model built with ``flat_hand_mean=True`` shows them as is);
pass ``mean=model.hand_mean`` to get the ``hand_pose`` for a model with the relaxed mean added.
"""

from __future__ import annotations

import functools

import numpy as np

from handsynth.hand.joints import MANO_JOINT_NAMES
from handsynth.hand.kinematics import matrix_to_axis_angle, mirror_pose

# MANO joint index of the 15 posed joints (hand_pose order) and their digit.
POSED = tuple(range(1, 16))
DIGIT_OF = {j: MANO_JOINT_NAMES[j].rstrip("123") for j in POSED}
LEVEL_OF = {j: int(MANO_JOINT_NAMES[j][-1]) for j in POSED}  # 1 base, 2 middle, 3 distal


@functools.lru_cache(maxsize=1)
def joint_axes() -> np.ndarray:
    """(15, 3, 3): per posed joint, rows = flexion axis, abduction axis, twist axis (unit vectors)."""
    from handsynth.hand.openhand import CHAINS, REST_JOINTS, REST_TIPS

    out = np.zeros((15, 3, 3))
    for name, (chain, tip_i) in CHAINS.items():
        ends = [REST_JOINTS[chain[1]], REST_JOINTS[chain[2]], REST_TIPS[tip_i]]
        for k, j in enumerate(chain):
            d = ends[k] - REST_JOINTS[j]
            d /= np.linalg.norm(d)
            if name == "thumb":
                palm = np.array([0.0, -1.0, -0.25])
                side = np.array([1.0, 0.0, 1.0])  # away from the index finger, in the palm plane
            else:
                palm = np.array([0.0, -1.0, 0.0])
                side = np.array([0.0, 0.0, 1.0])  # towards the thumb (radial)
            flex = np.cross(d, palm)
            flex /= np.linalg.norm(flex)
            abd = np.cross(d, side - (side @ d) * d)
            abd -= (abd @ flex) * flex
            abd /= np.linalg.norm(abd)
            # The thumb twists about -d so that positive twist is pronation (opposition), as in MANO's mean.
            out[j - 1] = (flex, abd, -d if name == "thumb" else d)
    return out


def _rot(axis: np.ndarray, deg: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(np.radians(deg)[..., None] * axis).as_matrix()


def anatomical_to_pose(angles_deg: np.ndarray, side: str = "right") -> np.ndarray:
    """(..., 15, 3) degrees [flexion, abduction, twist] per joint -> (..., 45) absolute axis-angle."""
    a = np.asarray(angles_deg, dtype=np.float64)
    axes = joint_axes()
    shape = a.shape[:-2]
    flat = a.reshape(-1, 15, 3)
    R = np.empty((flat.shape[0], 15, 3, 3))
    for j in range(15):
        f, b, t = axes[j]
        R[:, j] = _rot(f, flat[:, j, 0]) @ _rot(b, flat[:, j, 1]) @ _rot(t, flat[:, j, 2])
    pose = matrix_to_axis_angle(R).reshape(*shape, 45)
    return mirror_pose(pose) if side == "left" else pose


def pose_to_anatomical(pose: np.ndarray, side: str = "right") -> np.ndarray:
    """Inverse of :func:`anatomical_to_pose` (exact while angles stay within +-90 degrees)."""
    from scipy.spatial.transform import Rotation

    p = np.asarray(pose, dtype=np.float64)
    if side == "left":
        p = mirror_pose(p)
    shape = p.shape[:-1]
    R = Rotation.from_rotvec(p.reshape(-1, 3)).as_matrix().reshape(-1, 15, 3, 3)
    axes = joint_axes()
    out = np.empty((R.shape[0], 15, 3))
    for j in range(15):
        B = axes[j]  # rows: flex, abd, twist (orthonormal, right-handed up to sign)
        local = B @ R[:, j] @ B.T  # rotation in the (flex, abd, twist) basis
        # R = Rf Ra Rt is an intrinsic X-Y-Z Euler sequence in that basis.
        e = Rotation.from_matrix(local).as_euler("XYZ", degrees=True)
        out[:, j] = e * np.sign(np.linalg.det(B))  # a left-handed basis flips every angle
    return out.reshape(*shape, 15, 3)


# Per finger (MCP flex, PIP flex, DIP flex, MCP abduction); thumb (CMC flex, CMC abd, CMC twist, MCP, IP).
_FIST = (88.0, 100.0, 60.0, 0.0)
CANONICAL_SPECS: dict[str, dict[str, tuple[float, ...]]] = {
    "flat": {},
    "fist": {
        "index": _FIST,
        "middle": _FIST,
        "ring": _FIST,
        "little": _FIST,
        "thumb": (40.0, -5.0, 50.0, 35.0, 40.0),
    },
    "point": {
        "index": (0.0, 0.0, 0.0, 0.0),
        "middle": _FIST,
        "ring": _FIST,
        "little": _FIST,
        "thumb": (40.0, -5.0, 50.0, 35.0, 35.0),
    },
    "pinch": {
        "index": (40.0, 50.0, 25.0, 0.0),
        "middle": (20.0, 25.0, 10.0, -3.0),
        "ring": (25.0, 30.0, 15.0, -5.0),
        "little": (30.0, 35.0, 15.0, -8.0),
        "thumb": (40.0, -6.0, 51.0, 16.0, 16.0),  # fitted: thumb and index tips ~12 mm apart
    },
    "peace": {
        "index": (0.0, 0.0, 0.0, 10.0),
        "middle": (0.0, 0.0, 0.0, -10.0),
        "ring": _FIST,
        "little": _FIST,
        "thumb": (45.0, -5.0, 55.0, 40.0, 35.0),
    },
    "thumbs-up": {
        "index": _FIST,
        "middle": _FIST,
        "ring": _FIST,
        "little": _FIST,
        "thumb": (-10.0, 30.0, 0.0, -5.0, 0.0),
    },
    "grasp": {
        "index": (45.0, 55.0, 30.0, 0.0),
        "middle": (50.0, 55.0, 30.0, 0.0),
        "ring": (55.0, 55.0, 30.0, 0.0),
        "little": (60.0, 55.0, 30.0, 0.0),
        "thumb": (45.0, 10.0, 50.0, 15.0, 15.0),
    },
}
CANONICAL_POSES = tuple(CANONICAL_SPECS)


def spec_to_angles(spec: dict[str, tuple[float, ...]]) -> np.ndarray:
    """(15, 3) anatomical angles from a per-digit spec like those in :data:`CANONICAL_SPECS`."""
    from handsynth.hand.openhand import CHAINS

    angles = np.zeros((15, 3))
    for digit, values in spec.items():
        chain = CHAINS[digit][0]
        if digit == "thumb":
            cmc_f, cmc_a, cmc_t, mcp, ip = values
            angles[chain[0] - 1] = (cmc_f, cmc_a, cmc_t)
            angles[chain[1] - 1, 0] = mcp
            angles[chain[2] - 1, 0] = ip
        else:
            mcp, pip, dip, abd = values
            angles[chain[0] - 1] = (mcp, abd, 0.0)
            angles[chain[1] - 1, 0] = pip
            angles[chain[2] - 1, 0] = dip
    return angles


def canonical_pose(name: str, side: str = "right", mean: np.ndarray | None = None) -> np.ndarray:
    """(45,) hand_pose of a named pose (:data:`CANONICAL_POSES`); ``mean`` is subtracted when given."""
    if name not in CANONICAL_SPECS:
        raise ValueError(f"unknown canonical pose {name!r}; choose one of {CANONICAL_POSES}")
    pose = anatomical_to_pose(spec_to_angles(CANONICAL_SPECS[name]), side=side)
    if mean is not None:
        pose = pose - np.asarray(mean, dtype=np.float64).reshape(45)
    return pose
