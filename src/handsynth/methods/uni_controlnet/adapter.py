"""Uni-ControlNet's local control adapter on a diffusers SD UNet.

The adapter is a trainable copy of the UNet encoder (conv_in, time embedding, down blocks, mid block;
it reads the text, as in the released code). The condition maps are channel-concatenated and encoded
at every UNet level by the multi-scale condition injection network (a strided-conv stem, one strided
conv per level, a zero conv per level: h_r and zero(.) of the paper). They enter the copy through
feature denormalisation (FDN) in the first ResNet of each level, which replaces both of its
GroupNorms:

    FDN_r(Z_r, c) = norm(Z_r) * (1 + conv_gamma(zero(h_r(c)))) + conv_beta(zero(h_r(c)))

Every encoder output of the copy goes through a zero conv and is added to the frozen UNet's skip
connections (and the mid block's output), exactly the residual interface of diffusers'
``ControlNetModel``; so :func:`handsynth.diffusion.controlnet.controlled_unet_forward` and our
ControlNet sampling loop run it unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from handsynth.methods.uni_controlnet.config import RELEASED_INJECT_CHANNELS, SD15_BLOCK_OUT_CHANNELS


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class FDN(nn.Module):
    """Feature denormalisation: a parameter-free GroupNorm modulated by the condition features.

    The features of the current forward are set by :class:`UniControlAdapter` (``condition``) before
    its down blocks run, so the diffusers blocks keep their own forward code.
    """

    def __init__(self, channels: int, condition_channels: int, num_groups: int, eps: float) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(num_groups, channels, eps=eps, affine=False)
        self.conv_gamma = nn.Conv2d(condition_channels, channels, 3, padding=1)
        self.conv_beta = nn.Conv2d(condition_channels, channels, 3, padding=1)
        self.condition: torch.Tensor | None = None

    def modulation(self, condition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(gamma, beta) of condition features (B, C_c, h, w)."""
        return self.conv_gamma(condition), self.conv_beta(condition)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.condition
        if c is None:
            raise RuntimeError("FDN has no condition features: call it through UniControlAdapter.forward")
        if c.shape[-2:] != x.shape[-2:]:  # odd latent sizes: strided convs round differently
            c = F.interpolate(c, size=x.shape[-2:], mode="bilinear", align_corners=False)
        gamma, beta = self.modulation(c.to(x.dtype))
        return self.norm(x) * (1 + gamma) + beta

    @torch.no_grad()
    def start_as(self, norm: nn.GroupNorm) -> None:
        """Biases from the replaced GroupNorm's affine, so with zero features FDN equals that norm."""
        if norm.weight is not None:
            self.conv_gamma.bias.copy_(norm.weight - 1)
        if norm.bias is not None:
            self.conv_beta.bias.copy_(norm.bias)


class ConditionEncoder(nn.Module):
    """The multi-scale condition injection network: condition maps -> features at every UNet level.

    Stem: conv to stem[0], then per further width a (strided) conv and a conv at that width (released:
    32, 64, 128). Levels: one stride-2 conv each (level 0 lands on the latent grid), then a zero conv.
    """

    def __init__(
        self, in_channels: int, stem_channels: list[int], level_channels: list[int], stem_downsamples: int
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, stem_channels[0], 3, padding=1), nn.SiLU()]
        for i, (a, b) in enumerate(zip(stem_channels[:-1], stem_channels[1:])):
            stride = 2 if i < stem_downsamples else 1
            layers += [nn.Conv2d(a, b, 3, padding=1, stride=stride), nn.SiLU()]
            layers += [nn.Conv2d(b, b, 3, padding=1), nn.SiLU()]
        for _ in range(stem_downsamples - (len(stem_channels) - 1)):  # a short stem on a deep VAE
            w = stem_channels[-1]
            layers += [nn.Conv2d(w, w, 3, padding=1, stride=2), nn.SiLU()]
        self.stem = nn.Sequential(*layers)
        widths = [stem_channels[-1], *level_channels]
        self.levels = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 3, padding=1, stride=2), nn.SiLU())
            for a, b in zip(widths[:-1], widths[1:])
        )
        self.zero_convs = nn.ModuleList(_zero(nn.Conv2d(c, c, 3, padding=1)) for c in level_channels)

    def forward(self, condition: torch.Tensor) -> list[torch.Tensor]:
        h = self.stem(condition)
        out = []
        for level, zero in zip(self.levels, self.zero_convs):
            h = level(h)
            out.append(zero(h))
        return out


def default_inject_channels(block_out_channels: list[int]) -> list[int]:
    """The released widths on an SD-1.x UNet; each level's own width on any other base."""
    if list(block_out_channels) == SD15_BLOCK_OUT_CHANNELS:
        return list(RELEASED_INJECT_CHANNELS)
    return list(block_out_channels)


class UniControlAdapter(ModelMixin, ConfigMixin):
    """The local control adapter; returns ControlNet-style (down residuals, mid residual).

    Built from a UNet config (weights random; :meth:`from_unet` copies a base UNet's encoder), saved
    with ``save_pretrained`` (config.json + diffusion_pytorch_model.safetensors).
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        unet_config: dict,
        maps: list[str],
        condition_channels: int,
        inject_channels: list[int] | None = None,
        stem_channels: list[int] | None = None,
        vae_scale_factor: int = 8,
    ) -> None:
        super().__init__()
        from diffusers import UNet2DConditionModel

        unet = UNet2DConditionModel.from_config(unet_config)
        levels = list(unet.config.block_out_channels)
        inject = list(inject_channels or default_inject_channels(levels))
        if len(inject) != len(levels):
            raise ValueError(f"inject_channels needs one width per UNet level ({len(levels)}), got {inject}")
        self.conv_in = unet.conv_in
        self.time_proj = unet.time_proj
        self.time_embedding = unet.time_embedding
        self.down_blocks = unet.down_blocks
        self.mid_block = unet.mid_block
        stem = list(stem_channels or [32, 64, 128])
        self.condition_encoder = ConditionEncoder(
            condition_channels, stem, inject, max(int(math.log2(vae_scale_factor)) - 1, 0)
        )
        for level, block in enumerate(self.down_blocks):
            resnet = block.resnets[0]
            for name in ("norm1", "norm2"):
                norm = getattr(resnet, name)
                fdn = FDN(norm.num_channels, inject[level], norm.num_groups, norm.eps)
                fdn.start_as(norm)
                setattr(resnet, name, fdn)
        self.zero_convs = nn.ModuleList(_zero(nn.Conv2d(c, c, 1)) for c in self._residual_channels())
        mid = levels[-1]
        self.mid_zero_conv = _zero(nn.Conv2d(mid, mid, 1))

    def _residual_channels(self) -> list[int]:
        chans = [self.conv_in.out_channels]
        for block in self.down_blocks:
            chans += [r.out_channels for r in block.resnets]
            if getattr(block, "downsamplers", None):
                chans += [chans[-1]] * len(block.downsamplers)
        return chans

    def fdns(self) -> list[tuple[FDN, FDN]]:
        """(norm1, norm2) FDN of each level's first ResNet."""
        return [(b.resnets[0].norm1, b.resnets[0].norm2) for b in self.down_blocks]

    @classmethod
    def from_unet(
        cls,
        unet: nn.Module,
        maps: list[str],
        condition_channels: int,
        inject_channels: list[int] | None = None,
        stem_channels: list[int] | None = None,
        vae_scale_factor: int = 8,
    ) -> UniControlAdapter:
        """A copy of ``unet``'s encoder (weights copied; FDN starts as the norms it replaces)."""
        config = {k: v for k, v in dict(unet.config).items() if not k.startswith("_")}
        adapter = cls(
            config, list(maps), condition_channels, inject_channels, stem_channels, vae_scale_factor
        )
        for name in ("conv_in", "time_proj", "time_embedding", "mid_block"):
            getattr(adapter, name).load_state_dict(getattr(unet, name).state_dict())
        copied = adapter.down_blocks.load_state_dict(unet.down_blocks.state_dict(), strict=False)
        if any("resnets.0.norm" not in k for k in copied.unexpected_keys):
            raise RuntimeError(f"unexpected UNet weights left over: {copied.unexpected_keys}")
        for block, mine in zip(unet.down_blocks, adapter.down_blocks):
            mine.resnets[0].norm1.start_as(block.resnets[0].norm1)
            mine.resnets[0].norm2.start_as(block.resnets[0].norm2)
        if (unet.device, unet.dtype) != (adapter.device, adapter.dtype):
            adapter.to(device=unet.device, dtype=unet.dtype)
        return adapter

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        controlnet_cond: torch.Tensor,
        groups: list | None = None,
        conditioning_scale: float = 1.0,
        return_dict: bool = False,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Residuals for the frozen UNet's down blocks and mid block (the ControlNetModel interface).

        ``controlnet_cond`` is the (B, C, H, W) stack of condition maps in [0, 1] at image size;
        ``groups`` is accepted for the shared call signature and ignored (one adapter for all).
        """
        features = self.condition_encoder(controlnet_cond.to(sample.dtype))
        for (norm1, norm2), feat in zip(self.fdns(), features):
            norm1.condition = norm2.condition = feat
        t = timestep if torch.is_tensor(timestep) else torch.tensor([timestep], device=sample.device)
        t = t.to(sample.device).reshape(-1).expand(sample.shape[0])
        emb = self.time_embedding(self.time_proj(t).to(dtype=sample.dtype))
        h = self.conv_in(sample)
        residuals = [h]
        for block in self.down_blocks:
            if getattr(block, "has_cross_attention", False):
                h, res = block(hidden_states=h, temb=emb, encoder_hidden_states=encoder_hidden_states)
            else:
                h, res = block(hidden_states=h, temb=emb)
            residuals += list(res)
        if getattr(self.mid_block, "has_cross_attention", False):
            h = self.mid_block(h, emb, encoder_hidden_states=encoder_hidden_states)
        else:
            h = self.mid_block(h, emb)
        downs = [zero(r) * conditioning_scale for zero, r in zip(self.zero_convs, residuals)]
        return downs, self.mid_zero_conv(h) * conditioning_scale
