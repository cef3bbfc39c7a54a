"""A synthetic skeleton-image dataset for smoke-testing the reconstruction pipeline end to end.

Why: proving that training, resuming, prediction and evaluation work needs images whose content
determines the labels, without any real dataset or renderer. Each record holds one random hand (pose,
shape, orientation, position) of the chosen hand model and an image with its 2D skeleton drawn, one
colour per finger. Left hands are the mirrored right model (exact for OpenHand; MANO's left model is
its mirror up to the shape-space fix), so only a right-hand model is needed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from handsynth.data.folder import DatasetWriter
from handsynth.data.records import Hand, Sample
from handsynth.progress import progress as progress_bar
from handsynth.recon.rotation import mirror_axis_angle

# OpenPose-21 parents: wrist, then 4 joints per finger (thumb, index, middle, ring, little)
PARENTS = [-1] + [p for f in range(5) for p in (0, 1 + 4 * f, 2 + 4 * f, 3 + 4 * f)]
FINGER_COLORS = [(255, 60, 60), (60, 255, 60), (60, 60, 255), (255, 255, 60), (255, 60, 255)]


def random_hand(
    right_model: nn.Module, model_name: str, side: str, rng: np.random.Generator, K: np.ndarray
) -> Hand:
    """A random hand of ``side`` with exact labels from ``right_model`` (left = mirrored right)."""
    go = rng.normal(0, 0.5, 3)
    pose = rng.normal(0, 0.3, 45)
    betas = rng.normal(0, 0.5, 10)
    transl = np.array([rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05), rng.uniform(0.45, 0.6)])
    g, p = torch.tensor(go, dtype=torch.float32)[None], torch.tensor(pose, dtype=torch.float32)[None]
    if side == "left":
        g, p = mirror_axis_angle(g), mirror_axis_angle(p)
    zero = torch.zeros(1, 3)
    with torch.no_grad():
        out = right_model(
            global_orient=g, hand_pose=p, betas=torch.tensor(betas, dtype=torch.float32)[None], transl=zero
        )
    j = out.joints[0].double().numpy()
    if side == "left":
        j = j * [-1.0, 1.0, 1.0]
    # ``transl`` is the hand model's translation; the joints are placed by it
    j = j + transl
    uv = (j @ K.T)[:, :2] / j[:, 2:3]
    lo, hi = uv.min(0) - 4, uv.max(0) + 4
    return Hand(
        side=side,
        model=model_name,
        global_orient=go.tolist(),
        hand_pose=pose.tolist(),
        betas=betas.tolist(),
        transl=transl.tolist(),
        joints_3d=j.tolist(),
        joints_2d=uv.tolist(),
        bbox=[*lo.tolist(), *(hi - lo).tolist()],
    )


def draw_skeleton(size: tuple[int, int], hands: list[Hand]) -> Image.Image:
    """An image whose content determines the labels: each finger's bones in its own colour."""
    img = Image.new("RGB", size, (30, 30, 30))
    d = ImageDraw.Draw(img)
    width = max(1, round(min(size) / 48))
    for h in hands:
        uv = np.asarray(h.joints_2d)
        for j in range(1, 21):
            d.line([tuple(uv[PARENTS[j]]), tuple(uv[j])], fill=FINGER_COLORS[(j - 1) // 4], width=width)
    return img


def make_toy_dataset(
    folder: str | os.PathLike,
    n: int,
    right_model: nn.Module,
    model_name: str = "openhand",
    seed: int = 0,
    size: int = 96,
    sides: tuple[str, ...] = ("right", "left"),
    progress: bool = False,
) -> Path:
    """Write (or resume) ``n`` one-hand skeleton records to ``folder``; sides alternate over ``sides``."""
    rng = np.random.default_rng(seed)
    f = 160.0 * size / 96.0
    K = np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1]])
    writer = DatasetWriter(
        folder, config={"kind": "recon-toy", "seed": seed, "size": size, "model": model_name}
    )
    for i in progress_bar(range(n), desc="toy data", unit="sample", disable=not progress):
        hand = random_hand(right_model, model_name, sides[i % len(sides)], rng, K)  # draw even if present
        sid = f"toy{i:06d}"
        if writer.has(sid):
            continue
        s = Sample(id=sid, width=size, height=size, K=K.tolist(), hands=[hand], file_name=f"images/{sid}.png")
        writer.write(s, {s.file_name: draw_skeleton((size, size), [hand])})
    return Path(folder)
