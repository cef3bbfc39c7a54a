"""Fixtures for the generation tests: a small synthetic input dataset (mesh maps + local boxes) and the
command; the tiny base and checkpoints come from tests/conftest.py."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models are dominated by thread overhead: on a shared CPU one thread is 10x faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def poses_dir(tmp_path_factory) -> Path:
    from handsynth.methods.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("inputs") / "poses", n=4, size=64)


def _cli(argv: list[str]) -> int:
    """Run `handsynth generate` through this stage's own register() (the top-level CLI may not list it)."""
    from handsynth.generate.cli import register

    parser = argparse.ArgumentParser(prog="handsynth")
    register(parser.add_subparsers())
    args = parser.parse_args(["generate", *argv])
    return args.func(args)


@pytest.fixture(scope="session")
def cli():
    return _cli
