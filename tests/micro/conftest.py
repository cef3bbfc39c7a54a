"""Shared fixtures of the micro benchmark's tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

MICRO = Path(__file__).resolve().parents[2] / "benchmarks" / "micro"


@pytest.fixture
def micro_run():
    """``benchmarks/micro/run.py`` as a module (the benchmark folder is on sys.path while the test runs)."""
    sys.path.insert(0, str(MICRO))
    import run

    yield run
    sys.path.remove(str(MICRO))
