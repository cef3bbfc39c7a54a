"""Records -> (image, channel-concatenated condition maps, prompt) for Uni-ControlNet.

Each map becomes a fixed number of channels in [0, 1] (the same at training and generation, since both
go through :func:`handsynth.generate.job.condition_image` first): RGB maps 3 channels, ``seg`` one
channel per label (right hand, left hand, object), ``depth`` one channel (near = bright).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from handsynth.data.records import Sample
from handsynth.errors import UserError

SEG_LABELS = (1, 2, 3)  # right hand, left hand, object (handsynth.render.maps)


def map_channels(name: str) -> int:
    """How many input channels a condition map takes."""
    return 1 if name == "depth" else 3


def condition_channels(maps: list[str]) -> int:
    return sum(map_channels(m) for m in maps)


def map_tensor(name: str, image: Image.Image, width: int, height: int) -> torch.Tensor:
    """One map (any stored form) -> (map_channels(name), height, width) float in [0, 1]."""
    from handsynth.generate.job import condition_image

    rgb = np.asarray(condition_image(name, image, width, height), dtype=np.float32)
    if name == "seg":
        label = rgb[..., 0]
        chans = np.stack([(label == v).astype(np.float32) for v in SEG_LABELS])
    elif name == "depth":
        chans = rgb[None, ..., 0] / 255.0
    else:
        chans = rgb.transpose(2, 0, 1) / 255.0
    return torch.from_numpy(np.ascontiguousarray(chans))


def missing_map_error(sample_id: str, name: str, maps: list[str]) -> UserError:
    return UserError(
        f"record {sample_id} has no '{name}' condition map, which Uni-ControlNet's model.maps "
        f"({', '.join(maps)}) lists; render it, drop it from model.maps, or set model.missing_maps=zero"
    )


def stack_maps(
    images: dict[str, Image.Image], maps: list[str], width: int, height: int, missing: str, sample_id: str
) -> torch.Tensor:
    """The (C, H, W) channel stack of ``maps`` in order; an absent map is zeros or an error."""
    parts = []
    for m in maps:
        if m in images:
            parts.append(map_tensor(m, images[m], width, height))
        elif missing == "zero":
            parts.append(torch.zeros(map_channels(m), height, width))
        else:
            raise missing_map_error(sample_id, m, maps)
    return torch.cat(parts)


def open_image(path: Path) -> Image.Image:
    """A fully read copy of an image file (the file is closed again)."""
    with Image.open(path) as im:
        im.load()
        return im.copy()


class UniControlNetDataset(Dataset):
    """Global image + its condition maps (no local branch: Uni-ControlNet has none).

    Every record is checked when the dataset is built, so a bad record is one error before any output.
    """

    def __init__(
        self, samples: list[Sample], root: str | Path, resolution: int, maps: list[str], missing: str
    ) -> None:
        self.root = Path(root)
        self.samples = samples
        self.resolution = resolution
        self.maps = list(maps)
        self.missing = missing
        if not samples:
            raise UserError(f"dataset {self.root} has no samples")
        for s in samples:
            if s.file_name is None:
                raise UserError(f"sample {s.id} in {self.root} has no image (file_name); training needs it")
            if not (self.root / s.file_name).exists():
                raise UserError(f"sample {s.id}: image file {self.root / s.file_name} does not exist")
            for m in self.maps:
                rel = s.conditions.get(m)
                if rel is None and missing == "error":
                    raise missing_map_error(s.id, m, self.maps)
                if rel is not None and not (self.root / rel).exists():
                    raise UserError(f"sample {s.id}: '{m}' condition file {self.root / rel} does not exist")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        s = self.samples[i]
        r = self.resolution
        image = open_image(self.root / s.file_name).convert("RGB")
        if image.size != (r, r):
            image = image.resize((r, r), Image.BICUBIC)
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)
        maps = {m: open_image(self.root / s.conditions[m]) for m in self.maps if m in s.conditions}
        return {
            "id": s.id,
            "image": x,
            "cond": stack_maps(maps, self.maps, r, r, self.missing, s.id),
            "prompt": s.prompt,
        }
