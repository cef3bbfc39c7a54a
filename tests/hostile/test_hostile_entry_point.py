"""The console script itself (a fresh interpreter): a refusal is one line on stderr, exit 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hostile_helpers import record, write_folder

ENTRY = [sys.executable, "-c", "import sys; from handsynth.cli import main; sys.exit(main())"]


@pytest.mark.parametrize("case", ["escaping-path", "nan-flag"])
def test_console_script_refuses_in_one_line(tmp_path, case):
    folder = write_folder(tmp_path / "d", [record(0, conditions={"mesh": "../../etc/hostname"})])
    argv = ["prompts", "--in", str(folder)] if case == "escaping-path" else ["generate", "--guidance", "nan"]
    env = {**os.environ, "HANDSYNTH_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([*ENTRY, *argv], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1, proc.stderr
    assert ("conditions.mesh" if case == "escaping-path" else "--guidance") in errors[0]
