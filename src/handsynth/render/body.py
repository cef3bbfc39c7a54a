"""The `body` map: coarse arm/body context for SesaHand's hierarchical structural fusion.

Two layers on black, both optional per record (``body`` field, docs/format.md):

- the forearm silhouette: the world's arm tube (:func:`handsynth.world.forearm.make_forearm`) rebuilt
  from the posed hand and ``body.forearms[i]`` (side, sleeve start, length), drawn flat grey where it is
  not hidden behind a hand;
- an OpenPose-style body skeleton from ``body.keypoints_2d`` (COCO-17 order, [u, v, visibility]).
  ControlNet's OpenPose annotator draws OpenPose-18 (COCO-17 plus a neck): we add the neck as the
  shoulders' midpoint when both are labelled, then draw its 17 limbs with its 18 colours (limbs at 60 %
  brightness, 8 px wide at 512 px; joints as radius-4 discs), skipping keypoints with visibility 0.

A record without either gets an all-black map (and the caller counts it, for the run summary).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from handsynth.render.skeleton import REFERENCE_SIZE, _stamp

SILHOUETTE_GREY = (96, 96, 96)
# COCO-17 index of each OpenPose-18 keypoint (None: the neck, the shoulders' midpoint).
OPENPOSE18_FROM_COCO17 = (0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
# OpenPose-18 limbs (0-based) and the annotator's 18 keypoint colours (limb i uses colour i).
OPENPOSE_LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip
OPENPOSE_COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
LIMB_HALF_WIDTH = 4.0  # the annotator's stickwidth, at 512 px
LIMB_BRIGHTNESS = 0.6
BODY_JOINT_RADIUS = 4.0


def openpose18(keypoints_2d: np.ndarray) -> np.ndarray:
    """COCO-17 [u, v, visibility] -> OpenPose-18 (u, v) with NaN for keypoints that are not labelled."""
    kp = np.asarray(keypoints_2d, np.float64).reshape(17, 3)
    xy = np.where(kp[:, 2:3] > 0, kp[:, :2], np.nan)
    out = np.full((18, 2), np.nan)
    for k, c in enumerate(OPENPOSE18_FROM_COCO17):
        if c is not None:
            out[k] = xy[c]
    out[1] = (xy[5] + xy[6]) / 2  # NaN unless both shoulders are labelled
    return out


def draw_body_skeleton(canvas: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """Draw OpenPose-18 keypoints (18, 2) (NaN = missing) onto ``canvas`` (H, W, 3) in place."""
    h, w = canvas.shape[:2]
    scale = min(w, h) / REFERENCE_SIZE
    half = max(0.5, LIMB_HALF_WIDTH * scale)
    radius = max(0.75, BODY_JOINT_RADIUS * scale)
    for (a, b), color in zip(OPENPOSE_LIMBS, OPENPOSE_COLORS):
        if np.isfinite(keypoints[[a, b]]).all():
            dim = tuple(int(round(c * LIMB_BRIGHTNESS)) for c in color)
            _stamp(canvas, keypoints[a], keypoints[b], half, dim)
    for p, color in zip(keypoints, OPENPOSE_COLORS):
        if np.isfinite(p).all():
            _stamp(canvas, p, p, radius, color)
    return canvas


def compose_body_map(
    width: int,
    height: int,
    silhouette: np.ndarray | None = None,
    keypoints: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """The uint8 (H, W, 3) body map: the bool (H, W) silhouette in grey, then each skeleton on top."""
    canvas = np.zeros((height, width, 3), np.uint8)
    if silhouette is not None:
        canvas[np.asarray(silhouette, bool)] = SILHOUETTE_GREY
    for kp in keypoints:
        draw_body_skeleton(canvas, np.asarray(kp, np.float64))
    return canvas
