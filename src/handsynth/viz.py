"""Contact sheets: the pictures users look at after every stage (render, generate, evaluate), and a
numpy mesh preview for pictures drawn below the renderer."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SEG_PALETTE = np.array([[0, 0, 0], [230, 80, 60], [60, 120, 230], [90, 200, 90]], np.uint8)
"""Display colours of the seg labels: background, right hand, left hand, object."""


def _to_rgb(img: np.ndarray | Image.Image, size: int) -> Image.Image:
    if isinstance(img, np.ndarray):
        a = img
        if a.dtype == np.uint16:  # depth in mm: stretch the foreground for display
            fg = a > 0
            out = np.zeros(a.shape, np.uint8)
            if fg.any():
                lo, hi = float(a[fg].min()), float(a[fg].max())
                out[fg] = (255 - 200 * (a[fg] - lo) / max(hi - lo, 1.0)).astype(np.uint8)
            a = out
        elif a.ndim == 2 and a.max() <= 3:  # segmentation labels
            a = SEG_PALETTE[np.clip(a, 0, 3)]
        img = Image.fromarray(a)
    img = img.convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return img


def wrap_text(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken between words (a longer word keeps its line)."""
    words, lines, line = text.split(), [], ""
    for w in words:
        if len(line) + len(w) + 1 > width and line:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    if line:
        lines.append(line)
    return lines


def _title_lines(title: str, width: int) -> list[str]:
    """A title cut into lines of at most ``width`` characters, after an underscore or space when one
    falls in the line (``sesahand_nofusion`` -> ``sesahand_``, ``nofusion``)."""
    lines = []
    while len(title) > width:
        cut = max(title.rfind("_", 0, width), title.rfind(" ", 0, width)) + 1 or width
        lines.append(title[:cut])
        title = title[cut:]
    return [*lines, title]


def contact_sheet(
    rows: Sequence[Sequence[np.ndarray | Image.Image]],
    column_titles: Sequence[str] | None = None,
    row_captions: Sequence[str] | None = None,
    cell: int = 160,
    caption_lines: int = 2,
    title_lines: int = 1,
) -> Image.Image:
    """A grid: one row per sample, one column per image kind; optional titles (a title longer than its
    cell continues on up to ``title_lines`` lines) and per-row captions."""
    font = ImageFont.load_default()
    ncol = max(len(r) for r in rows)
    title_h = 12 * title_lines + 4 if column_titles else 0
    per_line = max(4, cell // 6)  # the default font's characters per cell
    cap_h = 12 * caption_lines + 4 if row_captions else 0
    sheet = Image.new("RGB", (ncol * cell, title_h + len(rows) * (cell + cap_h)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for j, title in enumerate(column_titles or []):
        for k, part in enumerate(_title_lines(title, per_line)[:title_lines]):
            draw.text((j * cell + 4, 2 + 12 * k), part, fill=(230, 230, 230), font=font)
    for i, row in enumerate(rows):
        y = title_h + i * (cell + cap_h)
        for j, img in enumerate(row):
            sheet.paste(_to_rgb(img, cell), (j * cell, y))
        if row_captions:
            for k, text in enumerate(wrap_text(row_captions[i], max(8, ncol * cell // 6))[:caption_lines]):
                draw.text((4, y + cell + 2 + 12 * k), text, fill=(200, 200, 200), font=font)
    return sheet


def stack_vertically(images: Sequence[Image.Image]) -> Image.Image:
    """Images one under the other, left-aligned on a dark canvas as wide as the widest."""
    sheet = Image.new("RGB", (max(im.width for im in images), sum(im.height for im in images)), (24, 24, 24))
    y = 0
    for im in images:
        sheet.paste(im, (0, y))
        y += im.height
    return sheet


def rasterize(
    vertices: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    width: int,
    height: int,
    color: tuple[float, float, float] | np.ndarray = (0.93, 0.72, 0.60),
    background: tuple[int, int, int] = (255, 255, 255),
    light: tuple[float, float, float] = (-0.3, -0.5, -1.0),
) -> np.ndarray:
    """Shaded ``(H, W, 3)`` uint8 image of a camera-frame mesh (OpenCV frame, z forward); ``color`` is
    one RGB in [0, 1] or one per vertex (V, 3), so a hand and an object can be drawn as one mesh.

    A numpy z-buffer with Lambert shading: a preview that needs no OpenGL (the pose tools sit below the
    renderer and draw their reports with it)."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    uvw = v @ np.asarray(K, dtype=np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):  # points on the camera plane: faces dropped below
        uv = uvw[:, :2] / uvw[:, 2:3]
    z = v[:, 2]
    # Smooth vertex normals for shading.
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, f[:, k], fn)
    vn /= np.linalg.norm(vn, axis=1, keepdims=True) + 1e-12
    L = np.asarray(light, dtype=np.float64)  # from the surface towards the light
    L /= np.linalg.norm(L)
    shade = 0.35 + 0.65 * np.clip(vn @ L, 0.0, 1.0)
    lit = shade[:, None] * np.broadcast_to(np.asarray(color, dtype=np.float64), (len(v), 3))

    f = f[(z[f] > 1e-9).all(1)]  # faces behind the camera are not drawn
    tri = uv[f]  # (F, 3, 2)
    lo = np.maximum(np.floor(tri.min(1) - 0.5).astype(int), 0)  # pixel windows clipped to the image
    hi = np.minimum(np.ceil(tri.max(1) - 0.5).astype(int), [width - 1, height - 1])
    size = (hi - lo).max(1) + 1
    depth = np.full(height * width, np.inf)
    value = np.zeros((height * width, 3))
    # Triangles in buckets of window side k (powers of two): a few large ones (a box's side filling the
    # image) do not make every small one test a large window, and none is cut off.
    bucket = np.where(size > 0, np.ceil(np.log2(np.maximum(size, 1))).astype(int), -1)
    for level in np.unique(bucket[bucket >= 0]):
        k = int(2**level)
        members = np.flatnonzero(bucket == level)
        chunk = max(1, 2_000_000 // (k * k))
        for start in range(0, len(members), chunk):
            _raster_chunk(members[start : start + chunk], k, lo, tri, f, z, lit, width, height, depth, value)
    img = np.empty((height * width, 3))
    img[:] = background
    hit = np.isfinite(depth)
    img[hit] = 255 * value[hit]
    return np.clip(img, 0, 255).astype(np.uint8).reshape(height, width, 3)


def _raster_chunk(
    sl: np.ndarray, k: int, lo: np.ndarray, tri: np.ndarray, f: np.ndarray, z: np.ndarray, lit: np.ndarray,
    width: int, height: int, depth: np.ndarray, value: np.ndarray,
) -> None:  # fmt: skip
    """Z-buffer the triangles ``sl`` (pixel windows k × k from ``lo``) into ``depth`` / ``value``."""
    ox, oy = np.meshgrid(np.arange(k), np.arange(k))
    px = lo[sl, 0:1] + ox.reshape(1, -1)
    py = lo[sl, 1:2] + oy.reshape(1, -1)
    cx, cy = px + 0.5, py + 0.5
    a, b, c = tri[sl, 0], tri[sl, 1], tri[sl, 2]
    den = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
    den = np.where(np.abs(den) < 1e-12, np.nan, den)[:, None]
    l0 = ((b[:, 1:2] - c[:, 1:2]) * (cx - c[:, 0:1]) + (c[:, 0:1] - b[:, 0:1]) * (cy - c[:, 1:2])) / den
    l1 = ((c[:, 1:2] - a[:, 1:2]) * (cx - c[:, 0:1]) + (a[:, 0:1] - c[:, 0:1]) * (cy - c[:, 1:2])) / den
    l2 = 1 - l0 - l1
    inside = (l0 >= -1e-9) & (l1 >= -1e-9) & (l2 >= -1e-9) & (px >= 0) & (py >= 0)
    inside &= (px < width) & (py < height)
    fi = np.nonzero(inside)
    ff = f[sl][fi[0]]
    w0, w1, w2 = l0[fi], l1[fi], l2[fi]
    zz = w0 * z[ff[:, 0]] + w1 * z[ff[:, 1]] + w2 * z[ff[:, 2]]
    ss = w0[:, None] * lit[ff[:, 0]] + w1[:, None] * lit[ff[:, 1]] + w2[:, None] * lit[ff[:, 2]]
    pix = py[fi] * width + px[fi]
    order = np.lexsort((zz, pix))
    pix, zz, ss = pix[order], zz[order], ss[order]
    first = np.ones(len(pix), dtype=bool)
    first[1:] = pix[1:] != pix[:-1]
    pix, zz, ss = pix[first], zz[first], ss[first]
    closer = zz < depth[pix]
    depth[pix[closer]] = zz[closer]
    value[pix[closer]] = ss[closer]
