"""Control sets of the micro benchmark: blank images and shuffled labels.

Why: a metric table needs a row that shows what the yardstick gives for nothing. Blank images with
the held-out poses' labels are the trivial generator of Table 1 (FID, Hand Conf. ...); a generated set
whose labels are shuffled among its images is Table 2's control: if it helps the downstream model as
much as the real labels do, the gain is not evidence of pose fidelity.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
from PIL import Image


def write_blank(poses: str | Path, out: str | Path, size: int, grey: int = 128) -> Path:
    """A dataset folder: one uniform grey image per record of ``poses``, the records' labels kept."""
    from handsynth.data import read_dataset, write_metadata

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    samples = []
    img = Image.fromarray(np.full((size, size, 3), grey, np.uint8))
    for s in read_dataset(poses):
        s = copy.deepcopy(s)
        s.file_name = f"images/{s.id}.png"
        s.local = None
        img.save(out / s.file_name)
        samples.append(s)
    write_metadata(out / "metadata.jsonl", samples)
    return out


def write_shuffled(src: str | Path, out: str | Path, seed: int = 0) -> Path:
    """A copy of generated set ``src`` whose hand labels are permuted among its images (no fixed point)."""
    from handsynth.data import dataset_root, read_dataset, write_metadata

    root = dataset_root(src)
    samples = [s for s in read_dataset(src) if s.file_name and s.hands]
    n = len(samples)
    order = np.random.default_rng(seed).permutation(n)
    perm = np.empty(n, np.int64)
    perm[order] = np.roll(order, 1)  # a cyclic shift along a random order: nobody keeps its own labels
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    shuffled = []
    for i, s in enumerate(samples):
        other = samples[int(perm[i])]
        t = copy.deepcopy(s)
        t.file_name = f"images/{Path(s.file_name).name}"
        shutil.copyfile(root / s.file_name, out / t.file_name)
        t.hands, t.K, t.local = copy.deepcopy(other.hands), copy.deepcopy(other.K), None
        shuffled.append(t)
    write_metadata(out / "metadata.jsonl", shuffled)
    return out
