"""Diffusers SD-1.x parts -> one state dict in the original (CompVis/LDM) layout, as single-file
checkpoints (``.safetensors`` / ``.ckpt``) store them: the test-side inverse of diffusers' converters."""

from __future__ import annotations

import re

import torch

UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _rename(rest: str, table: dict[str, str]) -> str:
    for old, new in table.items():
        if rest == old or rest.startswith(old + "."):
            return new + rest[len(old) :]
    return rest


def unet_to_original(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    cfg = unet.config
    per_down = cfg.layers_per_block + 1  # resnets (+ a downsampler) per input level
    per_up = cfg.layers_per_block + 1  # resnets per output level, the last one also upsamples
    out = {}
    for key, value in unet.state_dict().items():
        if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
            i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            index = 1 + i * per_down + j
            new = (
                f"input_blocks.{index}.0.{_rename(rest, UNET_RESNET)}"
                if kind == "resnets"
                else (f"input_blocks.{index}.1.{rest}")
            )
        elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
            new = f"input_blocks.{(int(m[1]) + 1) * per_down}.0.op.{m[2]}"
        elif m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
            i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            index = i * per_up + j
            new = (
                f"output_blocks.{index}.0.{_rename(rest, UNET_RESNET)}"
                if kind == "resnets"
                else (f"output_blocks.{index}.1.{rest}")
            )
        elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
            i = int(m[1])
            has_attention = hasattr(unet.up_blocks[i], "attentions")
            new = f"output_blocks.{i * per_up + per_up - 1}.{2 if has_attention else 1}.conv.{m[2]}"
        elif m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)", key):
            new = f"middle_block.{2 * int(m[1])}.{_rename(m[2], UNET_RESNET)}"
        elif m := re.match(r"mid_block\.attentions\.0\.(.*)", key):
            new = f"middle_block.1.{m[1]}"
        else:
            new = _rename(key, UNET_TOP)
        out["model.diffusion_model." + new] = value
    return out


def vae_to_original(vae: torch.nn.Module) -> dict[str, torch.Tensor]:
    levels = len(vae.config.block_out_channels)
    out = {}
    for key, value in vae.state_dict().items():
        new = key
        if m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)", key):
            new = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)", key):
            new = f"{m[1]}.mid.attn_1.{_rename(m[2], VAE_ATTENTION)}"
            if value.ndim == 2:  # the original attention projections are 1x1 convolutions
                value = value[:, :, None, None]
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            new = f"encoder.down.{m[1]}.block.{m[2]}.{m[3]}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.*)", key):
            new = f"encoder.down.{m[1]}.downsample.{m[2]}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            new = f"decoder.up.{levels - 1 - int(m[1])}.block.{m[2]}.{m[3]}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.*)", key):
            new = f"decoder.up.{levels - 1 - int(m[1])}.upsample.{m[2]}"
        new = new.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
        out["first_stage_model." + new] = value
    return out


def text_encoder_to_original(text_encoder: torch.nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in text_encoder.state_dict().items():
        key = key if key.startswith("text_model.") else "text_model." + key
        out["cond_stage_model.transformer." + key] = value
    return out


def to_original(parts: dict) -> dict[str, torch.Tensor]:
    """One original-layout state dict (contiguous copies, as safetensors needs) of SD parts."""
    state = {
        **unet_to_original(parts["unet"]),
        **vae_to_original(parts["vae"]),
        **text_encoder_to_original(parts["text_encoder"]),
    }
    return {k: v.detach().clone().contiguous() for k, v in state.items()}


def original_yaml(parts: dict) -> str:
    """The original-layout config (as v1-inference.yaml) describing SD-1.x-shaped parts of any size."""
    unet, vae = parts["unet"].config, parts["vae"].config
    base = unet.block_out_channels[0]
    cross = [2**i for i, t in enumerate(unet.down_block_types) if t.startswith("CrossAttn")]
    factor = 2 ** (len(vae.block_out_channels) - 1)
    mult = lambda chans, c0: "[" + ", ".join(str(c // c0) for c in chans) + "]"  # noqa: E731
    return f"""model:
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    linear_start: 0.00085
    linear_end: 0.012
    timesteps: 1000
    image_size: {unet.sample_size}
    channels: {unet.in_channels}
    scale_factor: {vae.scaling_factor}
    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        image_size: {unet.sample_size}
        in_channels: {unet.in_channels}
        out_channels: {unet.out_channels}
        model_channels: {base}
        attention_resolutions: {cross}
        num_res_blocks: {unet.layers_per_block}
        channel_mult: {mult(unet.block_out_channels, base)}
        num_heads: {unet.attention_head_dim}
        transformer_depth: 1
        context_dim: {unet.cross_attention_dim}
    first_stage_config:
      target: ldm.models.autoencoder.AutoencoderKL
      params:
        embed_dim: {vae.latent_channels}
        ddconfig:
          double_z: true
          z_channels: {vae.latent_channels}
          resolution: {unet.sample_size * factor}
          in_channels: {vae.in_channels}
          out_ch: {vae.out_channels}
          ch: {vae.block_out_channels[0]}
          ch_mult: {mult(vae.block_out_channels, vae.block_out_channels[0])}
          num_res_blocks: {vae.layers_per_block}
          attn_resolutions: []
    cond_stage_config:
      target: ldm.modules.encoders.modules.FrozenCLIPEmbedder
"""
