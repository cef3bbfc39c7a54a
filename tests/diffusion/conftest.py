"""Shared fixtures for the diffusion tests: the tiny SD base (built once, cached) and its text."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One thread per test process: the tiny models are too small to gain from more, and on a shared CPU
# oversubscribed OpenMP threads make them many times slower.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_base():
    from handsynth.diffusion.base import load_base

    return load_base("tiny")


@pytest.fixture()
def fresh_unet(tiny_base):
    """A private copy of the tiny UNet (tests install processors on it)."""
    import copy

    return copy.deepcopy(tiny_base.unet)


@pytest.fixture(scope="session")
def hand_text(tiny_base):
    """Text embeddings, prompt lengths and hand-token positions of two hand prompts."""
    from handsynth.diffusion.encoding import encode_text, prompt_lengths, tokenize
    from handsynth.text.tagging import hand_token_indices

    prompts = ["a person holding a red cup with the right hand", "a woman waving her hand"]
    ids = tokenize(tiny_base.tokenizer, prompts)
    return {
        "prompts": prompts,
        "embeds": encode_text(tiny_base, prompts),
        "lengths": prompt_lengths(ids, tiny_base.tokenizer.eos_token_id),
        "indices": [hand_token_indices(p, tiny_base.tokenizer) for p in prompts],
    }


def seeded(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
