"""One HandBooster item per hand: the square crop of the image and of every condition map, the hand's
orientation, the loss weight map; left hands mirrored into right hands.

Maps go through :func:`handsynth.render.maps.condition_image` first (the RGB picture every method reads,
the same at training and generation), are cropped with the image's box and become channels:
normal / texture / mesh / skeleton 3 channels in [-1, 1]; depth 1 channel, the crop's foreground
min-max normalised to [0, 1] (near = 1, background -1); seg 1 channel, label / 3.

Where the maps come from (``data.conditions_from``): ``render`` (default, the paper) draws them for the
crop box at ``data.condition_size``² (256) with the renderer's local crop camera and resizes them to the
model's size, so a hand that covers 40 pixels of the photo still gets sharp maps; ``stored`` cuts them
out of the record's stored full-image maps (no OpenGL needed). The photo is always cut out of the stored
image.

Mirroring a left hand flips every crop left-right, negates the normal map's x component, swaps the seg
labels of the right and left hand, and mirrors the orientation (x, -y, -z); generated images of left
hands are flipped back.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from handsynth.data.memory_cache import MemoryCache
from handsynth.data.records import Hand, Sample
from handsynth.errors import UserError
from handsynth.methods.handbooster.config import HandBoosterConfig
from handsynth.methods.handbooster.model import orientation_quaternion
from handsynth.render.conditions import ConditionRenderer
from handsynth.render.crop import crop_box, crop_image
from handsynth.render.maps import condition_image, map_to_image

SEG = "seg"
_SEG_RIGHT, _SEG_LEFT, _SEG_OBJECT = 1, 2, 3  # handsynth.render.maps labels (0 background)
_NEAREST_MAPS = ("seg", "depth")  # labels and depths must not blend


def hand_box(
    hand: Hand, width: int, height: int, expand: float, seg: np.ndarray | None = None
) -> list[float]:
    """Square [x, y, side] around the hand (+ object) box x ``expand``, shifted inside the image where
    it fits (the released code's "no black edge"); a side longer than the image is centred on it.

    ``seg`` (the seg map, label 3 = object): object pixels inside the hand's own square join the box,
    so a held object is in the crop and an object elsewhere in the picture does not widen it.
    """
    box = list(hand.bbox)
    if seg is not None:
        label = seg[..., 0] if seg.ndim == 3 else seg
        x, y, side = crop_box(hand.bbox, expand)
        x0, y0 = max(int(np.floor(x)), 0), max(int(np.floor(y)), 0)
        x1, y1 = min(int(np.ceil(x + side)), label.shape[1]), min(int(np.ceil(y + side)), label.shape[0])
        rows, cols = np.nonzero(label[y0:y1, x0:x1] == _SEG_OBJECT)
        if rows.size:
            lo_x, lo_y = min(box[0], x0 + cols.min()), min(box[1], y0 + rows.min())
            hi_x = max(box[0] + box[2], x0 + cols.max() + 1)
            hi_y = max(box[1] + box[3], y0 + rows.max() + 1)
            box = [float(lo_x), float(lo_y), float(hi_x - lo_x), float(hi_y - lo_y)]
    return [float(v) for v in crop_box(box, expand, within=(width, height))]


def mirror_map(name: str, arr: np.ndarray) -> np.ndarray:
    """A full RGB map (or the photo) seen in a mirror through x = 0: flipped left-right, the normal
    map's x component negated on the hand, the seg labels of the right and left hand swapped."""
    out = arr[:, ::-1].copy()
    if name == "normal":
        fg = out.any(axis=-1)
        out[..., 0] = np.where(fg, 255 - out[..., 0], 0)
    elif name == SEG:
        out = np.where(out == _SEG_RIGHT, _SEG_LEFT, np.where(out == _SEG_LEFT, _SEG_RIGHT, out)).astype(
            out.dtype
        )
    return out


def crop_maps(
    maps: dict[str, np.ndarray], box: list[float], size: int, mirror: bool
) -> dict[str, np.ndarray]:
    """Crop RGB uint8 maps (``condition_image`` form, or the photo as ``image``) to ``size``^2; with
    ``mirror``, the crop of the mirrored maps by the mirrored box (mirroring before resampling keeps
    the normal flip exact at the hand's edge)."""
    out = {}
    for name, arr in maps.items():
        crop_at = box
        if mirror:
            arr = mirror_map(name, arr)
            crop_at = [arr.shape[1] - box[0] - box[2], box[1], box[2]]
        out[name] = crop_image(
            arr, crop_at, size, resample="nearest" if name in _NEAREST_MAPS else "bilinear"
        )
    return out


def render_crop_maps(
    renderer: ConditionRenderer, sample: Sample, maps: list[str], box: list[float], condition_size: int,
    size: int, mirror: bool,
) -> dict[str, np.ndarray]:  # fmt: skip
    """The crop ``box``'s maps rendered at ``condition_size``² (sharp), as the RGB pictures methods read
    (``condition_image``), mirrored when asked (before resampling, as :func:`crop_maps`), resized to
    ``size``² (bilinear, nearest for seg and depth)."""
    drawn = renderer.render_box(sample, tuple(maps), box, condition_size)
    out = {}
    whole = [0.0, 0.0, float(condition_size)]
    for name in maps:
        rgb = np.asarray(
            condition_image(name, map_to_image(name, drawn[name]), condition_size, condition_size)
        )
        if mirror:
            rgb = mirror_map(name, rgb)
        out[name] = crop_image(rgb, whole, size, resample="nearest" if name in _NEAREST_MAPS else "bilinear")
    return out


def rendered_seg(renderer: ConditionRenderer, sample: Sample) -> np.ndarray:
    """The record's full-image seg map, rendered (what :func:`hand_box` reads a held object from)."""
    return renderer.render_box(sample, (SEG,))[SEG]


def map_channels(name: str, crop: np.ndarray) -> np.ndarray:
    """A cropped RGB map -> its (C, S, S) float channels (see the module docstring)."""
    a = crop.astype(np.float32)
    if name == SEG:
        return a[None, ..., 0] / 3.0
    if name == "depth":
        d = a[..., 0]
        fg = d > 0
        out = np.full(d.shape, -1.0, np.float32)
        if fg.any():
            lo, hi = d[fg].min(), d[fg].max()
            out[fg] = (d[fg] - lo) / max(hi - lo, 1.0)
        return out[None]
    return a.transpose(2, 0, 1) / 127.5 - 1.0


def condition_tensor(crops: dict[str, np.ndarray], conditions: list[str]) -> torch.Tensor:
    """The configured maps' channels, concatenated in order."""
    return torch.from_numpy(np.concatenate([map_channels(c, crops[c]) for c in conditions]))


def weight_map(seg_crop: np.ndarray, background_weight: float) -> torch.Tensor:
    """Eq. 2's w: 1 on hand and object pixels (seg label > 0), ``background_weight`` elsewhere."""
    label = seg_crop[..., 0] if seg_crop.ndim == 3 else seg_crop
    w = np.where(label > 0, 1.0, background_weight).astype(np.float32)
    return torch.from_numpy(w)[None]


def missing_maps_error(sample: Sample, missing: list[str], needed: list[str]) -> UserError:
    return UserError(
        f"record {sample.id} has no {', '.join(missing)} condition map(s), which HandBooster needs "
        f"({', '.join(needed)}); render them first: handsynth render --in DATA --out DATA_WITH_MAPS "
        f"--maps {','.join(needed)}"
    )


def read_rgb_map(name: str, path: Path, width: int, height: int) -> np.ndarray:
    """A stored map as the RGB uint8 picture methods read (``condition_image``), at the record's size."""
    with Image.open(path) as im:
        im.load()
        return np.asarray(condition_image(name, im, width, height))


def _tensor_bytes(item: dict) -> int:
    return sum(v.nbytes for v in item.values() if isinstance(v, torch.Tensor))


class HandBoosterDataset(Dataset):
    """(record, hand) items; every record is checked when the dataset is built (one error, no output)."""

    def __init__(self, samples: list[Sample], root: str | Path, cfg: HandBoosterConfig) -> None:
        self.root, self.samples, self.cfg = Path(root), samples, cfg
        self.needed = list(dict.fromkeys([*cfg.model.conditions, SEG]))  # seg: the loss weight map
        self.render = cfg.data.conditions_from == "render"
        self._renderer: ConditionRenderer | None = None
        self._renderer_pid = -1  # a GL context does not survive a fork: one renderer per process
        self._cache = MemoryCache(cfg.data.cache_mb)
        if not samples:
            raise UserError(f"dataset {self.root} has no samples")
        missing: dict[str, list[str]] = {}
        for s in samples:
            if s.file_name is None or not (self.root / s.file_name).is_file():
                raise UserError(f"record {s.id} in {self.root} has no image file; training needs the photo")
            if self.render:
                continue
            gone = [
                m for m in self.needed if m not in s.conditions or not (self.root / s.conditions[m]).is_file()
            ]
            if gone:
                missing[s.id] = gone
        if missing:
            first = next(iter(missing))
            all_missing = sorted({m for v in missing.values() for m in v})
            err = missing_maps_error(samples[[s.id for s in samples].index(first)], all_missing, self.needed)
            more = f" ({len(missing)} records lack maps; the first is {first})" if len(missing) > 1 else ""
            raise UserError(str(err) + more)
        self.items = [(i, j) for i, s in enumerate(samples) for j in range(len(s.hands))]
        if not self.items:
            raise UserError(f"dataset {self.root} has no hands to train on")
        if self.render:  # hands posable, labels matching, object meshes readable: before any output
            checker = ConditionRenderer(model_dir=cfg.data.mano_dir, data_root=self.root)
            for s in samples:
                checker.check_record(s)

    def renderer(self) -> ConditionRenderer:
        if self._renderer is None or self._renderer_pid != os.getpid():
            self._renderer = ConditionRenderer(model_dir=self.cfg.data.mano_dir, data_root=self.root)
            self._renderer_pid = os.getpid()
        return self._renderer

    def __len__(self) -> int:
        return len(self.items)

    def item_id(self, index: int) -> str:
        i, j = self.items[index]
        s = self.samples[i]
        return s.id if len(s.hands) == 1 else f"{s.id}-{s.hands[j].side}"

    def __getitem__(self, index: int) -> dict:
        """The item, from memory after its first build (its tensors are the cache's: do not modify
        them in place; batching copies them)."""
        return dict(self._cache.get(index, self._build_item, _tensor_bytes))

    def _build_item(self, index: int) -> dict:
        i, j = self.items[index]
        s = self.samples[i]
        hand = s.hands[j]
        cfg = self.cfg
        size = cfg.model.sample_size
        mirror = cfg.data.mirror_left and hand.side == "left"
        with Image.open(self.root / s.file_name) as im:
            photo = np.asarray(im.convert("RGB").resize((s.width, s.height), Image.Resampling.BICUBIC))
        if self.render:
            box = hand_box(hand, s.width, s.height, cfg.data.crop_expand, rendered_seg(self.renderer(), s))
            crops = crop_maps({"image": photo}, box, size, mirror)
            crops |= render_crop_maps(
                self.renderer(), s, self.needed, box, cfg.data.condition_size, size, mirror
            )
        else:
            maps = {m: read_rgb_map(m, self.root / s.conditions[m], s.width, s.height) for m in self.needed}
            box = hand_box(hand, s.width, s.height, cfg.data.crop_expand, maps[SEG])
            crops = crop_maps({"image": photo, **maps}, box, size, mirror)
        image = torch.from_numpy(crops["image"].astype(np.float32).transpose(2, 0, 1) / 127.5 - 1.0)
        return {
            "id": self.item_id(index),
            "image": image,
            "conditions": condition_tensor(crops, cfg.model.conditions),
            "quaternion": torch.from_numpy(
                orientation_quaternion(hand.global_orient, mirror).astype(np.float32)
            ),
            "weight": weight_map(crops[SEG], cfg.loss.background_weight),
        }
