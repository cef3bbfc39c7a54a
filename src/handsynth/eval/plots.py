"""Report figures drawn with PIL only (matplotlib is not a dependency): PCK curves, sample grids."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from handsynth.viz import wrap_text

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
# OpenPose-21 bones: wrist to each finger base, then along each finger.
BONES = [(0, 1), (1, 2), (2, 3), (3, 4)] + [
    (a, b)
    for base in (5, 9, 13, 17)
    for a, b in [(0, base), (base, base + 1), (base + 1, base + 2), (base + 2, base + 3)]
]


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def line_plot(
    curves: dict[str, tuple[Sequence[float], Sequence[float]]],
    title: str,
    xlabel: str,
    ylabel: str,
    size: tuple[int, int] = (640, 440),
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] = (0.0, 1.0),
) -> Image.Image:
    """A labelled multi-curve plot with axes, ticks, grid and a legend."""
    w, h = size
    left, right, top, bottom = 60, 20, 36, 50
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    font = _font()
    xs_all = (
        np.concatenate([np.asarray(x, float) for x, _ in curves.values()]) if curves else np.array([0.0, 1.0])
    )
    x0, x1 = x_range if x_range else (float(xs_all.min()), float(xs_all.max()))
    y0, y1 = y_range
    pw, ph = w - left - right, h - top - bottom

    def px(x: float, y: float) -> tuple[float, float]:
        return left + (x - x0) / max(x1 - x0, 1e-12) * pw, top + (1 - (y - y0) / max(y1 - y0, 1e-12)) * ph

    for i in range(6):
        fx = x0 + (x1 - x0) * i / 5
        fy = y0 + (y1 - y0) * i / 5
        gx, _ = px(fx, y0)
        _, gy = px(x0, fy)
        d.line([(gx, top), (gx, top + ph)], fill=(230, 230, 230))
        d.line([(left, gy), (left + pw, gy)], fill=(230, 230, 230))
        d.text((gx - 8, top + ph + 6), f"{fx:g}", fill="black", font=font)
        d.text((left - 34, gy - 6), f"{fy:.1f}", fill="black", font=font)
    d.rectangle([left, top, left + pw, top + ph], outline="black")
    d.text((left, 10), title, fill="black", font=font)
    d.text((left + pw // 2 - 30, h - 20), xlabel, fill="black", font=font)
    d.text((4, top - 16), ylabel, fill="black", font=font)
    for k, (name, (xs, ys)) in enumerate(curves.items()):
        color = PALETTE[k % len(PALETTE)]
        pts = [px(float(x), float(y)) for x, y in zip(xs, ys)]
        if len(pts) > 1:
            d.line(pts, fill=color, width=2)
        ly = top + 8 + 14 * k
        d.line([(left + pw - 150, ly + 5), (left + pw - 130, ly + 5)], fill=color, width=3)
        d.text((left + pw - 125, ly), name, fill="black", font=font)
    return img


def draw_skeleton(
    img: Image.Image, keypoints: np.ndarray, color: tuple[int, int, int], radius: int = 2
) -> None:
    """Draw OpenPose-21 bones and joints on ``img`` in place."""
    d = ImageDraw.Draw(img)
    kp = np.asarray(keypoints, float)
    for a, b in BONES:
        d.line([tuple(kp[a]), tuple(kp[b])], fill=color, width=max(1, radius // 2 + 1))
    for x, y in kp:
        d.ellipse([x - radius, y - radius, x + radius, y + radius], fill=color)


def grid(rows: list[list[Image.Image]], labels: list[str], cell: int = 192, title: str = "") -> Image.Image:
    """Rows of equally sized tiles, each row captioned on its left."""
    ncol = max((len(r) for r in rows), default=1)
    label_w, head = 170, 24 if title else 4
    out = Image.new("RGB", (label_w + ncol * (cell + 4), head + len(rows) * (cell + 4)), "white")
    d = ImageDraw.Draw(out)
    font = _font()
    if title:
        d.text((6, 6), title, fill="black", font=font)
    for i, (row, label) in enumerate(zip(rows, labels)):
        y = head + i * (cell + 4)
        for k, line in enumerate(wrap_text(label, 26)[:8]):
            d.text((6, y + 6 + 13 * k), line, fill="black", font=font)
        for j, tile in enumerate(row):
            scale = cell / max(tile.size)
            t = tile.resize(
                (max(1, round(tile.width * scale)), max(1, round(tile.height * scale))), Image.BICUBIC
            )
            out.paste(t, (label_w + j * (cell + 4), y))
    return out


def skeleton_tile(
    pred: np.ndarray, gt: np.ndarray, size: int = 192, background: Image.Image | None = None
) -> Image.Image:
    """Pred (red) and gt (green) 2D skeletons; without a background, fit both into the tile."""
    if background is not None:
        return _on_background(background, pred, gt)
    pts = np.concatenate([pred, gt])
    lo, hi = pts.min(0), pts.max(0)
    s = (size - 20) / max(float((hi - lo).max()), 1e-9)
    img = Image.new("RGB", (size, size), (250, 250, 250))
    draw_skeleton(img, (gt - lo) * s + 10, (30, 160, 30))
    draw_skeleton(img, (pred - lo) * s + 10, (210, 40, 40))
    return img


def _on_background(bg: Image.Image, pred: np.ndarray, gt: np.ndarray) -> Image.Image:
    img = bg.convert("RGB").copy()
    r = max(2, round(max(img.size) / 150))
    draw_skeleton(img, gt, (30, 160, 30), r)
    draw_skeleton(img, pred, (210, 40, 40), r)
    return img


def histogram_plot(
    values: Sequence[float],
    title: str,
    xlabel: str,
    threshold: float | None = None,
    bins: int = 30,
    size: tuple[int, int] = (480, 300),
) -> Image.Image:
    """Bar histogram of ``values`` with an optional vertical threshold line (bars above it in red);
    NaN and infinite values are left out."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    w, h = size
    left, right, top, bottom = 50, 16, 30, 44
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    font = _font()
    hi = max(float(v.max()) if v.size else 1.0, threshold or 0.0) * 1.05 or 1.0
    counts, edges = np.histogram(v, bins=bins, range=(0.0, hi))
    pw, ph = w - left - right, h - top - bottom
    top_count = max(int(counts.max()) if counts.size else 1, 1)
    for c, a, b in zip(counts, edges[:-1], edges[1:]):
        x0, x1 = left + a / hi * pw, left + b / hi * pw
        y = top + ph * (1 - c / top_count)
        color = PALETTE[3] if threshold is not None and a >= threshold else PALETTE[0]
        if c:
            d.rectangle([x0 + 1, y, max(x0 + 1, x1 - 1), top + ph], fill=color)
    d.rectangle([left, top, left + pw, top + ph], outline="black")
    for i in range(6):
        fx = hi * i / 5
        gx = left + fx / hi * pw
        d.text((gx - 8, top + ph + 6), f"{fx:.0f}", fill="black", font=font)
    d.text((left - 40, top - 4), str(top_count), fill="black", font=font)
    d.text((left - 12, top + ph - 8), "0", fill="black", font=font)
    if threshold is not None:
        tx = left + threshold / hi * pw
        d.line([(tx, top), (tx, top + ph)], fill=(0, 0, 0), width=2)
        d.text((min(tx + 4, left + pw - 60), top + 4), f"max {threshold:.1f}", fill="black", font=font)
    d.text((left, 10), title, fill="black", font=font)
    d.text((left + pw // 2 - 30, h - 18), xlabel, fill="black", font=font)
    return img
