"""What every method's training task on a record folder shares (the rest of
:class:`~handsynth.diffusion.training.TrainTask` is the method's own)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from handsynth.data.folder import dataset_root, read_dataset
from handsynth.diffusion.base import resolve_base
from handsynth.errors import UserError


def collate(items: list[dict]) -> dict:
    """Stack tensors, keep everything else (ids, prompts, token positions) as lists."""
    out = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        out[k] = torch.stack(vals) if isinstance(vals[0], torch.Tensor) else vals
    return out


class RecordTrainTask:
    """Reads the records and checks the base before any output; subclasses set ``self._dataset``."""

    _dataset: Dataset

    def __init__(
        self,
        base_model: str | None,
        data: str | Path,
        max_samples: int | None = None,
        base_config: str | None = None,
    ) -> None:
        if base_model is not None:  # None: a method without a pretrained base (pixel-space HandBooster)
            resolve_base(base_model, base_config)  # a missing/partial base fails here, before any output
        samples = read_dataset(data)
        if not samples:  # named here, where the path the user gave is known (not its dataset root)
            raise UserError(f"--in {data} holds no records to train on")
        self.samples = samples[:max_samples] if max_samples else samples
        self.root = dataset_root(data)
        self.base = None
        self.accelerator = None

    def dataset(self) -> Dataset:
        return self._dataset

    def collate(self, items: list[dict]) -> dict:
        return collate(items)

    def batch_ids(self, batch: dict) -> list[str]:
        return list(batch["id"])
