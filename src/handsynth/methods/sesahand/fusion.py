"""SesaHand's hierarchical structural fusion: structure at three granularities through one ControlNet trunk.

Reading of the paper's summary (docs/sesahand.md, every fork a config switch):

- each granularity g (fine: hand mesh + seg, mid: hand skeleton, coarse: arm/body) has a light encoder
  E_g with the ControlNet conditioning-embedding layout (strided convs to the latent resolution, last
  conv zero); E_fine *is* the trunk's own ``controlnet_cond_embedding``;
- the trunk phi_g (a diffusers ``ControlNetModel`` initialised from the UNet, as AttentionHand's) runs the
  fine stream ``conv_in(x_t) + E_fine(c_fine)``; every other stream starts as ``conv_in(x_t) + E_g(c_g)``;
- after down block ``l`` of every fused level, a :class:`AttentionFusion` block lets the fine stream's
  tokens attend to the tokens of all streams (queries: fine; keys/values: fine, mid, coarse, each with a
  learned stream embedding) and adds the result through a zero-initialised projection; the fused map
  replaces the fine stream's state (and its residual) and the trunk continues on it;
- how the mid/coarse streams reach the fused levels: ``context='light'`` (default) through a
  strided-conv pyramid of their own, one conv per trunk level; ``context='trunk'`` through the shared
  trunk itself (the issue's first reading: 1.40x a ControlNet sampling step at SD-1.5 size against
  light's 1.03x, over the issue's 1.3x goal; docs/sesahand.md);
- only the fine stream's residuals (zero convs, mid block) reach the UNet.

At initialisation every fusion output is zero, so the model computes exactly the plain ControlNet of the
fine maps (tested bit for bit). ``mode='sum'`` replaces attention by learned scalar gates
(fine + sum_g gate_g F_g, gates zero); ``mode='concat'`` concatenates every granularity's maps into one
encoder: a plain ControlNet with more input channels, no fusion blocks.

The module has ``ControlNetModel``'s call signature and returns its ``(down residuals, mid residual)``,
so :func:`handsynth.diffusion.controlnet.controlled_unet_forward` and the shared ControlNet sampling
loop run it unchanged; ``controlnet_cond`` is every granularity's maps stacked along channels in
``granularities`` order (:meth:`StructuralFusion.split`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from handsynth.errors import UserError

if TYPE_CHECKING:
    from diffusers import ControlNetModel

GRANULARITIES = ("fine", "mid", "coarse")
FUSION_MODES = ("attention", "sum", "concat")
CONTEXT_PATHS = ("trunk", "light")
FUSION_FILE = "fusion.safetensors"
FUSION_LAYOUT_FILE = "fusion.json"
FINE = "fine"


@dataclass
class FusionConfig:
    """``fusion.*`` of a SesaHand config. ``levels``: trunk down blocks after which the streams are fused
    (None: the two lowest-resolution ones, the issue's cost-saving default)."""

    enabled: bool = True
    mode: str = "attention"
    levels: list[int] | None = None
    granularities: list[str] = field(default_factory=lambda: list(GRANULARITIES))
    head_dim: int = 64  # attention heads = channels // head_dim (at least 1)
    # How the mid/coarse streams reach each fused level: `light` (a strided-conv pyramid of their own:
    # meets the issue's <= 1.3x cost goal at SD-1.5 size) or `trunk` (the shared ControlNet trunk run once
    # per stream: the first reading, 1.40x; kept as the ablation). docs/sesahand.md §2, §6.
    context: str = "light"

    def check(self) -> FusionConfig:
        if self.mode not in FUSION_MODES:
            raise UserError(f"fusion.mode must be one of {', '.join(FUSION_MODES)}, got {self.mode!r}")
        bad = [g for g in self.granularities if g not in GRANULARITIES]
        if bad or len(set(self.granularities)) != len(self.granularities) or FINE not in self.granularities:
            raise UserError(
                f"fusion.granularities must be distinct names from {list(GRANULARITIES)} including "
                f"'fine' (the stream that feeds the UNet), got {self.granularities}"
            )
        if self.levels is not None and (
            len(set(self.levels)) != len(self.levels)
            or any(not isinstance(x, int) or x < 0 for x in self.levels)
        ):
            raise UserError(f"fusion.levels must be distinct non-negative block indices, got {self.levels}")
        if self.context not in CONTEXT_PATHS:
            raise UserError(f"fusion.context must be one of {', '.join(CONTEXT_PATHS)}, got {self.context!r}")
        if self.head_dim < 1:
            raise UserError(f"fusion.head_dim must be positive, got {self.head_dim}")
        return self

    def active_granularities(self) -> list[str]:
        """Granularities the model reads, in stacking order (fusion off: the fine maps only)."""
        if not self.enabled:
            return [FINE]
        return [g for g in GRANULARITIES if g in self.granularities]


class AttentionFusion(nn.Module):
    """Fine-stream queries over every stream's tokens; the output enters through a zero projection."""

    def __init__(self, channels: int, num_streams: int, head_dim: int = 64) -> None:
        super().__init__()
        self.heads = max(1, channels // head_dim)
        if channels % self.heads:
            raise ValueError(f"{channels} channels do not split into {self.heads} heads")
        self.norm_q = nn.LayerNorm(channels)
        self.norm_kv = nn.LayerNorm(channels)
        self.stream_embedding = nn.Parameter(torch.zeros(num_streams, channels))
        self.to_q = nn.Linear(channels, channels, bias=False)
        self.to_k = nn.Linear(channels, channels, bias=False)
        self.to_v = nn.Linear(channels, channels, bias=False)
        self.proj_out = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, fine: torch.Tensor, streams: list[torch.Tensor]) -> torch.Tensor:
        b, c, h, w = fine.shape

        def tokens(x: torch.Tensor) -> torch.Tensor:
            return x.flatten(2).transpose(1, 2)  # (B, hw, C)

        q = self.to_q(self.norm_q(tokens(fine)))
        kv = torch.cat([self.norm_kv(tokens(s)) + self.stream_embedding[i] for i, s in enumerate(streams)], 1)
        k, v = self.to_k(kv), self.to_v(kv)

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, x.shape[1], self.heads, c // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(heads(q), heads(k), heads(v))
        out = self.proj_out(out.transpose(1, 2).reshape(b, h * w, c))
        return fine + out.transpose(1, 2).reshape(b, c, h, w)


class GatedSumFusion(nn.Module):
    """``fusion.mode: sum``: fine + sum over the other streams of a learned scalar gate (zero at init)."""

    def __init__(self, channels: int, num_streams: int, head_dim: int = 64) -> None:
        super().__init__()
        self.gates = nn.Parameter(torch.zeros(num_streams - 1))

    def forward(self, fine: torch.Tensor, streams: list[torch.Tensor]) -> torch.Tensor:
        return fine + sum(g * s for g, s in zip(self.gates, streams[1:]))


class LightPyramid(nn.Module):
    """``fusion.context: light``: a context stream's features at every trunk level without the trunk:
    one 3x3 conv + SiLU per level, strided where the trunk's block downsamples."""

    def __init__(self, widths: list[int], strides: list[int]) -> None:
        super().__init__()
        ins = [widths[0], *widths[:-1]]
        self.levels = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=s, padding=1), nn.SiLU())
            for c_in, c_out, s in zip(ins, widths, strides)
        )

    def forward(self, x: torch.Tensor, level: int) -> torch.Tensor:
        return self.levels[level](x)


def _check_trunk(net: nn.Module) -> None:
    cfg = net.config
    if cfg.class_embed_type is not None or cfg.addition_embed_type is not None or cfg.global_pool_conditions:
        raise UserError(
            "SesaHand's structural fusion supports SD-1.x/2.x ControlNets (no class or added embeddings, "
            "no pooled conditions)"
        )
    if cfg.controlnet_conditioning_channel_order != "rgb":
        raise UserError("SesaHand's structural fusion needs a ControlNet with rgb conditioning channel order")


class StructuralFusion(nn.Module):
    """The trainable SesaHand guidance module: trunk + per-granularity encoders + fusion blocks."""

    def __init__(self, controlnet: ControlNetModel, channels: dict[str, int], config: FusionConfig) -> None:
        super().__init__()
        from diffusers.models.controlnets.controlnet import ControlNetConditioningEmbedding

        config.check()
        _check_trunk(controlnet)
        self.config = config
        self.controlnet = controlnet
        self.granularities = config.active_granularities()
        missing = [g for g in self.granularities if g not in channels]
        if missing:
            raise UserError(f"StructuralFusion needs the input channels of granularities {missing}")
        self.channels = {g: int(channels[g]) for g in self.granularities}
        self.concat = config.mode == "concat" or len(self.granularities) == 1
        trunk_in = sum(self.channels.values()) if self.concat else self.channels[FINE]
        if controlnet.config.conditioning_channels != trunk_in:
            raise UserError(
                f"the ControlNet trunk reads {controlnet.config.conditioning_channels} condition channels "
                f"but this fusion layout gives it {trunk_in}"
            )
        n_blocks = len(controlnet.down_blocks)
        levels = config.levels if config.levels is not None else list(range(max(0, n_blocks - 2), n_blocks))
        if any(lv >= n_blocks for lv in levels):
            raise UserError(f"fusion.levels {levels}: the trunk has down blocks 0..{n_blocks - 1} only")
        self.levels = [] if self.concat else sorted(levels)
        self.hsa_betas: dict[str, torch.Tensor] = {}
        emb_channels = tuple(controlnet.config.conditioning_embedding_out_channels)
        width = controlnet.config.block_out_channels[0]
        self.encoders = nn.ModuleDict(
            {
                g: ControlNetConditioningEmbedding(width, self.channels[g], emb_channels)
                for g in self.granularities
                if g != FINE and not self.concat
            }
        )
        self.light = config.context == "light" and not self.concat
        strides = [2 if getattr(b, "downsamplers", None) else 1 for b in controlnet.down_blocks]
        self.pyramids = nn.ModuleDict(
            {
                g: LightPyramid(list(controlnet.config.block_out_channels), strides)
                for g in self.encoders
                if self.light
            }
        )
        block_cls = AttentionFusion if config.mode == "attention" else GatedSumFusion
        outs = controlnet.config.block_out_channels
        self.blocks = nn.ModuleDict(
            {str(lv): block_cls(outs[lv], len(self.granularities), config.head_dim) for lv in self.levels}
        )

    # -- construction and files ------------------------------------------------------------------
    @classmethod
    def from_unet(
        cls,
        unet: nn.Module,
        channels: dict[str, int],
        config: FusionConfig,
        conditioning_embedding_out_channels: list[int] | None = None,
    ) -> StructuralFusion:
        """The trunk copied from the UNet (``ControlNetModel.from_unet``), fresh encoders and fusion."""
        from diffusers import ControlNetModel

        grans = config.check().active_granularities()
        concat = config.mode == "concat" or len(grans) == 1
        trunk_in = sum(channels[g] for g in grans) if concat else channels[FINE]
        kwargs = {"conditioning_channels": trunk_in}
        if conditioning_embedding_out_channels:
            kwargs["conditioning_embedding_out_channels"] = tuple(conditioning_embedding_out_channels)
        return cls(ControlNetModel.from_unet(unet, **kwargs), channels, config)

    def fusion_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything trained beyond the diffusers ControlNet: encoders and fusion blocks."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("controlnet.")}

    def save(self, folder: str | Path, controlnet_dir: str = "controlnet") -> None:
        """``controlnet/`` (a standard diffusers ``ControlNetModel``) + ``fusion.safetensors`` + layout."""
        from safetensors.torch import save_file

        folder = Path(folder)
        self.controlnet.save_pretrained(folder / controlnet_dir)
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.fusion_state_dict().items()}
        save_file(tensors, str(folder / FUSION_FILE))
        layout = {"config": asdict(self.config), "channels": self.channels, "levels": self.levels}
        (folder / FUSION_LAYOUT_FILE).write_text(json.dumps(layout, indent=1) + "\n")

    @classmethod
    def load(cls, folder: str | Path, controlnet_dir: str = "controlnet") -> StructuralFusion:
        """The module :meth:`save` wrote (a missing or mismatched part is one clear error)."""
        from diffusers import ControlNetModel
        from safetensors.torch import load_file

        folder = Path(folder)
        for need in (controlnet_dir, FUSION_FILE, FUSION_LAYOUT_FILE):
            if not (folder / need).exists():
                raise UserError(f"{folder} has no {need}: it is not a SesaHand run folder")
        layout = json.loads((folder / FUSION_LAYOUT_FILE).read_text())
        config = FusionConfig(**layout["config"])
        model = cls(ControlNetModel.from_pretrained(str(folder / controlnet_dir)), layout["channels"], config)
        tensors = load_file(str(folder / FUSION_FILE))
        # Learned per-layer HSA betas (hsa.learnable=per_layer) ride along; the generator installs them.
        model.hsa_betas = {
            k[len("hsa.betas.") :]: v for k, v in tensors.items() if k.startswith("hsa.betas.")
        }
        tensors = {k: v for k, v in tensors.items() if not k.startswith("hsa.")}
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        missing = [k for k in missing if not k.startswith("controlnet.")]
        if missing or unexpected:
            raise UserError(
                f"{folder / FUSION_FILE} does not match {FUSION_LAYOUT_FILE}: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}"
            )
        return model

    # -- forward -----------------------------------------------------------------------------------
    @property
    def input_channels(self) -> int:
        return sum(self.channels.values())

    def split(self, cond: torch.Tensor) -> dict[str, torch.Tensor]:
        """The stacked condition (B, sum C_g, H, W) -> one tensor per granularity."""
        if cond.shape[1] != self.input_channels:
            raise ValueError(
                f"condition has {cond.shape[1]} channels, the fusion reads {self.input_channels}"
            )
        return dict(zip(self.channels, torch.split(cond, list(self.channels.values()), dim=1)))

    def enable_gradient_checkpointing(self) -> None:
        self.controlnet.enable_gradient_checkpointing()

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
        """(down residuals, mid residual) as ``ControlNetModel(..., return_dict=False)`` returns them;
        ``groups`` is accepted for the shared call signature (GuidanceModule's) and ignored."""
        net = self.controlnet
        t = timestep if torch.is_tensor(timestep) else torch.tensor([timestep], device=sample.device)
        t = (t[None] if t.ndim == 0 else t).to(sample.device).expand(sample.shape[0])
        emb = net.time_embedding(net.time_proj(t).to(dtype=sample.dtype), None)
        x = net.conv_in(sample)
        if self.concat:
            streams = {FINE: x + net.controlnet_cond_embedding(controlnet_cond)}
        else:
            conds = self.split(controlnet_cond)
            streams = {
                g: x + (net.controlnet_cond_embedding if g == FINE else self.encoders[g])(conds[g])
                for g in self.granularities
            }
        residuals: tuple[torch.Tensor, ...] = (streams[FINE],)
        last_fused = max(self.levels, default=-1)
        for i, block in enumerate(net.down_blocks):
            for g in list(streams) if i <= last_fused else [FINE]:
                if g != FINE and self.light:
                    streams[g] = self.pyramids[g](streams[g], i)
                    continue
                if getattr(block, "has_cross_attention", False):
                    h, res = block(
                        hidden_states=streams[g], temb=emb, encoder_hidden_states=encoder_hidden_states
                    )
                else:
                    h, res = block(hidden_states=streams[g], temb=emb)
                streams[g] = h
                if g == FINE:
                    residuals += res
            if str(i) in self.blocks:
                fused = self.blocks[str(i)](streams[FINE], [streams[g] for g in self.granularities])
                streams[FINE] = fused
                residuals = (*residuals[:-1], fused)  # the block's last output is its hidden state
        h = streams[FINE]
        if net.mid_block is not None:
            if getattr(net.mid_block, "has_cross_attention", False):
                h = net.mid_block(h, emb, encoder_hidden_states=encoder_hidden_states)
            else:
                h = net.mid_block(h, emb)
        down = [zero(r) * conditioning_scale for r, zero in zip(residuals, net.controlnet_down_blocks)]
        return down, net.controlnet_mid_block(h) * conditioning_scale
