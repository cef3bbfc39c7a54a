"""The single-image hand reconstruction network: ResNet features -> hand-model parameters + camera.

Why this shape: it is the standard HMR-style regressor (a CNN regresses parameters, a differentiable
hand model turns them into a mesh, losses act on the mesh's joints, vertices and their 2D projection),
small enough to train on this project's synthetic data and to serve as the estimator for MSE-3D and
HandBooster's edge-case filter. Every crop shows a RIGHT hand (left crops are mirrored by the data
pipeline), so one right-hand model serves both sides.

Outputs are root-relative (wrist = joint 0) in metres, in the crop's camera orientation. The global
orientation is applied by rotating the zero-orientation mesh about the wrist, which equals the hand
model's own global rotation for any model whose root joint is the wrist (MANO semantics) and avoids a
matrix -> axis-angle conversion inside the gradient path.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from handsynth.hand.model import load_hand_model
from handsynth.recon.backbone import build_backbone
from handsynth.recon.config import ModelConfig
from handsynth.recon.rotation import rot6d_to_matrix

NUM_POSE = 45
NUM_BETAS = 10


class ReconNet(nn.Module):
    """The trainable part: image crop -> 6D orientation, 45 pose, 10 betas, 3 camera (s, tx, ty)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(cfg.backbone, cfg.width)
        n_out = 6 + NUM_POSE + NUM_BETAS + 3
        self.head = nn.Sequential(
            nn.Linear(self.backbone.out_dim, cfg.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(cfg.hidden, cfg.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(cfg.hidden, n_out),
        )
        last = self.head[-1]
        nn.init.normal_(last.weight, std=1e-3)  # start at the mean hand: identity, flat, scale s0, centred
        bias = torch.zeros(n_out)
        bias[:6] = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
        with torch.no_grad():
            last.bias.copy_(bias)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.head(self.backbone(images))
        rot6d, pose = out[:, :6], out[:, 6 : 6 + NUM_POSE]
        betas = out[:, 6 + NUM_POSE : 6 + NUM_POSE + NUM_BETAS]
        cam_raw = out[:, -3:]
        scale = self.cfg.cam_scale0 * torch.exp(cam_raw[:, :1].clamp(-5.0, 5.0))
        return {
            "rot6d": rot6d,
            "rotmat": rot6d_to_matrix(rot6d),
            "hand_pose": pose,
            "betas": betas,
            "cam": torch.cat([scale, cam_raw[:, 1:]], dim=1),
        }


def hand_forward(
    hand_model: nn.Module, rotmat: torch.Tensor, hand_pose: torch.Tensor, betas: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Root-relative joints (B,21,3) and vertices (B,V,3) of a right hand model, rotated by ``rotmat``."""
    b = hand_pose.shape[0]
    zeros = hand_pose.new_zeros(b, 3)
    out = hand_model(global_orient=zeros, hand_pose=hand_pose, betas=betas, transl=zeros)
    root = out.joints[:, :1]
    rt = rotmat.transpose(1, 2)
    return (out.joints - root) @ rt, (out.vertices - root) @ rt


def project_weak(points: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """Weak-perspective projection into normalised crop coordinates ([-1, 1] spans the crop)."""
    return cam[:, None, :1] * points[..., :2] + cam[:, None, 1:]


class ReconModel(nn.Module):
    """Network + (frozen) right-hand model: images -> parameters, root-relative mesh and 2D joints.

    Only ``net`` is trained and saved; the hand model is rebuilt from the config on load.
    """

    def __init__(self, cfg: ModelConfig, hand_model: nn.Module) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = ReconNet(cfg)
        self.hand_model = hand_model
        for p in self.hand_model.parameters():
            p.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.net(images)
        joints, verts = hand_forward(self.hand_model, out["rotmat"], out["hand_pose"], out["betas"])
        out.update(joints=joints, verts=verts, joints2d=project_weak(joints, out["cam"]))
        return out


def load_hand_model_for(cfg: ModelConfig, side: str = "right") -> nn.Module:
    """The hand model named in ``cfg`` (from ``handsynth.hand``); the network itself uses the right one."""
    kwargs: dict[str, Any] = {"side": side}
    if cfg.hand_model_path:
        kwargs["model_path"] = cfg.hand_model_path
    return load_hand_model(cfg.hand_model, **kwargs)
