"""A tiny stand-in hand model and synthetic record datasets for the reconstruction tests.

The stand-in follows the hand-model protocol of ``handsynth.hand`` (forward(global_orient, hand_pose,
betas, transl) -> .joints (B,21,3) OpenPose order, .vertices (B,V,3); wrist = root) with a 21-joint
forward-kinematics skeleton and a few vertices rigidly attached to each bone, so tests run without
OpenHand/MANO and in milliseconds.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from handsynth.recon.rotation import axis_angle_to_matrix, mirror_axis_angle
from handsynth.recon.toy import PARENTS, make_toy_dataset

BASE_X = [-0.035, -0.02, 0.0, 0.018, 0.034]
BASE_Y = [-0.02, -0.085, -0.09, -0.085, -0.075]
SEG = [0.035, 0.028, 0.024]


class StandInHand(nn.Module):
    """Forward-kinematics toy hand: 15 posed joints (3 per finger), betas[0] scales bone lengths."""

    def __init__(self) -> None:
        super().__init__()
        rest = np.zeros((21, 3))
        for f in range(5):
            rest[1 + 4 * f] = [BASE_X[f], BASE_Y[f], 0.0]
            for k in range(3):
                rest[2 + 4 * f + k] = rest[1 + 4 * f + k] + [0.0, -SEG[k], 0.0]
        self.register_buffer("rest", torch.tensor(rest, dtype=torch.float32))
        offs = torch.tensor(
            [[0.006, 0, 0.0], [-0.006, 0, 0], [0, 0, 0.006], [0, 0, -0.006]], dtype=torch.float32
        )
        self.register_buffer("offs", offs)
        self.faces = np.zeros((0, 3), dtype=np.int64)

    def forward(self, global_orient, hand_pose, betas, transl):
        b = hand_pose.shape[0]
        rots = axis_angle_to_matrix(hand_pose.reshape(b, 15, 3))
        scale = 1.0 + 0.1 * betas[:, :1, None]
        g_root = axis_angle_to_matrix(global_orient)
        pos = [torch.zeros(b, 3, dtype=hand_pose.dtype)]
        frames = [g_root]
        for j in range(1, 21):
            p = PARENTS[j]
            off = (self.rest[j] - self.rest[p]).to(hand_pose.dtype) * scale[:, 0]
            pos.append(pos[p] + (frames[p] @ off[..., None])[..., 0])
            f, k = divmod(j - 1, 4)
            frames.append(frames[p] @ rots[:, 3 * f + k] if k < 3 else frames[p])
        joints = torch.stack(pos, 1)
        mids = torch.stack([(joints[:, j] + joints[:, PARENTS[j]]) / 2 for j in range(1, 21)], 1)
        fr = torch.stack([frames[PARENTS[j]] for j in range(1, 21)], 1)  # (b,20,3,3)
        verts = mids[:, :, None] + torch.einsum("bjik,vk->bjvi", fr, self.offs.to(hand_pose.dtype))
        t = transl[:, None]
        return SimpleNamespace(joints=joints + t, vertices=verts.reshape(b, -1, 3) + t)


def make_dataset(
    folder: Path, n: int, seed: int = 0, sides: tuple[str, ...] = ("right", "left"), size: int = 96
) -> Path:
    """``n`` one-hand skeleton-image records of the stand-in hand (see handsynth.recon.toy)."""
    return make_toy_dataset(folder, n, StandInHand(), "openhand", seed=seed, size=size, sides=sides)


@pytest.fixture
def standin() -> StandInHand:
    return StandInHand()


class StandInLeft(nn.Module):
    """The left stand-in: the right one mirrored through x = 0 (as MANO's left model mirrors the right)."""

    def __init__(self) -> None:
        super().__init__()
        self.right = StandInHand()

    def forward(self, global_orient, hand_pose, betas, transl):
        out = self.right(
            mirror_axis_angle(global_orient), mirror_axis_angle(hand_pose), betas, torch.zeros_like(transl)
        )
        m = torch.tensor([-1.0, 1.0, 1.0], dtype=hand_pose.dtype)
        return SimpleNamespace(
            joints=out.joints * m + transl[:, None], vertices=out.vertices * m + transl[:, None]
        )


def tiny_config(data: list[str], out: Path, **kw):
    """A TrainConfig for a tiny network that trains in about a second per 30 steps."""
    from handsynth.recon.config import TrainConfig
    from handsynth.recon.model import ModelConfig

    base = dict(
        steps=30, batch_size=8, lr=3e-3, warmup=0, num_workers=0, save_every=100, log_every=1, augment=False
    )
    base.update(kw)
    return TrainConfig(
        data=data, out=str(out), model=ModelConfig(width=0.125, img_size=64, hidden=64), **base
    )


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """These tiny models run faster on one thread, and far faster when the CPU is shared (no spin-waits)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# Every module that binds load_hand_model_for at import (``from handsynth.recon.model import ...``).
HAND_MODEL_USERS = ("model", "predict", "evaluate", "edge_filter", "train")


def use_standin_hand_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every recon module build the stand-in hands. The modules are imported before any is
    patched: one imported while ``model`` is patched would bind the stand-in for good (monkeypatch then
    restores the stand-in it found), and a later test with the real OpenHand model would get it."""
    import importlib

    modules = [importlib.import_module(f"handsynth.recon.{m}") for m in HAND_MODEL_USERS]

    def load(cfg, side="right"):
        return StandInLeft() if side == "left" else StandInHand()

    for module in modules:
        monkeypatch.setattr(module, "load_hand_model_for", load)
