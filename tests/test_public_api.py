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


HEAVY = ("torch", "diffusers", "transformers", "scipy", "trimesh", "moderngl", "accelerate")


def test_building_the_command_line_loads_nothing_heavy():
    """Every ``--help``, ``--version`` and argument error builds the whole parser: with torch imported on
    the way it took ~3 s on a 2-core CPU, now ~0.5 s. Commands import their machinery when they run."""
    code = (
        "import sys; from handsynth.cli import build_parser; build_parser(); "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_lazy_package_exports_resolve():
    """The stage packages made lazy for the command line still serve every name they export."""
    import importlib

    for package in ("handsynth.hand", "handsynth.render", "handsynth.world"):
        module = importlib.import_module(package)
        for name in module.__all__:
            assert getattr(module, name) is not None, (package, name)
        assert set(module.__all__) <= set(dir(module))
