"""Helpers for the tests that run `handsynth generate` in real subprocesses (kill / distributed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from handsynth.data import iter_records, read_dataset

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def args(ckpt: Path, inp: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--method", "controlnet", "--checkpoint", str(ckpt), "--base-model", "tiny",
        "--in", str(inp), "--out", str(out), "--steps", "2", "--cpu", *extra,
    ]  # fmt: skip


def written(out: Path) -> int:
    """Records on disk now (merged + every process's part), read the way a resumed run reads them."""
    files = [out / "metadata.jsonl", *sorted((out / ".parts").glob("rank-*/metadata.jsonl"))]
    return sum(len(list(iter_records(f))) for f in files if f.exists())


def check_complete(out: Path, expected: list[str]) -> None:
    recs = read_dataset(out)  # also refuses duplicate ids
    assert [r.id for r in recs] == expected
    for r in recs:
        with Image.open(out / r.file_name) as im:
            assert np.asarray(im.convert("RGB")).shape == (64, 64, 3)  # decodes whole
    assert not list(out.rglob("*.tmp"))
