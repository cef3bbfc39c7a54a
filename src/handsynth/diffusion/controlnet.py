"""The one ControlNet wrapper: trainable guidance module(s) phi_g feeding residuals to a frozen UNet phi_d.

:class:`GuidanceModule` holds one diffusers ``ControlNetModel`` per named branch (``shared`` when all
branches share weights). It is the only trainable ``nn.Module`` of a ControlNet method, so accelerate /
DDP wrap exactly it, and each ControlNet saves with ``save_pretrained`` as a standard diffusers model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from diffusers import ControlNetModel

SHARED = "shared"


def controlnet_from_unet(
    unet: nn.Module, conditioning_embedding_out_channels: list[int] | None = None
) -> ControlNetModel:
    """phi_g initialised from phi_d (``ControlNetModel.from_unet``: copied weights, zero convolutions)."""
    from diffusers import ControlNetModel

    kwargs = {}
    if conditioning_embedding_out_channels:
        kwargs["conditioning_embedding_out_channels"] = tuple(conditioning_embedding_out_channels)
    return ControlNetModel.from_unet(unet, **kwargs)


class GuidanceModule(nn.Module):
    """Named ControlNets; a batch is split into contiguous groups, each run through its branch's net."""

    def __init__(self, controlnets: dict[str, nn.Module]) -> None:
        super().__init__()
        self.nets = nn.ModuleDict(controlnets)

    @classmethod
    def from_unet(
        cls,
        unet: nn.Module,
        branches: list[str] | None = None,
        conditioning_embedding_out_channels: list[int] | None = None,
    ) -> GuidanceModule:
        """One shared net (``branches=None``) or one independent copy per branch name."""
        names = branches or [SHARED]
        return cls({n: controlnet_from_unet(unet, conditioning_embedding_out_channels) for n in names})

    def net_for(self, branch: str) -> nn.Module:
        return self.nets[branch] if branch in self.nets else self.nets[SHARED]

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        cond: torch.Tensor,
        groups: list[tuple[str, int]] | None = None,
        conditioning_scale: float = 1.0,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Residuals (down list, mid) for the whole batch; ``groups`` = [(branch, size), ...] in order."""
        groups = groups or [(next(iter(self.nets)), sample.shape[0])]
        downs, mids, start = [], [], 0
        t = timestep.expand(sample.shape[0]) if timestep.ndim == 0 else timestep
        for branch, size in groups:
            sl = slice(start, start + size)
            start += size
            d, m = self.net_for(branch)(
                sample[sl],
                t[sl],
                encoder_hidden_states=encoder_hidden_states[sl],
                controlnet_cond=cond[sl],
                conditioning_scale=conditioning_scale,
                return_dict=False,
            )
            downs.append(d)
            mids.append(m)
        if len(groups) == 1:
            return list(downs[0]), mids[0]
        return [torch.cat(parts) for parts in zip(*downs)], torch.cat(mids)

    def save(self, folder: str | Path, names: dict[str, str] | None = None) -> list[Path]:
        """``save_pretrained`` each net: shared/global -> ``controlnet/``, others -> ``controlnet_<name>/``."""
        out = []
        for branch, net in self.nets.items():
            sub = (names or {}).get(branch) or (
                "controlnet" if branch in (SHARED, "global") else f"controlnet_{branch}"
            )
            path = Path(folder) / sub
            net.save_pretrained(path)
            out.append(path)
        return out


def controlled_unet_forward(
    unet: nn.Module,
    guidance: nn.Module | None,
    sample: torch.Tensor,
    timestep: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    cond: torch.Tensor | None = None,
    groups: list[tuple[str, int]] | None = None,
    conditioning_scale: float = 1.0,
) -> torch.Tensor:
    """Y_d = phi_d(X, K, t) + residuals of phi_g(X, I_mesh, K, t) (Eq. 5-6); ``guidance=None``: bare UNet."""
    if guidance is None:
        return unet(sample, timestep, encoder_hidden_states=encoder_hidden_states).sample
    down, mid = guidance(sample, timestep, encoder_hidden_states, cond, groups, conditioning_scale)
    dtype = unet.dtype
    return unet(
        sample.to(dtype),
        timestep,
        encoder_hidden_states=encoder_hidden_states.to(dtype),
        down_block_additional_residuals=[d.to(dtype) for d in down],
        mid_block_additional_residual=mid.to(dtype),
    ).sample
