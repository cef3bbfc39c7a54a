"""2D hand keypoint detectors, and the Hand Conf. / MSE-2D metrics computed from their detections.

Any detector plugs in by implementing :class:`Keypoint2DDetector`. Detections are matched to the
record's labelled hands by minimum-cost assignment (Hungarian) on the mean keypoint distance; a pair
is accepted only if that distance is below ``max_dist`` × the labelled bbox's longer side (default
0.5), so a detection of the wrong hand is not scored against it.

Per labelled hand: confidence = the matched detection's confidence, 0 when unmatched (Hand Conf. is
their mean); squared error = mean over the 21 joints of the squared Euclidean pixel distance
(MSE-2D is its mean over matched hands, px² at the image's resolution).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass
class Detection:
    """One detected hand: (21, 2) pixel keypoints in OpenPose order, a confidence, its side if known."""

    keypoints: np.ndarray
    confidence: float
    side: str | None = None


@runtime_checkable
class Keypoint2DDetector(Protocol):
    """Anything that finds hands in an RGB uint8 HxWx3 image."""

    name: str

    def detect(self, image: np.ndarray) -> list[Detection]: ...


@dataclass
class HandScore:
    """The 2D metrics of one labelled hand."""

    sample_id: str
    side: str
    confidence: float  # 0 when no detection matched
    sq_error: float | None  # px², None when unmatched
    detected: np.ndarray | None = None  # (21, 2) matched keypoints
    detected_side: str | None = None  # the matched detection's side, when the detector gives one


def match_detections(
    detections: list[Detection], gt_keypoints: list[np.ndarray], gt_bboxes: list, max_dist: float = 0.5
) -> list[int | None]:
    """For each labelled hand, the index of its matched detection (or None)."""
    out: list[int | None] = [None] * len(gt_keypoints)
    if not detections or not gt_keypoints:
        return out
    cost = np.array(
        [
            [
                float(np.linalg.norm(np.asarray(d.keypoints) - np.asarray(g), axis=-1).mean())
                for g in gt_keypoints
            ]
            for d in detections
        ]
    )
    rows, cols = linear_sum_assignment(cost)
    for r, c in zip(rows, cols):
        limit = max_dist * max(gt_bboxes[c][2], gt_bboxes[c][3])
        if cost[r, c] <= limit:
            out[c] = int(r)
    return out


def score_hands(
    sample_id: str,
    detections: list[Detection],
    sides: list[str],
    gt_keypoints: list[np.ndarray],
    gt_bboxes: list,
    max_dist: float = 0.5,
) -> list[HandScore]:
    """Match and score the labelled hands of one image."""
    idx = match_detections(detections, gt_keypoints, gt_bboxes, max_dist)
    scores = []
    for side, g, i in zip(sides, gt_keypoints, idx):
        if i is None:
            scores.append(HandScore(sample_id, side, 0.0, None))
            continue
        kp = np.asarray(detections[i].keypoints, np.float64)
        err = float((np.sum((kp - np.asarray(g, np.float64)) ** 2, axis=-1)).mean())
        det = detections[i]
        scores.append(HandScore(sample_id, side, float(det.confidence), err, kp, det.side))
    return scores


def summarise(scores: list[HandScore]) -> dict[str, float | int | None]:
    """Hand Conf., MSE-2D and the detection rate over labelled hands."""
    matched = [s.sq_error for s in scores if s.sq_error is not None]
    return {
        "hand_conf": float(np.mean([s.confidence for s in scores])) if scores else None,
        "mse_2d": float(np.mean(matched)) if matched else None,
        "detection_rate": len(matched) / len(scores) if scores else None,
        "num_hands": len(scores),
    }
