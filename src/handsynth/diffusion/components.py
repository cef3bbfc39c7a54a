"""SD-1.x-shaped parts (UNet, VAE, CLIP text encoder, SD's tokenizer and scheduler) of any size, with
seeded random weights: the one builder behind the tiny test base, ``sd15-random`` and the micro bases.

Loading real bases is :mod:`handsynth.diffusion.base`'s job; this module only builds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from handsynth.errors import UserError
from handsynth.text.tokenizer import clip_tokenizer

TINY_ATTENTION_GAIN = 4.0


@dataclass(frozen=True)
class SDArchitecture:
    """The sizes that distinguish SD-1.x-shaped bases (SD-1.5, the tiny test base, micro bases)."""

    unet_channels: tuple[int, ...]
    unet_layers: int
    unet_groups: int
    cross_attention_dim: int  # = the text encoder's hidden size
    latent_size: int
    vae_channels: tuple[int, ...]
    vae_layers: int
    vae_groups: int
    text_intermediate: int
    text_layers: int
    text_heads: int
    text_act: str = "quick_gelu"
    text_projection_dim: int = 512  # config only: CLIPTextModel has no projection weights
    attention_head_dim: int = 8
    latent_channels: int = 4
    cross_attention_levels: int = 3  # the first N down blocks (and last N up blocks) cross-attend
    vae_scaling_factor: float = 0.18215
    image_size: int | None = None  # the VAE's sample_size; default latent_size * its downsampling


TINY_ARCH = SDArchitecture(
    unet_channels=(32, 32, 64, 64), unet_layers=1, unet_groups=8, cross_attention_dim=32, latent_size=32,
    vae_channels=(8, 16, 16, 16), vae_layers=1, vae_groups=8,
    text_intermediate=64, text_layers=2, text_heads=4,
)  # fmt: skip
SD15_ARCH = SDArchitecture(
    unet_channels=(320, 640, 1280, 1280), unet_layers=2, unet_groups=32, cross_attention_dim=768, latent_size=64,
    vae_channels=(128, 256, 512, 512), vae_layers=2, vae_groups=32,
    text_intermediate=3072, text_layers=12, text_heads=12, text_projection_dim=768,
)  # fmt: skip


def sd_components(arch: SDArchitecture, seed: int = 0) -> dict:
    """SD-1.x-shaped parts of the given sizes, seeded random weights, real CLIP tokenizer (no download).

    The scheduler is SD-1.5's own (scaled-linear betas 0.00085 -> 0.012, 1000 steps).
    """
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    n, ca = len(arch.unet_channels), arch.cross_attention_levels
    if not 1 <= ca < n:
        raise UserError(f"cross_attention_levels must be in 1..{n - 1}, got {ca}")
    unet = UNet2DConditionModel(
        sample_size=arch.latent_size,
        in_channels=arch.latent_channels,
        out_channels=arch.latent_channels,
        block_out_channels=arch.unet_channels,
        layers_per_block=arch.unet_layers,
        down_block_types=("CrossAttnDownBlock2D",) * ca + ("DownBlock2D",) * (n - ca),
        up_block_types=("UpBlock2D",) * (n - ca) + ("CrossAttnUpBlock2D",) * ca,
        cross_attention_dim=arch.cross_attention_dim,
        attention_head_dim=arch.attention_head_dim,
        norm_num_groups=arch.unet_groups,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=arch.vae_channels,
        down_block_types=("DownEncoderBlock2D",) * len(arch.vae_channels),
        up_block_types=("UpDecoderBlock2D",) * len(arch.vae_channels),
        latent_channels=arch.latent_channels,
        norm_num_groups=arch.vae_groups,
        layers_per_block=arch.vae_layers,
        sample_size=arch.image_size or arch.latent_size * 2 ** (len(arch.vae_channels) - 1),
        scaling_factor=arch.vae_scaling_factor,
    )
    tokenizer = clip_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=arch.cross_attention_dim,
            intermediate_size=arch.text_intermediate,
            num_hidden_layers=arch.text_layers,
            num_attention_heads=arch.text_heads,
            max_position_embeddings=77,
            hidden_act=arch.text_act,
            projection_dim=arch.text_projection_dim,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    # SD-1.5's scheduler config. clip_sample is not a PNDM option, but it is saved explicitly (false) so
    # that a DDIM/DDPM sampler built from this config never falls back to clipping latents.
    scheduler = PNDMScheduler.from_config(
        dict(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            num_train_timesteps=1000,
            skip_prk_steps=True,
            steps_offset=1,
            set_alpha_to_one=False,
            clip_sample=False,
        )
    )
    return dict(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)


def tiny_components(seed: int = 0) -> dict:
    """The tiny test base: :data:`TINY_ARCH` with peaked random cross-attention."""
    parts = sd_components(TINY_ARCH, seed)
    # Random q/k projections give near-uniform cross-attention (every token ~1/77), where TAS has no
    # gradient to follow; scaling them makes the random maps peaked like a trained model's.
    with torch.no_grad():
        for name, module in parts["unet"].named_modules():
            if name.endswith("attn2"):
                module.to_q.weight.mul_(TINY_ATTENTION_GAIN)
                module.to_k.weight.mul_(TINY_ATTENTION_GAIN)
    return parts


def sd15_components(seed: int = 0) -> dict:
    """SD-1.5's architecture (UNet 320-640-1280-1280, VAE, CLIP ViT-L/14 text) with random weights:
    for timing real-size configs (e.g. ``benchmarks/tas_cost.py`` on a GPU) without the weights."""
    return sd_components(SD15_ARCH, seed)
