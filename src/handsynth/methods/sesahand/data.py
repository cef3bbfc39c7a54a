"""Records -> what SesaHand trains on: image, the granularities' maps stacked along channels, the prompt,
its hand-token positions and the hand mask HSA biases.

Maps are encoded like Uni-ControlNet's (RGB maps 3 channels in [0, 1], ``seg`` one channel per label),
the same at training and generation. Every record is checked when the dataset is built (before any
output): all records missing a configured map are listed in one error with the ``handsynth render``
line that adds them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from handsynth.data.records import Sample
from handsynth.errors import UserError
from handsynth.methods.uni_controlnet.data import map_channels, map_tensor, open_image
from handsynth.text.tagging import tag_prompt
from handsynth.text.tokenizer import clip_tokenizer

log = logging.getLogger(__name__)

HAND_LABELS = (1, 2)  # seg labels of the right and left hand (handsynth.render.maps)


def stream_channels(stream_maps: dict[str, list[str]]) -> dict[str, int]:
    """Granularity -> how many input channels its maps take."""
    return {g: sum(map_channels(m) for m in maps) for g, maps in stream_maps.items()}


def stack_streams(images: dict[str, Image.Image], stream_maps: dict[str, list[str]], width: int, height: int):
    """(C, H, W) float in [0, 1]: every granularity's maps, in order (all maps must be present)."""
    parts = [map_tensor(m, images[m], width, height) for maps in stream_maps.values() for m in maps]
    return torch.cat(parts)


def hand_mask(images: dict[str, Image.Image], width: int, height: int) -> torch.Tensor:
    """(H, W) in {0, 1}: the hands (seg in {1, 2}, else the mesh map's non-black pixels, else none)."""
    if "seg" in images:
        label = np.asarray(images["seg"].convert("L").resize((width, height), Image.Resampling.NEAREST))
        mask = np.isin(label, HAND_LABELS)
    elif "mesh" in images:
        rgb = np.asarray(images["mesh"].convert("RGB").resize((width, height), Image.Resampling.NEAREST))
        mask = rgb.max(axis=-1) > 0
    else:
        mask = np.zeros((height, width), bool)
    return torch.from_numpy(mask.astype(np.float32))


def record_prompt(sample: Sample, prompt_field: str) -> str:
    """The text a record trains (or generates) with: ``prompt`` or its ``caption``."""
    if prompt_field == "prompt":
        return sample.prompt or ""
    caption = sample.extra.get("caption")
    if caption is None:
        caption = (sample.source.get("caption") or {}).get("text")
    if not isinstance(caption, str):
        raise UserError(
            f"record {sample.id} has no caption (a `caption` field or source.caption.text) but "
            "data.prompt_field=caption; caption the records (handsynth caption) or use prompt_field=prompt"
        )
    return caption


def hand_tokens(sample_id: str, prompt: str, tokenizer) -> list[int]:
    """CLIP positions of the prompt's hand words; a hand word cut off by the 77-token limit is an error."""

    words = tag_prompt(prompt, tokenizer).words
    lost = [w.word for w in words if not w.positions]
    if lost:
        raise UserError(
            f"record {sample_id}: the hand word(s) {lost} fall beyond CLIP's 77 tokens, so HSA cannot "
            "bias them; shorten the prompt (handsynth caption fits prompts to 77 tokens)"
        )
    return sorted({p for w in words for p in w.positions})


def missing_maps_error(missing: list[tuple[str, str]], maps: list[str], root: Path) -> UserError:
    ids = sorted({sid for sid, _ in missing})
    names = sorted({m for _, m in missing}, key=maps.index)
    shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
    return UserError(
        f"{len(ids)} record(s) lack the condition map(s) {', '.join(names)} that SesaHand's model.maps "
        f"lists ({shown}); render them: handsynth render --in {root} --out NEW_FOLDER --maps {','.join(maps)}"
    )


class SesaHandDataset(Dataset):
    """Global image + stacked structure maps + prompt + hand tokens + hand mask, per record."""

    def __init__(
        self,
        samples: list[Sample],
        root: str | Path,
        resolution: int,
        stream_maps: dict[str, list[str]],
        prompt_field: str = "prompt",
        hsa_enabled: bool = True,
        tokenizer=None,
    ) -> None:
        self.root = Path(root)
        self.samples = samples
        self.resolution = resolution
        self.stream_maps = stream_maps
        self.maps = [m for ms in stream_maps.values() for m in ms]
        if not samples:
            raise UserError(f"dataset {self.root} has no samples")
        missing = []
        for s in samples:
            if s.file_name is None or not (self.root / s.file_name).exists():
                raise UserError(f"record {s.id} in {self.root} has no image file; SesaHand training needs it")
            for m in self.maps:
                rel = s.conditions.get(m)
                if rel is None or not (self.root / rel).exists():
                    missing.append((s.id, m))
        if missing:
            raise missing_maps_error(missing, self.maps, self.root)
        tok = tokenizer if tokenizer is not None else clip_tokenizer()
        self.prompts = [record_prompt(s, prompt_field) for s in samples]
        self.indices = [hand_tokens(s.id, p, tok) for s, p in zip(samples, self.prompts)]
        empty = [s.id for s, p in zip(samples, self.prompts) if not p.strip()]
        if empty and hsa_enabled:
            log.warning(
                "%d record(s) have an empty prompt (e.g. %s): no hand tokens, so HSA does nothing for them",
                len(empty),
                empty[0],
            )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        s = self.samples[i]
        r = self.resolution
        image = open_image(self.root / s.file_name).convert("RGB")
        if image.size != (r, r):
            image = image.resize((r, r), Image.BICUBIC)
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)
        names = set(self.maps) | ({"seg", "mesh"} & set(s.conditions))
        images = {m: open_image(self.root / s.conditions[m]) for m in names}
        return {
            "id": s.id,
            "image": x,
            "cond": stack_streams(images, self.stream_maps, r, r),
            "hand_mask": hand_mask(images, r, r),
            "prompt": self.prompts[i],
            "indices": self.indices[i],
        }
