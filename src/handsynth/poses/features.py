"""HandBooster's pose vector v = concat(15 joint quaternions, object rotation quaternion, object
translation × scale), with the hand's global orientation removed: the object pose is expressed in the
hand's root frame (rotation by the global orientation, origin at the wrist), so two grasps that differ
only by where the camera stands compare as equal."""

from __future__ import annotations

import numpy as np

from handsynth.data.records import Sample, object_pose
from handsynth.errors import UserError
from handsynth.poses.quaternions import axis_angle_to_matrix, axis_angle_to_quaternion, matrix_to_quaternion

VECTOR_SIZE = 15 * 4 + 4 + 3


def pose_vector(
    sample: Sample, translation_scale: float = 1.0, hand_mean: np.ndarray | None = None
) -> np.ndarray:
    """The 67-d pose vector of the record's first hand and first object (quaternions with w >= 0).

    ``translation_scale`` multiplies the object translation (metres): at 1 the translation is small
    next to 16 unit quaternions and barely moves the cosine (see docs/handbooster.md). Joint rotations are
    relative to the hand model's mean pose, as most records hold them: a record with an absolute
    ``hand_pose`` (``source.flat_hand_mean``, HO3D imports) has ``hand_mean`` (45, its model's mean)
    subtracted, so it is compared in the same convention as the others.
    """
    if not sample.hands:
        raise UserError(f"record {sample.id} has no hand: the pose vector needs the hand's pose")
    objects = sample.extra.get("objects")
    if not objects:
        raise UserError(f"record {sample.id} has no 'objects': the pose vector needs the object's pose")
    hand = sample.hands[0]
    pose = np.asarray(hand.hand_pose, dtype=np.float64)
    if sample.flat_hand_mean:
        if hand_mean is None:
            raise UserError(
                f"record {sample.id} holds an absolute hand_pose (source.flat_hand_mean): its pose vector "
                "needs the mean pose of its hand model to compare it with relative poses"
            )
        pose = pose - np.asarray(hand_mean, dtype=np.float64).reshape(45)
    joints = axis_angle_to_quaternion(pose.reshape(15, 3))
    R_root = axis_angle_to_matrix(np.asarray(hand.global_orient, dtype=np.float64))
    R, t, _ = object_pose(objects[0])
    R_obj = R_root.T @ R
    t_obj = R_root.T @ (t - np.asarray(hand.joints_3d[0], dtype=np.float64))
    return np.concatenate([joints.ravel(), matrix_to_quaternion(R_obj), t_obj * translation_scale])


def object_name(sample: Sample) -> str:
    return str(sample.extra["objects"][0]["name"])


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, so a dot product is the cosine."""
    v = np.asarray(vectors, dtype=np.float64)
    return v / np.linalg.norm(v, axis=1, keepdims=True)
