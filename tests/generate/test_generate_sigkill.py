"""A real `handsynth generate` process killed with SIGKILL at several points, then resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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


def test_killed_runs_resume_without_loss_or_duplicates(controlnet_dir, poses_dir, tmp_path):
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "handsynth.generate.cli",
        *args(controlnet_dir, poses_dir, out, "--prompts-per-pose", "3"),
    ]
    ids = [f"{s}_{k}" for s in sorted(r.id for r in read_dataset(poses_dir)) for k in range(3)]
    for kill_after in (1, 5):  # SIGKILL once a few samples are on disk, mid-run
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 300
        while written(out) < kill_after and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert kill_after <= written(out) < len(ids)
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    check_complete(out, ids)
