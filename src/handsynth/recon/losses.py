"""Training losses of the reconstruction model: 3D joints, vertices, 2D projections, parameters.

3D terms are L1 in metres on root-relative points, 2D terms L1 in normalised crop units, so their
default weights (10 and 1) balance a 2 cm 3D error against a 0.2 crop-unit 2D error. Vertex and
parameter terms apply only to hands whose record uses the same hand model as the network
(``has_params``): a MANO record's parameters mean nothing to OpenHand and vice versa.
"""

from __future__ import annotations

import torch
from torch import nn

from handsynth.recon.config import LossWeights
from handsynth.recon.model import hand_forward


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of per-sample values ``x`` (B, ...) over samples where ``mask`` (B,) is 1."""
    per = x.reshape(x.shape[0], -1).mean(1)
    return (per * mask).sum() / mask.sum().clamp_min(1.0)


def recon_loss(
    pred: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], hand_model: nn.Module, w: LossWeights
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its weighted parts (floats, for logging)."""
    mask = batch["has_params"]
    parts: dict[str, torch.Tensor] = {
        "joints3d": (pred["joints"] - batch["joints3d"]).abs().mean(),
        "joints2d": (pred["joints2d"] - batch["joints2d"]).abs().mean(),
    }
    if w.verts3d > 0 and mask.sum() > 0:
        with torch.no_grad():
            _, gt_verts = hand_forward(hand_model, batch["rotmat"], batch["hand_pose"], batch["betas"])
        parts["verts3d"] = _masked_mean((pred["verts"] - gt_verts).abs(), mask)
    if w.params > 0:
        parts["params"] = (
            _masked_mean((pred["rotmat"] - batch["rotmat"]) ** 2, mask)
            + _masked_mean((pred["hand_pose"] - batch["hand_pose"]) ** 2, mask)
            + _masked_mean((pred["betas"] - batch["betas"]) ** 2, mask)
        )
    parts["reg"] = (pred["hand_pose"] ** 2).mean() + (pred["betas"] ** 2).mean()
    weighted = {k: getattr(w, k) * v for k, v in parts.items()}
    total = sum(weighted.values())
    return total, {k: float(v.detach()) for k, v in weighted.items()}
