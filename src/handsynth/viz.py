"""Contact sheets: the pictures users look at after every stage (render, generate, evaluate)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


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
            palette = np.array([[0, 0, 0], [230, 80, 60], [60, 120, 230], [90, 200, 90]], np.uint8)
            a = palette[np.clip(a, 0, 3)]
        img = Image.fromarray(a)
    img = img.convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return img


def _wrap(text: str, width: int) -> list[str]:
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


def contact_sheet(
    rows: Sequence[Sequence[np.ndarray | Image.Image]],
    column_titles: Sequence[str] | None = None,
    row_captions: Sequence[str] | None = None,
    cell: int = 160,
    caption_lines: int = 2,
) -> Image.Image:
    """A grid: one row per sample, one column per image kind; optional titles and per-row captions."""
    font = ImageFont.load_default()
    ncol = max(len(r) for r in rows)
    title_h = 16 if column_titles else 0
    cap_h = 12 * caption_lines + 4 if row_captions else 0
    sheet = Image.new("RGB", (ncol * cell, title_h + len(rows) * (cell + cap_h)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for j, title in enumerate(column_titles or []):
        draw.text((j * cell + 4, 2), title, fill=(230, 230, 230), font=font)
    for i, row in enumerate(rows):
        y = title_h + i * (cell + cap_h)
        for j, img in enumerate(row):
            sheet.paste(_to_rgb(img, cell), (j * cell, y))
        if row_captions:
            for k, text in enumerate(_wrap(row_captions[i], max(8, ncol * cell // 6))[:caption_lines]):
                draw.text((4, y + cell + 2 + 12 * k), text, fill=(200, 200, 200), font=font)
    return sheet
