"""``import handsynth`` is cheap and every name it promises resolves (the demo is built on them)."""

from __future__ import annotations

import subprocess
import sys

import handsynth


def test_import_handsynth_loads_nothing_heavy():
    code = (
        "import sys, handsynth; print(sorted(m for m in ('torch', 'diffusers', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_export_resolves():
    for name in handsynth.__all__:
        assert getattr(handsynth, name) is not None, name
    assert set(handsynth.__all__) <= set(dir(handsynth))
