"""Text and image encoding with a base model's frozen CLIP text encoder and VAE."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from handsynth.diffusion.base import BaseModel
from handsynth.text.tokenizer import encode_prompts

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def tokenize(tokenizer: PreTrainedTokenizerBase, prompts: list[str]) -> torch.Tensor:
    """(B, 77) ids of the cleaned prompts (OpenAI CLIP cleaning), padded/truncated as SD does, so token
    positions agree with :func:`handsynth.text.tagging.hand_token_indices`."""
    return encode_prompts(list(prompts), tokenizer)


def prompt_lengths(input_ids: torch.Tensor, eos_token_id: int) -> list[int]:
    """Per row, the position of the first end-of-text token (= 1 + number of prompt tokens)."""
    out = []
    for row in input_ids.tolist():
        out.append(row.index(eos_token_id) if eos_token_id in row else len(row))
    return out


@torch.no_grad()
def encode_text(
    base: BaseModel, prompts: list[str], device: torch.device | str | None = None
) -> torch.Tensor:
    """CLIP last hidden states (B, 77, D): the cross-attention keys K of the paper."""
    device = device or base.text_encoder.device
    ids = tokenize(base.tokenizer, prompts).to(device)
    return base.text_encoder(ids)[0]


@torch.no_grad()
def encode_images(
    base: BaseModel, images: torch.Tensor, generator: torch.Generator | None = None, sample: bool = True
) -> torch.Tensor:
    """Images in [-1, 1] (B, 3, H, W) -> scaled latents X_0 (B, 4, H/8, W/8)."""
    vae = base.vae
    dist = vae.encode(images.to(device=vae.device, dtype=vae.dtype)).latent_dist
    z = dist.sample(generator) if sample else dist.mode()
    return z * base.latent_scale


@torch.no_grad()
def decode_latents(base: BaseModel, latents: torch.Tensor) -> torch.Tensor:
    """Scaled latents -> images in [0, 1]."""
    img = base.vae.decode(latents.to(base.vae.dtype) / base.latent_scale).sample
    return (img.float() / 2 + 0.5).clamp(0, 1)
