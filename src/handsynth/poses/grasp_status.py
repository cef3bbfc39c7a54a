"""HandBooster's grasp status: a frame is "grasping" when its object has moved from where the sequence
started (the object is lifted, so a hand holds it). RRE/RTE against the sequence's first frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handsynth.data import records
from handsynth.data.records import Sample
from handsynth.errors import UserError
from handsynth.poses.quaternions import rotation_angle_deg

RULES = ("or", "and")


@dataclass(frozen=True)
class GraspRule:
    """Thresholds of the grasp test. ``or`` (our reading of "the difference exceeds a threshold"):
    either error above its threshold; ``and``: both."""

    rre_deg: float = 5.0
    rte_mm: float = 10.0
    rule: str = "or"

    def grasping(self, rre_deg: float, rte_mm: float) -> bool:
        rotated, moved = rre_deg > self.rre_deg, rte_mm > self.rte_mm
        return (rotated or moved) if self.rule == "or" else (rotated and moved)


def object_pose(sample: Sample, where: str) -> tuple[np.ndarray, np.ndarray]:
    """``(R, t)`` of the record's first object (model→camera, metres), or an error naming the record."""
    objects = sample.extra.get("objects")
    if not objects:
        raise UserError(f"{where} (id {sample.id}) has no 'objects': grasp status needs the object's pose")
    R, t, _ = records.object_pose(objects[0])
    return R, t


def sequence_of(sample: Sample) -> tuple[str, int] | None:
    seq = sample.extra.get("sequence")
    return (seq["id"], seq["frame"]) if isinstance(seq, dict) else None


def pose_errors(samples: list[Sample]) -> list[tuple[float, float]]:
    """``(RRE degrees, RTE mm)`` of each sample's object against its sequence's first frame (lowest
    frame number), in input order. Every sample must carry ``sequence``."""
    first: dict[str, tuple[int, int]] = {}
    for i, s in enumerate(samples):
        seq = sequence_of(s)
        if seq is None:
            raise UserError(
                f"record {s.id} has no 'sequence' ({{id, frame}}): grasp status compares frames of one "
                "video, so import a video dataset (e.g. DexYCB, HO3D) or add the field"
            )
        if seq[0] not in first or seq[1] < first[seq[0]][0]:
            first[seq[0]] = (seq[1], i)
    out = []
    for s in samples:
        seq_id = sequence_of(s)[0]  # type: ignore[index]
        R0, t0 = object_pose(samples[first[seq_id][1]], f"sequence {seq_id}")
        R, t = object_pose(s, "record")
        out.append((float(rotation_angle_deg(R0, R)), float(np.linalg.norm(t - t0) * 1000.0)))
    return out
