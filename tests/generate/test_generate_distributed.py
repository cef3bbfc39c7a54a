"""Two real CPU processes under `accelerate launch` split one job with no overlap and no gap."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from handsynth.data import iter_records, read_dataset

pytestmark = pytest.mark.slow
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


def test_two_cpu_processes_split_without_overlap_or_gap(controlnet_dir, poses_dir, tmp_path):
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "handsynth.generate.cli", *args(controlnet_dir, poses_dir, out, "--prompts-per-pose", "2"),
    ]  # fmt: skip
    run = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    # 8 images: process r takes plan items r, r+2, ... so each makes 4.
    assert "process 0/2: generated 4 images" in run.stdout and "process 1/2: generated 4 images" in run.stdout
    ids = [f"{s}_{k}" for s in sorted(r.id for r in read_dataset(poses_dir)) for k in range(2)]
    check_complete(out, ids)
