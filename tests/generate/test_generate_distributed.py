"""Two real CPU processes under `accelerate launch` split one job with no overlap and no gap."""

from __future__ import annotations

import subprocess
import sys

import pytest
from generate_subprocess import ENV, args, check_complete

from handsynth.data import read_dataset

pytestmark = pytest.mark.slow


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
