"""The HandBooster network: a pixel-space ``UNet2DModel`` reading RGB + condition channels, and the hand's
orientation (a unit quaternion, w >= 0) through an MLP into the time embedding.

The orientation MLP is the paper's ``Linear(4, d) + GELU + Linear(d, 4d) + GELU + Linear(4d, 4d)`` with
d = the UNet's first width (4d = diffusers' time-embedding width). ``inject: add`` adds it to the time
embedding (diffusers' ``class_embed_type="identity"``); ``inject: concat`` (released code) places time and
orientation side by side in a 8d embedding: the time MLP's output is masked to the first half and the
orientation fills the second, so every ResNet's projection sees [time; orientation] and, as the released
FiLM, gives a scale and a shift applied after the block's norm (``resnet_time_scale_shift``). A learned null
vector stands in for a dropped orientation (classifier-free guidance on the orientation only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from handsynth.errors import UserError
from handsynth.methods.handbooster.config import ORIENTATION_FILE, UNET_DIR, HandBoosterConfig
from handsynth.poses.quaternions import axis_angle_to_quaternion


def orientation_quaternion(global_orient: list[float] | np.ndarray, mirror: bool = False) -> np.ndarray:
    """The hand's global orientation (axis-angle, camera frame) as a unit quaternion (w, x, y, z), w >= 0.

    q and -q are one rotation; fixing the sign keeps the network's input a function of the rotation.
    ``mirror``: the orientation of the hand mirrored through x = 0 (a left hand seen as a right one):
    axis-angle (x, -y, -z), as ``handsynth.recon.rotation.mirror_axis_angle``.
    """
    aa = np.asarray(global_orient, dtype=np.float64)
    if mirror:
        aa = aa * np.array([1.0, -1.0, -1.0])
    return axis_angle_to_quaternion(aa)


class OrientationEncoder(nn.Module):
    """Quaternion -> time-embedding-sized vector; ``drop`` rows get the learned null vector instead."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(4, width),
            nn.GELU(),
            nn.Linear(width, 4 * width),
            nn.GELU(),
            nn.Linear(4 * width, 4 * width),
        )
        self.null = nn.Parameter(torch.zeros(4 * width))

    def forward(self, quaternion: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.mlp(quaternion)
        if drop is not None:
            emb = torch.where(drop.view(-1, 1).bool(), self.null.to(emb).expand_as(emb), emb)
        return emb


class LinearAttentionProcessor:
    """Linear ("efficient") attention for a diffusers ``Attention`` module, as the released HandBooster
    UNet uses at every level: softmax of the queries over features and of the keys over positions, then
    q (k^T v): O(N d^2) instead of O(N^2 d), so attention at 128^2 costs little. Same weights as full
    attention (to_q, to_k, to_v, to_out, group norm), so only the processor differs."""

    def __call__(
        self,
        attn: nn.Module,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: object,
        **kwargs: object,
    ) -> torch.Tensor:
        residual = hidden_states
        b, c, h, w = hidden_states.shape
        x = hidden_states.view(b, c, h * w).transpose(1, 2)
        if attn.group_norm is not None:
            x = attn.group_norm(x.transpose(1, 2)).transpose(1, 2)
        q, k, v = attn.to_q(x), attn.to_k(x), attn.to_v(x)
        heads = attn.heads
        d = q.shape[-1] // heads
        q, k, v = (t.view(b, -1, heads, d).transpose(1, 2) for t in (q, k, v))  # (b, heads, n, d)
        q = q.softmax(dim=-1) * d**-0.5
        k = k.softmax(dim=-2)
        out = q @ (k.transpose(-1, -2) @ v)
        out = out.transpose(1, 2).reshape(b, -1, heads * d)
        out = attn.to_out[1](attn.to_out[0](out))
        out = out.transpose(1, 2).reshape(b, c, h, w)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def use_linear_attention(unet: nn.Module) -> None:
    """Linear attention in every down/up block; the mid block keeps full attention (released layout)."""
    from diffusers.models.attention_processor import Attention

    for name, module in unet.named_modules():
        if isinstance(module, Attention) and not name.startswith("mid_block"):
            module.set_processor(LinearAttentionProcessor())


def unet_kwargs(cfg: HandBoosterConfig) -> dict:
    """The ``UNet2DModel`` of a config: attention at the two lowest resolutions + mid (``full``), at every
    level + mid (``linear``: linear in the levels, full in the mid block) or none."""
    m = cfg.model
    n = len(m.block_out_channels)
    attn = m.attention != "none"
    n_attn = {"full": min(2, n), "linear": n, "none": 0}[m.attention]
    width = m.block_out_channels[0]
    o = cfg.orientation
    kwargs = dict(
        sample_size=m.sample_size,
        in_channels=cfg.in_channels(),
        out_channels=3,
        block_out_channels=tuple(m.block_out_channels),
        layers_per_block=m.layers_per_block,
        down_block_types=tuple(["DownBlock2D"] * (n - n_attn) + ["AttnDownBlock2D"] * n_attn),
        up_block_types=tuple(["AttnUpBlock2D"] * n_attn + ["UpBlock2D"] * (n - n_attn)),
        add_attention=attn,
        attention_head_dim=m.attention_head_dim,
        norm_num_groups=m.norm_num_groups,
    )
    if o.enabled:
        kwargs["class_embed_type"] = "identity"
        if o.inject == "concat":
            kwargs["time_embedding_dim"] = 8 * width
            # released: [time; orientation] -> Linear -> (scale, shift), FiLM after the block's norm
            kwargs["resnet_time_scale_shift"] = "scale_shift"
    return kwargs


class HandBoosterModel(nn.Module):
    """UNet + orientation encoder: ``forward`` predicts x0 from x_t, t, the condition channels, q."""

    def __init__(self, cfg: HandBoosterConfig, unet: nn.Module | None = None) -> None:
        super().__init__()
        from diffusers import UNet2DModel

        self.cfg = cfg
        self.unet = unet if unet is not None else UNet2DModel(**unet_kwargs(cfg))
        if cfg.model.attention == "linear":  # a processor is not part of the saved config: set it here
            use_linear_attention(self.unet)
        width = cfg.model.block_out_channels[0]
        self.orientation = OrientationEncoder(width) if cfg.orientation.enabled else None
        self.concat = cfg.orientation.enabled and cfg.orientation.inject == "concat"
        if self.concat:  # the time MLP fills the first 4d of the 8d embedding, the orientation the rest
            mask = torch.cat([torch.ones(4 * width), torch.zeros(4 * width)])
            self.register_buffer("_time_mask", mask, persistent=False)
            self.unet.time_embedding.register_forward_hook(lambda _m, _i, out: out * self._time_mask.to(out))

    def forward(
        self,
        sample: torch.Tensor,
        timesteps: torch.Tensor,
        conditions: torch.Tensor,
        quaternion: torch.Tensor | None = None,
        drop: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x0 prediction for noisy RGB ``sample`` (B, 3, S, S) and ``conditions`` (B, C, S, S)."""
        class_labels = None
        if self.orientation is not None:
            if quaternion is None:
                raise ValueError("this model reads the hand orientation: pass quaternion (B, 4)")
            emb = self.orientation(quaternion.to(sample), drop)
            class_labels = F.pad(emb, (emb.shape[-1], 0)) if self.concat else emb
        x = torch.cat([sample, conditions.to(sample)], dim=1)
        return self.unet(x, timesteps, class_labels=class_labels).sample

    def save(self, folder: str | Path) -> None:
        """``unet/`` (diffusers save_pretrained) and ``orientation.safetensors`` into a run folder."""
        from safetensors.torch import save_file

        folder = Path(folder)
        self.unet.save_pretrained(folder / UNET_DIR)
        if self.orientation is not None:
            state = {k: v.detach().cpu().contiguous() for k, v in self.orientation.state_dict().items()}
            save_file(state, str(folder / ORIENTATION_FILE))

    @classmethod
    def load(cls, folder: str | Path, cfg: HandBoosterConfig) -> HandBoosterModel:
        """The model a run folder holds, checked against its config (channels, orientation)."""
        from diffusers import UNet2DModel
        from safetensors.torch import load_file

        folder = Path(folder)
        check_unet_config(UNet2DModel.load_config(str(folder / UNET_DIR)), cfg, folder)
        model = cls(cfg, UNet2DModel.from_pretrained(str(folder / UNET_DIR)))
        if model.orientation is not None:
            path = folder / ORIENTATION_FILE
            if not path.is_file():
                raise UserError(
                    f"checkpoint {folder} has no {ORIENTATION_FILE} but its config reads the orientation"
                )
            model.orientation.load_state_dict(load_file(str(path)))
        return model.eval()


def check_unet_config(unet_config: dict, cfg: HandBoosterConfig, where: str | Path) -> None:
    """Refuse a UNet whose input channels or orientation input do not match the configured maps."""
    have, want = int(unet_config.get("in_channels", -1)), cfg.in_channels()
    if have != want:
        raise UserError(
            f"checkpoint {where}: the UNet reads {have} input channels but the configured maps "
            f"{cfg.model.conditions} need {want} (3 RGB + maps); use the config the run was trained with"
        )
    reads_orientation = unet_config.get("class_embed_type") == "identity"
    if reads_orientation != cfg.orientation.enabled:
        raise UserError(
            f"checkpoint {where}: the UNet {'reads' if reads_orientation else 'has no'} orientation input "
            f"but orientation.enabled is {cfg.orientation.enabled}"
        )
