"""Joint orders of the hand model and of public datasets, with converters to and from OpenPose-21.

Every stage of handsynth uses OpenPose-21 (wrist, thumb 1-4, index 1-4, middle, ring, little; 1 = the
joint nearest the wrist, 4 = the fingertip). The other orders, all for one hand unless noted:

- ``mano``: MANO's 16 kinematic joints (wrist, index 1-3, middle 1-3, little 1-3, ring 1-3, thumb 1-3)
  followed by the five fingertips in smplx's order (thumb, index, middle, ring, little). HO3D's
  ``handJoints3D`` uses this order (its tools remap it with ``jointsMapManoToSimple``).
- ``openpose``, ``freihand``, ``dexycb``: the OpenPose order itself (FreiHAND's ``xyz`` and DexYCB's
  ``joint_3d`` come from manopth, which already emits it).
- ``ho3d``: the ``mano`` order (see above). HO3D stores points in an OpenGL camera frame (y up, z back);
  :func:`opengl_to_opencv` flips them into the OpenCV frame used here.
- ``interhand``: InterHand2.6M, 42 joints, right hand 0-20 then left 21-41; per hand the fingers run
  thumb, index, middle, ring, little, each from tip to base (tip, 3, 2, 1), and the wrist comes last.

Only the order changes: units (InterHand2.6M is in millimetres) are the caller's business.
"""

from __future__ import annotations

import numpy as np

FINGERS = ("thumb", "index", "middle", "ring", "little")

OPENPOSE_NAMES = ("wrist",) + tuple(f"{f}{k}" for f in FINGERS for k in range(1, 5))

# MANO's kinematic tree (smplx/MANO ``kintree_table[0]``), joint 0 is the wrist.
MANO_JOINT_NAMES = (
    "wrist",
    "index1",
    "index2",
    "index3",
    "middle1",
    "middle2",
    "middle3",
    "little1",
    "little2",
    "little3",
    "ring1",
    "ring2",
    "ring3",
    "thumb1",
    "thumb2",
    "thumb3",
)
MANO_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)
# The five fingertips appended after the 16 joints, in smplx's order.
MANO_TIP_ORDER = ("thumb", "index", "middle", "ring", "little")
# smplx's fingertip vertices of the official MANO mesh, same order.
MANO_TIP_VERTICES = (744, 320, 443, 554, 671)

# MANO-16+tips index of each OpenPose joint (HO3D's jointsMapManoToSimple).
OPENPOSE_FROM_MANO = np.array([0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20])
MANO_FROM_OPENPOSE = np.argsort(OPENPOSE_FROM_MANO)

# InterHand2.6M per-hand index of each OpenPose joint.
_IH_PER_HAND = np.array([20] + [4 * f + (3 - k) for f in range(5) for k in range(4)])
# OpenPose finger f joint k (k = 0 base .. 3 tip) is InterHand joint 4f + 3 - k; the wrist is 20.

ORDERS = ("openpose", "mano", "freihand", "dexycb", "ho3d", "interhand")
_SAME_AS = {
    "openpose": "openpose",
    "freihand": "openpose",
    "dexycb": "openpose",
    "mano": "mano",
    "ho3d": "mano",
}


def _check_order(order: str) -> str:
    if order not in ORDERS:
        raise ValueError(f"unknown joint order {order!r}; choose one of {ORDERS}")
    return order


def to_openpose(joints: np.ndarray, order: str) -> np.ndarray:
    """Reorder ``(..., 21, D)`` joints from ``order`` into OpenPose-21.

    ``interhand`` takes ``(..., 42, D)`` and returns ``(..., 2, 21, D)``: index 0 right, 1 left.
    Works on numpy arrays and torch tensors alike.
    """
    order = _check_order(order)
    if order == "interhand":
        right = joints[..., :21, :][..., _IH_PER_HAND, :]
        left = joints[..., 21:42, :][..., _IH_PER_HAND, :]
        return _stack(right, left)
    if _SAME_AS[order] == "openpose":
        return joints[..., np.arange(21), :]
    return joints[..., OPENPOSE_FROM_MANO, :]


def from_openpose(joints: np.ndarray, order: str) -> np.ndarray:
    """Inverse of :func:`to_openpose`; ``interhand`` takes ``(..., 2, 21, D)`` (right, left)."""
    order = _check_order(order)
    if order == "interhand":
        inv = np.argsort(_IH_PER_HAND)
        right = joints[..., 0, :, :][..., inv, :]
        left = joints[..., 1, :, :][..., inv, :]
        return _cat(right, left)
    if _SAME_AS[order] == "openpose":
        return joints[..., np.arange(21), :]
    return joints[..., MANO_FROM_OPENPOSE, :]


def opengl_to_opencv(points: np.ndarray) -> np.ndarray:
    """Flip y and z: an OpenGL camera frame (HO3D) into the OpenCV frame (and back: it is its own inverse)."""
    flip = np.array([1.0, -1.0, -1.0])
    if hasattr(points, "new_tensor"):  # torch
        return points * points.new_tensor(flip)
    return np.asarray(points) * flip


def _stack(a, b):
    if hasattr(a, "new_tensor"):
        import torch

        return torch.stack([a, b], dim=-3)
    return np.stack([a, b], axis=-3)


def _cat(a, b):
    if hasattr(a, "new_tensor"):
        import torch

        return torch.cat([a, b], dim=-2)
    return np.concatenate([a, b], axis=-2)


# Bones of the OpenPose skeleton (parent, child), for drawing and limb lengths.
OPENPOSE_BONES = tuple(
    (0 if k == 0 else 1 + 4 * f + k - 1, 1 + 4 * f + k) for f in range(5) for k in range(4)
)
