"""Synthetic dataset folders (records + PNG images) and tiny stand-in models for the eval tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn


def hand_dict(side: str, joints_3d: np.ndarray, joints_2d: np.ndarray, bbox: list[float]) -> dict:
    return {
        "side": side,
        "model": "openhand",
        "global_orient": [0.0] * 3,
        "hand_pose": [0.0] * 45,
        "betas": [0.0] * 10,
        "transl": [0.0] * 3,
        "joints_3d": np.asarray(joints_3d).tolist(),
        "joints_2d": np.asarray(joints_2d).tolist(),
        "bbox": bbox,
    }


def make_dataset(
    root: Path,
    n: int,
    seed: int,
    size: int = 48,
    shift: float = 0.0,
    prompt: str = "a hand waving",
    mesh: bool = False,
) -> Path:
    """``n`` records with noise images (mean brightness shifted by ``shift``) and one or two hands."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    lines = []
    for i in range(n):
        img = np.clip(rng.normal(120 + shift, 40, size=(size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / f"images/{i:04d}.png")
        hands = []
        sides = ["right", "left"] if i % 2 else ["right"]
        for k, side in enumerate(sides):
            j2 = rng.uniform(8 + 16 * k, 20 + 16 * k, size=(21, 2))
            j3 = rng.normal(scale=0.03, size=(21, 3)) + np.array([0.05 * k, 0, 0.5])
            lo, hi = j2.min(0), j2.max(0)
            hands.append(
                hand_dict(
                    side, j3, j2, [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]
                )
            )
        rec = {
            "id": f"s{i:04d}",
            "file_name": f"images/{i:04d}.png",
            "width": size,
            "height": size,
            "camera": {"K": [[60.0, 0.0, size / 2], [0.0, 60.0, size / 2], [0.0, 0.0, 1.0]]},
            "hands": hands,
            "prompt": prompt,
        }
        if mesh:
            (root / "mesh").mkdir(exist_ok=True)
            Image.fromarray(np.full((size, size, 3), 200, np.uint8)).save(root / f"mesh/{i:04d}.png")
            rec["conditions"] = {"mesh": f"mesh/{i:04d}.png"}
        lines.append(json.dumps(rec))
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root


class MeanStdFeatures(nn.Module):
    """A deterministic 6-d extractor: per-channel mean and std of the image (scaled to [0, 1])."""

    name = "mean/std test extractor"
    input_size = 32
    num_features = 6

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() / 255.0
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1)


def make_extractor() -> nn.Module:
    return MeanStdFeatures()


def three_datasets(tmp_path: Path) -> dict[str, Path]:
    """A real set and two generated sets, one close to it and one far (brighter)."""
    return {
        "real": make_dataset(tmp_path / "real", 8, seed=0),
        "fake_a": make_dataset(tmp_path / "fake_a", 8, seed=1, shift=5.0),
        "fake_b": make_dataset(tmp_path / "fake_b", 8, seed=2, shift=60.0),
    }
