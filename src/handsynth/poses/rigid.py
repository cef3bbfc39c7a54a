"""Moving a hand–object scene rigidly (novel views, alignment to a real record) with labels that stay
exact: hands are re-posed through their hand model, objects carried along with the same transform.

Every move is x -> R (x - pivot) + target (target = pivot: a rotation about the pivot). A hand's wrist
(joint 0) is its model's root: the global orientation turns the hand about it and ``transl`` only
shifts it, so the move gives orientation R·R_hand and transl + (new wrist - old wrist), with
``hand_pose`` and ``betas`` untouched.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from handsynth.data.records import Hand, Sample, object_pose
from handsynth.hand.model import HandModels
from handsynth.pinhole import bbox_from_points, project
from handsynth.poses.quaternions import axis_angle_to_matrix, matrix_to_axis_angle


class HandPoser:
    """Hand models by (kind, side, flat_hand_mean), loaded once; poses a hand from its parameters.

    ``flat_hand_mean`` is the record's (``Sample.flat_hand_mean``): an absolute ``hand_pose`` (HO3D)
    posed by a model that adds the mean pose would come out in another articulation.
    """

    def __init__(self, model_dir: str | Path | None = None) -> None:
        self._models = HandModels(model_dir)

    def model(self, kind: str, side: str, flat_hand_mean: bool = False) -> torch.nn.Module:
        return self._models.get(kind, side, flat_hand_mean)

    @torch.no_grad()
    def pose(self, hand: Hand, flat_hand_mean: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(vertices, joints)`` of ``hand`` from its parameters, camera frame, metres (float64)."""

        def t(x: list[float]) -> torch.Tensor:
            return torch.tensor([x], dtype=torch.float32)

        out = self.model(hand.model, hand.side, flat_hand_mean)(
            t(hand.global_orient), t(hand.hand_pose), t(hand.betas), t(hand.transl)
        )
        return out.vertices[0].double().numpy(), out.joints[0].double().numpy()

    def relabel(self, hand: Hand, K: np.ndarray, flat_hand_mean: bool = False) -> Hand:
        """``hand`` with joints_3d, joints_2d and bbox recomputed from its parameters."""
        verts, joints = self.pose(hand, flat_hand_mean)
        out = copy.deepcopy(hand)
        out.joints_3d = joints.tolist()
        out.joints_2d = project(joints, K).tolist()
        out.bbox = bbox_from_points(project(verts, K))
        return out


def move_hand(
    hand: Hand, R: np.ndarray, pivot: np.ndarray, wrist: np.ndarray, target: np.ndarray | None = None
) -> Hand:
    """The hand's parameters after x -> R (x - pivot) + target (labels not yet recomputed); ``wrist``
    is the hand's root joint as its model places it."""
    out = copy.deepcopy(hand)
    new_wrist = R @ (wrist - pivot) + (pivot if target is None else target)
    orient = R @ axis_angle_to_matrix(np.asarray(hand.global_orient, dtype=np.float64))
    out.global_orient = matrix_to_axis_angle(orient).tolist()
    out.transl = (np.asarray(hand.transl, dtype=np.float64) + new_wrist - wrist).tolist()
    return out


def move_objects(
    objects: list[dict], R: np.ndarray, pivot: np.ndarray, target: np.ndarray | None = None
) -> list[dict]:
    """``objects`` after x -> R (x - pivot) + target, written as ``pose`` = [R | t] (scale kept)."""
    target = pivot if target is None else target
    out = []
    for o in objects:
        R_o, t_o, _ = object_pose(o)
        moved = {k: v for k, v in o.items() if k not in ("pose", "R", "t")}
        moved["pose"] = np.concatenate([R @ R_o, (R @ (t_o - pivot) + target)[:, None]], axis=1).tolist()
        out.append(moved)
    return out


def wrist_of(sample: Sample, poser: HandPoser) -> np.ndarray:
    """The first hand's wrist as its model places it (the pivot of a novel view)."""
    return poser.pose(sample.hands[0], sample.flat_hand_mean)[1][0]


def move_scene(
    sample: Sample, R: np.ndarray, pivot: np.ndarray, poser: HandPoser, target: np.ndarray | None = None
) -> Sample:
    """The record's hands and objects moved by x -> R (x - pivot) + target, labels recomputed. The
    image and condition maps no longer match, so the result names none (a pose record)."""
    out = copy.deepcopy(sample)
    K = np.asarray(sample.K, dtype=np.float64)
    flat = sample.flat_hand_mean
    out.hands = [
        poser.relabel(move_hand(h, R, pivot, poser.pose(h, flat)[1][0], target), K, flat)
        for h in sample.hands
    ]
    if sample.extra.get("objects"):
        out.extra["objects"] = move_objects(sample.extra["objects"], R, pivot, target)
    out.file_name, out.conditions, out.local = None, {}, None
    return out


def inside_image(sample: Sample) -> bool:
    """Every joint of every hand in front of the camera and inside the image."""
    for h in sample.hands:
        j3, j2 = np.asarray(h.joints_3d), np.asarray(h.joints_2d)
        if (j3[:, 2] <= 0).any():
            return False
        if (j2 < 0).any() or (j2[:, 0] >= sample.width).any() or (j2[:, 1] >= sample.height).any():
            return False
    return True
