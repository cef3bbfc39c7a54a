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
from PIL import Image, ImageDraw

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


def draw_skeleton(
    joints_2d: Sequence[np.ndarray],
    width: int,
    height: int,
    line_width: float | None = None,
    joint_radius: float | None = None,
) -> np.ndarray:
    """Draw each (21, 2) array of continuous pixel coordinates; returns uint8 (H, W, 3)."""
    scale = min(width, height) / REFERENCE_SIZE
    lw = max(1, round(line_width if line_width is not None else LINE_WIDTH * scale))
    r = max(1.0, joint_radius if joint_radius is not None else JOINT_RADIUS * scale)
    canvas = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(canvas)
    hands = []
    for i, j in enumerate(joints_2d):
        j = np.asarray(j, dtype=np.float64)
        if j.shape != (21, 2):
            raise UserError(f"joints_2d[{i}] must be (21, 2) pixel coordinates, got shape {j.shape}")
        # PIL addresses pixels by their index; our continuous coordinate of pixel i's centre is i + 0.5.
        hands.append(j - 0.5)
    for j in hands:
        for (a, b), color in zip(BONES, BONE_COLORS):
            if np.isfinite(j[[a, b]]).all():
                draw.line([tuple(j[a]), tuple(j[b])], fill=color, width=lw)
    for j in hands:
        for u, v in j:
            if np.isfinite(u) and np.isfinite(v):
                draw.ellipse([u - r, v - r, u + r, v + r], fill=JOINT_COLOR)
    return np.asarray(canvas)
