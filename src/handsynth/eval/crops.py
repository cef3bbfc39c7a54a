"""Hand crops for FID-H / KID-H / hand-level estimators: one rule, used for real and generated images.

Rule (docs/eval.md): a square centred on the hand's bbox centre with side ``scale × max(w, h)``
(default scale 1.5, the usual hand-crop context margin), pixels outside the image filled with zeros,
resized to the extractor's input size (299 for Inception) with bicubic filtering. Two-hand records give
one crop per hand.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

DEFAULT_SCALE = 1.5


def square_box(bbox: Sequence[float], scale: float = DEFAULT_SCALE) -> tuple[float, float, float]:
    """[x, y, w, h] -> square (x0, y0, side) centred on the box."""
    x, y, w, h = (float(v) for v in bbox)
    side = scale * max(w, h)
    cx, cy = x + w / 2.0, y + h / 2.0
    return cx - side / 2.0, cy - side / 2.0, side


def crop_square(image: np.ndarray, box: tuple[float, float, float], size: int) -> np.ndarray:
    """Crop (x0, y0, side) from uint8 HxWx3 with zero padding, resized to size×size (bicubic)."""
    x0, y0, side = box
    ix0, iy0 = int(np.floor(x0)), int(np.floor(y0))
    s = max(1, int(np.round(side)))
    h, w = image.shape[:2]
    canvas = np.zeros((s, s, 3), dtype=np.uint8)
    sx0, sy0 = max(ix0, 0), max(iy0, 0)
    sx1, sy1 = min(ix0 + s, w), min(iy0 + s, h)
    if sx1 > sx0 and sy1 > sy0:
        canvas[sy0 - iy0 : sy1 - iy0, sx0 - ix0 : sx1 - ix0] = image[sy0:sy1, sx0:sx1, :3]
    if s == size:
        return canvas
    return np.asarray(Image.fromarray(canvas).resize((size, size), resample=Image.BICUBIC))


def hand_crop(
    image: np.ndarray, bbox: Sequence[float], size: int, scale: float = DEFAULT_SCALE
) -> np.ndarray:
    """The documented hand crop of one hand's bbox."""
    return crop_square(image, square_box(bbox, scale), size)
