"""Shared tiny fixtures for the generation tests: the built-in tiny base, a ControlNet and a T2IAdapter
checkpoint made for it, and a small synthetic input dataset (mesh maps + local boxes)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch


def _perturb(module: torch.nn.Module, seed: int, scale: float = 0.05) -> torch.nn.Module:
    """Give zero-initialised convolutions some weight, so the condition visibly matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            zero_conv = name.startswith(("controlnet_down_blocks", "controlnet_mid_block"))
            p.add_(torch.randn(p.shape, generator=g) * (scale * 10 if zero_conv else scale))
    return module


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models are dominated by thread overhead: on a shared CPU one thread is 10x faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_base():
    from handsynth.diffusion.base import load_base

    return load_base("tiny")


@pytest.fixture(scope="session")
def controlnet_dir(tmp_path_factory, tiny_base) -> Path:
    from diffusers import ControlNetModel

    torch.manual_seed(0)
    net = _perturb(ControlNetModel.from_unet(tiny_base.unet), 1)
    path = tmp_path_factory.mktemp("ckpt") / "controlnet"
    net.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def adapter_dir(tmp_path_factory, tiny_base) -> Path:
    from diffusers import T2IAdapter

    torch.manual_seed(0)
    channels = list(tiny_base.unet.config.block_out_channels)
    adapter = T2IAdapter(in_channels=3, channels=channels, num_res_blocks=1, downscale_factor=8)
    _perturb(adapter, 2)
    path = tmp_path_factory.mktemp("ckpt") / "adapter"
    adapter.save_pretrained(path)
    return path


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
def perturb():
    return _perturb


@pytest.fixture(scope="session")
def cli():
    return _cli
