"""What a user looks at after a generation run: the contact sheet and hand-token attention overlays."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from handsynth.data import Sample
from handsynth.render.crop import crop_image
from handsynth.text.tokenizer import clean_prompt
from handsynth.viz import SEG_PALETTE, contact_sheet, stack_vertically

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

SHEET = "contact_sheet.png"
ATTENTION_SHEET = "attention_sheet.png"
ATTENTION_DIR = "attention"


def heat(values: np.ndarray) -> np.ndarray:
    """[0, 1] -> RGB uint8 (black-red-yellow-white), readable on any image."""
    v = np.clip(values, 0, 1)[..., None]
    rgb = np.concatenate([np.clip(3 * v, 0, 1), np.clip(3 * v - 1, 0, 1), np.clip(3 * v - 2, 0, 1)], -1)
    return (rgb * 255).astype(np.uint8)


def overlay(image: Image.Image, attention: np.ndarray, alpha: float = 0.55) -> Image.Image:
    """A token's attention map (h, w), upsampled to the image and min-max normalised, over the image."""
    a = np.asarray(attention, dtype=np.float32)
    span = float(a.max() - a.min())
    a = (a - a.min()) / span if span > 0 else np.zeros_like(a)
    up = Image.fromarray((a * 255).astype(np.uint8)).resize(image.size, Image.Resampling.BILINEAR)
    colour = heat(np.asarray(up, dtype=np.float32) / 255)
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    return Image.fromarray((base * (1 - alpha) + colour * alpha).round().astype(np.uint8))


def attention_strip(
    image: Image.Image,
    attention: dict[int, np.ndarray],
    token_names: dict[int, str],
    caption: str,
    cell: int = 160,
) -> Image.Image:
    """The generated image, then one overlay per hand token titled with the token (the paper's Fig. 2)."""
    positions = sorted(attention)
    row = [image] + [overlay(image, attention[i]) for i in positions]
    titles = ["generated"] + [f"{token_names.get(i, '?')} @{i}" for i in positions]
    return contact_sheet([row], column_titles=titles, row_captions=[caption], cell=cell, caption_lines=2)


def token_names(tokenizer: PreTrainedTokenizerBase, prompt: str, positions: list[int]) -> dict[int, str]:
    """Readable token text at each position of the 77-token sequence (``</w>`` dropped)."""
    ids = tokenizer(clean_prompt(prompt), truncation=True, max_length=77).input_ids
    toks = tokenizer.convert_ids_to_tokens(ids)
    return {i: toks[i].replace("</w>", "") for i in positions if 0 <= i < len(toks)}


def _load(path: Path, labels: bool = False) -> Image.Image:
    """An image for display; 16-bit depth stretched, ``labels`` (a seg map) painted in the seg colours."""
    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I"):
            a = np.asarray(im).astype(np.float32)
            fg = a > 0
            out = np.zeros(a.shape, np.uint8)
            if fg.any():
                lo, hi = a[fg].min(), a[fg].max()
                out[fg] = (255 - 200 * (a[fg] - lo) / max(hi - lo, 1.0)).astype(np.uint8)
            return Image.fromarray(out).convert("RGB")
        rgb = im.convert("RGB")
    if labels:  # labels 0-3 would show black
        return Image.fromarray(SEG_PALETTE[np.clip(np.asarray(rgb)[..., 0], 0, 3)])
    return rgb


def _local_map(root: Path, s: Sample, name: str) -> Image.Image:
    """The stored local map, or the global map cropped by the record's box (what the method saw)."""
    if name in s.local.conditions:
        return _load(root / s.local.conditions[name], labels=name == "seg")

    glob = _load(root / s.conditions[name], labels=name == "seg")
    return Image.fromarray(crop_image(np.asarray(glob), s.local.box, s.local.size))


def generation_sheet(root: Path, samples: list[Sample], maps: tuple[str, ...]) -> Image.Image:
    """Rows of condition map(s) | generated image (| local condition | local generated), with the prompt."""
    rows, captions = [], []
    has_local = any(s.local is not None and s.local.file_name for s in samples)
    for s in samples:
        row = [_load(root / s.conditions[m], labels=m == "seg") for m in maps if m in s.conditions]
        row.append(_load(root / s.file_name))
        if has_local and s.local is not None and s.local.file_name:
            row += [_local_map(root, s, m) for m in maps]
            row.append(_load(root / s.local.file_name))
        rows.append(row)
        captions.append(f"{s.id}: {s.prompt}")
    titles = [*maps, "generated"] + ([*(f"local {m}" for m in maps), "local generated"] if has_local else [])
    return contact_sheet(rows, column_titles=titles, row_captions=captions, caption_lines=2)


def attention_sheet(strips: list[Path]) -> Image.Image | None:
    """Stack the per-sample attention strips (widest first row sets the width)."""
    images = [Image.open(p).convert("RGB") for p in strips if p.exists()]
    if not images:
        return None
    return stack_vertically(images)
