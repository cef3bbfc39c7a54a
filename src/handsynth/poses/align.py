"""HandBooster's alignment of synthesized grasps to the real data: each grasp takes the global
orientation, shape (betas) and root position of a random real grasping record, and its object is carried
along by the same rigid move (the released code's behaviour), so the hand–object contact is kept while
the viewpoint and hand placement follow the real distribution. The record also takes the real camera."""

from __future__ import annotations

import copy

import numpy as np

from handsynth.data.records import Sample
from handsynth.errors import UserError
from handsynth.poses.quaternions import axis_angle_to_matrix
from handsynth.poses.rigid import HandPoser, move_hand, move_objects
from handsynth.poses.views import record_rng
from handsynth.progress import progress


def grasping_hands(reference: list[Sample]) -> dict[tuple[str, str], list[tuple[Sample, int]]]:
    """(hand model, side) -> the real grasping records' hands (record, hand index)."""
    if not any("grasping" in s.extra for s in reference):
        raise UserError(
            "the reference records carry no 'grasping' field: label them first with "
            "`handsynth poses grasp-status` (alignment draws from real grasping frames)"
        )
    out: dict[tuple[str, str], list[tuple[Sample, int]]] = {}
    for s in reference:
        if s.extra.get("grasping"):
            for i, h in enumerate(s.hands):
                out.setdefault((h.model, h.side), []).append((s, i))
    return out


def align_to(sample: Sample, real: Sample, hand_index: int, poser: HandPoser) -> Sample:
    """``sample``'s first hand given ``real``'s hand orientation, betas and wrist position, every other
    hand and object moved rigidly with it; the record takes ``real``'s camera and image size."""
    hand, ref = sample.hands[0], real.hands[hand_index]
    R = (
        axis_angle_to_matrix(np.asarray(ref.global_orient))
        @ axis_angle_to_matrix(np.asarray(hand.global_orient)).T
    )
    pivot = poser.pose(hand)[1][0]
    target = poser.pose(ref)[1][0]
    out = copy.deepcopy(sample)
    out.width, out.height, out.K = real.width, real.height, copy.deepcopy(real.K)
    K = np.asarray(out.K, dtype=np.float64)
    first = copy.deepcopy(hand)
    first.global_orient, first.betas = list(ref.global_orient), list(ref.betas)
    first.transl = [0.0, 0.0, 0.0]
    root = poser.pose(first)[1][0]  # the root with the new betas at transl 0
    first.transl = (target - root).tolist()
    others = [move_hand(h, R, pivot, poser.pose(h)[1][0], target) for h in sample.hands[1:]]
    out.hands = [poser.relabel(h, K, sample.flat_hand_mean) for h in [first, *others]]
    if sample.extra.get("objects"):
        out.extra["objects"] = move_objects(sample.extra["objects"], R, pivot, target)
    out.file_name, out.conditions, out.local = None, {}, None
    return out


def align_records(
    samples: list[Sample], reference: list[Sample], seed: int, poser: HandPoser, step: dict
) -> list[Sample]:
    """Every record aligned to a real grasping hand of its model and side, drawn per record by seed."""
    pools = grasping_hands(reference)
    out = []
    for s in progress(samples, desc="align", unit="pose"):
        if not s.hands:
            raise UserError(f"record {s.id} has no hand to align")
        key = (s.hands[0].model, s.hands[0].side)
        pool = pools.get(key)
        if not pool:
            raise UserError(
                f"record {s.id}: the reference has no grasping {key[1]} hand of model {key[0]} to align it to"
            )
        real, i = pool[int(record_rng(seed, s.id).integers(len(pool)))]
        aligned = align_to(s, real, i, poser)
        info = {**step, "reference": real.id}
        aligned.source = {
            **aligned.source,
            "handbooster": {**aligned.source.get("handbooster", {}), "align": info},
        }
        out.append(aligned)
    return out
