"""The `skeleton` map: OpenPose-21 hands drawn the way ControlNet's OpenPose annotator draws them.

ControlNet (and controlnet_aux) draw each of the 20 bones in the colour ``hsv(i / 20, 1, 1)`` with a
2 px line and every joint as a radius-4 disc of RGB (0, 0, 255), on black, at 512 px. Matching that
convention lets a skeleton ControlNet trained on OpenPose annotations read our maps. Thickness scales
with ``min(W, H) / 512``. A joint that is NaN is treated as missing (its bones are skipped).
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np

from handsynth.errors import UserError

# OpenPose-21: wrist, then thumb, index, middle, ring, little (4 joints each, base to tip).
BONES = tuple(
    pair
    for finger in range(5)
    for pair in [(0, 1 + 4 * finger)] + [(k, k + 1) for k in range(1 + 4 * finger, 4 + 4 * finger)]
)
BONE_COLORS = tuple(
    tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(i / len(BONES), 1.0, 1.0))
    for i in range(len(BONES))
)
JOINT_COLOR = (0, 0, 255)
REFERENCE_SIZE = 512
LINE_WIDTH = 2
JOINT_RADIUS = 4


def _stamp(canvas: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float, color: tuple) -> None:
    """Colour every pixel whose centre lies within ``radius`` of the segment a-b (a point if a == b)."""
    h, w = canvas.shape[:2]
    x0, y0 = np.floor(np.minimum(a, b) - radius).astype(int)
    x1, y1 = np.ceil(np.maximum(a, b) + radius).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x0 >= x1 or y0 >= y1:
        return
    px = np.arange(x0, x1)[None, :] + 0.5 - a[0]
    py = np.arange(y0, y1)[:, None] + 0.5 - a[1]
    d = b - a
    length2 = float(d @ d)
    t = np.clip((px * d[0] + py * d[1]) / length2, 0.0, 1.0) if length2 > 0 else 0.0
    mask = (px - t * d[0]) ** 2 + (py - t * d[1]) ** 2 <= radius**2
    canvas[y0:y1, x0:x1][mask] = color


def draw_skeleton(
    joints_2d: Sequence[np.ndarray],
    width: int,
    height: int,
    line_width: float | None = None,
    joint_radius: float | None = None,
) -> np.ndarray:
    """Draw each (21, 2) array of continuous pixel coordinates; returns uint8 (H, W, 3).

    A pixel is painted when its centre lies within half the line width of a bone or within the radius
    of a joint (sub-pixel exact, no PIL rounding); the pixel holding a joint is always painted.
    """
    scale = min(width, height) / REFERENCE_SIZE
    half = max(0.5, (line_width if line_width is not None else LINE_WIDTH * scale) / 2)
    radius = max(0.75, joint_radius if joint_radius is not None else JOINT_RADIUS * scale)
    canvas = np.zeros((height, width, 3), np.uint8)
    hands = []
    for i, j in enumerate(joints_2d):
        j = np.asarray(j, dtype=np.float64)
        if j.shape != (21, 2):
            raise UserError(f"joints_2d[{i}] must be (21, 2) pixel coordinates, got shape {j.shape}")
        hands.append(j)
    for j in hands:
        for (a, b), color in zip(BONES, BONE_COLORS):
            if np.isfinite(j[[a, b]]).all():
                _stamp(canvas, j[a], j[b], half, color)
    for j in hands:
        for p in j:
            if np.isfinite(p).all():
                _stamp(canvas, p, p, radius, JOINT_COLOR)
    return canvas
