"""FID and KID from precomputed features, computed by torchmetrics.

Features are extracted once per image (whole image and hand crops) and fed to torchmetrics'
``FrechetInceptionDistance`` / ``KernelInceptionDistance`` through an identity feature module, so the
formulas are torchmetrics' own and any extractor works.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance


class _Identity(nn.Module):
    """Features in, features out: lets torchmetrics consume precomputed vectors."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of two feature sets (N, D) (needs N ≥ 2 each)."""
    m = FrechetInceptionDistance(feature=_Identity(real.shape[1]))
    m.update(torch.from_numpy(np.asarray(real, np.float64)), real=True)
    m.update(torch.from_numpy(np.asarray(fake, np.float64)), real=False)
    return float(m.compute())


def kid_from_features(
    real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID mean and std over random subsets (subset size capped by the smaller set); seeded."""
    size = int(min(subset_size, len(real), len(fake)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "will save all extracted features": intended, they are small
        m = KernelInceptionDistance(feature=_Identity(real.shape[1]), subsets=subsets, subset_size=size)
    m.update(torch.from_numpy(np.asarray(real, np.float64)), real=True)
    m.update(torch.from_numpy(np.asarray(fake, np.float64)), real=False)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        mean, std = m.compute()
    finally:
        torch.random.set_rng_state(state)
    return float(mean), float(std)
