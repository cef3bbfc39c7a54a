"""A real `handsynth generate` process killed with SIGKILL at several points, then resumed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from generate_subprocess import ENV, args, check_complete, written

from handsynth.data import read_dataset

pytestmark = pytest.mark.slow


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
