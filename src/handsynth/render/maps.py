"""The condition maps: their names, array layouts and PNG files.

=========  ===============  ========================================================================
name       array            meaning
=========  ===============  ========================================================================
mesh       uint8 (H, W, 3)  AttentionHand's mesh image: light-grey Lambert hands on black
normal     uint8 (H, W, 3)  camera-space unit normals (n * 0.5 + 0.5) * 255, black background
texture    uint8 (H, W, 3)  lit appearance: skin / vertex colours and object colours (HandBooster)
seg        uint8 (H, W)     0 background, 1 right hand, 2 left hand, 3 object
depth      uint16 (H, W)    camera z in millimetres, 0 = background (a 16-bit PNG on disk)
skeleton   uint8 (H, W, 3)  OpenPose-coloured bones and joints on black
body       uint8 (H, W, 3)  arm silhouette (grey) + OpenPose body skeleton on black (render/body.py)
=========  ===============  ========================================================================

``body`` needs the record's optional ``body`` data, so :class:`~handsynth.render.ConditionRenderer`
draws it, not the GL :class:`~handsynth.render.Renderer`; it is not among the default ``MAP_NAMES``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from handsynth.atomic import atomic_open
from handsynth.errors import UserError

MAP_NAMES = ("mesh", "normal", "texture", "seg", "depth", "skeleton")  # what the GL Renderer draws
BODY_MAP = "body"
RECORD_MAPS = (*MAP_NAMES, BODY_MAP)  # every map a record can carry (handsynth render --maps)

# name -> (dtype, channels or None for a single-channel (H, W) map)
MAP_LAYOUT: dict[str, tuple[type, int | None]] = {
    "mesh": (np.uint8, 3),
    "normal": (np.uint8, 3),
    "texture": (np.uint8, 3),
    "seg": (np.uint8, None),
    "depth": (np.uint16, None),
    "skeleton": (np.uint8, 3),
    BODY_MAP: (np.uint8, 3),
}


def check_maps(maps: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Validated tuple of map names (a single name is accepted too)."""
    names = (maps,) if isinstance(maps, str) else tuple(maps)
    unknown = [m for m in names if m not in RECORD_MAPS]
    if unknown or not names:
        raise UserError(f"unknown condition map(s) {unknown or names}; choose from {', '.join(RECORD_MAPS)}")
    return names


def _check_array(name: str, array: np.ndarray) -> np.ndarray:
    check_maps(name)
    dtype, channels = MAP_LAYOUT[name]
    a = np.asarray(array)
    shape_ok = a.ndim == 2 if channels is None else (a.ndim == 3 and a.shape[2] == channels)
    if a.dtype != dtype or not shape_ok:
        want = "(H, W)" if channels is None else f"(H, W, {channels})"
        raise UserError(f"map {name!r} must be {np.dtype(dtype).name} {want}, got {a.dtype} {a.shape}")
    return np.ascontiguousarray(a)


def map_to_image(name: str, array: np.ndarray) -> Image.Image:
    """The PIL image a map is stored as (depth: 16-bit grayscale)."""
    a = _check_array(name, array)
    return Image.fromarray(a)  # uint16 2-D -> mode "I;16", written as a 16-bit PNG


def save_map(name: str, array: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a map as PNG atomically (temp file + rename), creating parent folders."""
    image = map_to_image(name, array)
    path = Path(path)
    with atomic_open(path) as f:
        image.save(f, format="PNG")
    return path


def load_map(name: str, path: str | os.PathLike) -> np.ndarray:
    """Read a map written by :func:`save_map` back into its array layout."""
    check_maps(name)
    path = Path(path)
    if not path.is_file():
        raise UserError(f"condition map file {path} does not exist; render it first (handsynth render)")
    dtype, channels = MAP_LAYOUT[name]
    with Image.open(path) as img:
        if name == "depth":
            if img.mode not in ("I;16", "I;16B", "I", "L"):
                raise UserError(f"{path}: depth map must be a 16-bit grayscale PNG, got mode {img.mode}")
            return np.asarray(img).astype(np.uint16)
        img = img.convert("L" if channels is None else "RGB")
        return np.asarray(img, dtype=dtype)


# How each map is resized to an output size: label and depth maps must not blend neighbouring values.
RESIZE = {"seg": Image.Resampling.NEAREST, "depth": Image.Resampling.NEAREST}


def condition_image(name: str, image: Image.Image, width: int, height: int) -> Image.Image:
    """A condition map as the RGB picture a control network reads (16-bit depth: near = bright)."""
    if image.mode in ("I;16", "I;16B", "I"):
        a = np.asarray(image).astype(np.float32)
        fg = a > 0
        out = np.zeros(a.shape, np.uint8)
        if fg.any():
            lo, hi = a[fg].min(), a[fg].max()
            out[fg] = (255 - 200 * (a[fg] - lo) / max(hi - lo, 1.0)).astype(np.uint8)
        image = Image.fromarray(out)
    image = image.convert("RGB")
    if image.size != (width, height):
        image = image.resize((width, height), RESIZE.get(name, Image.Resampling.BILINEAR))
    return image
