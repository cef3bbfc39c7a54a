"""Local (hand) crops: the square box around the hand, its intrinsics, and cropping real images.

A box is ``[x, y, side]`` in global pixels (it may reach past the image; outside is padded with 0). A
``size x size`` crop maps back by ``global = box_xy + local * side / size``, exactly like
:class:`handsynth.data.records.LocalCrop`. Rendering a crop through :func:`crop_intrinsics` gives the
same picture as cropping the global render, without the resampling blur.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from handsynth.errors import UserError

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def crop_box(
    bbox_xywh: Sequence[float], expand: float = 1.25, within: tuple[int, int] | None = None
) -> list[float]:
    """Square [x, y, side] centred on the box, side = expand * max(w, h) (AttentionHand's local crop).

    ``within`` = (width, height): slide the square inside that image where it fits (a side longer
    than the image is centred on the image), so a crop near the edge shows more photo instead of black
    padding that a model trained on the crops would learn to draw (HandBooster's "no black edge")."""
    if len(bbox_xywh) != 4:
        raise UserError(f"crop_box needs a bbox [x, y, w, h], got {list(bbox_xywh)}")
    x, y, w, h = (float(v) for v in bbox_xywh)
    if not (w > 0 and h > 0) or not all(math.isfinite(v) for v in (x, y, w, h)):
        raise UserError(f"crop_box needs a bbox with positive finite width and height, got {[x, y, w, h]}")
    if not expand > 0:
        raise UserError(f"crop_box expand must be positive, got {expand}")
    side = max(w, h) * float(expand)
    cx, cy = x + w / 2 - side / 2, y + h / 2 - side / 2
    if within is not None:
        width, height = (float(v) for v in within)
        cx = min(max(cx, 0.0), width - side) if side <= width else (width - side) / 2
        cy = min(max(cy, 0.0), height - side) if side <= height else (height - side) / 2
    return [cx, cy, side]


def _check_box(box: Sequence[float], size: int) -> tuple[float, float, float]:
    if len(box) != 3 or not float(box[2]) > 0 or not all(math.isfinite(float(v)) for v in box):
        raise UserError(f"crop box must be [x, y, side] with a positive side, got {list(box)}")
    if not isinstance(size, (int, np.integer)) or size <= 0:
        raise UserError(f"crop size must be a positive integer, got {size!r}")
    return float(box[0]), float(box[1]), float(box[2])


def crop_intrinsics(K: np.ndarray, box: Sequence[float], size: int) -> np.ndarray:
    """Intrinsics of the ``size x size`` crop camera: projects straight to local pixels."""
    x, y, side = _check_box(box, size)
    s = size / side
    S = np.array([[s, 0.0, -s * x], [0.0, s, -s * y], [0.0, 0.0, 1.0]])
    return S @ np.asarray(K, dtype=np.float64)


def to_local(uv: np.ndarray, box: Sequence[float], size: int) -> np.ndarray:
    """Global pixel coordinates (..., 2) -> crop pixel coordinates."""
    x, y, side = _check_box(box, size)
    return (np.asarray(uv, dtype=np.float64) - [x, y]) * (size / side)


def to_global(uv: np.ndarray, box: Sequence[float], size: int) -> np.ndarray:
    """Crop pixel coordinates (..., 2) -> global pixel coordinates."""
    x, y, side = _check_box(box, size)
    return np.asarray(uv, dtype=np.float64) * (side / size) + [x, y]


def crop_image(
    image: np.ndarray | Image.Image, box: Sequence[float], size: int, resample: str | None = None
) -> np.ndarray:
    """Crop ``box`` out of an image (zero padding outside) and resize it to ``size x size``.

    ``resample``: nearest | bilinear | bicubic | lanczos. Default: nearest for single-channel integer
    maps (seg labels, depth: interpolating them invents labels and depths), bilinear otherwise. PIL
    widens the filter when shrinking, so downscaling is antialiased.
    """
    x, y, side = _check_box(box, size)
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise UserError(f"crop_image needs an (H, W) or (H, W, C) image, got shape {arr.shape}")
    if resample is None:
        resample = "nearest" if arr.ndim == 2 and np.issubdtype(arr.dtype, np.integer) else "bilinear"
    if resample not in _RESAMPLE:
        raise UserError(f"crop_image resample {resample!r} is unknown; use one of {tuple(_RESAMPLE)}")
    x0, y0 = math.floor(x), math.floor(y)
    x1, y1 = math.ceil(x + side), math.ceil(y + side)
    sub = (x - x0, y - y0, x - x0 + side, y - y0 + side)

    def one(plane: np.ndarray) -> np.ndarray:
        native = plane.dtype == np.uint8 and (plane.ndim == 2 or plane.shape[2] in (3, 4))
        img = Image.fromarray(plane if native else plane.astype(np.float32))
        out = img.crop((x0, y0, x1, y1)).resize((size, size), _RESAMPLE[resample], box=sub)
        return np.asarray(out)

    if arr.dtype == np.uint8 and (arr.ndim == 2 or arr.shape[2] in (3, 4)):
        return one(arr)
    planes = arr[..., None] if arr.ndim == 2 else arr
    out = np.stack([one(np.ascontiguousarray(planes[..., c])) for c in range(planes.shape[2])], axis=-1)
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    out = out.astype(arr.dtype)
    return out[..., 0] if arr.ndim == 2 else out
