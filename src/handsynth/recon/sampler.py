"""Drawing training items from several datasets in given proportions (``--in real:1.0 --in synth:0.5``).

Each draw picks dataset ``d`` with probability ``ratio_d / sum(ratios)`` and then an item of it
uniformly, independently of dataset sizes, so a small real set is not drowned by a large synthetic
one. The stream is a pure function of (seed, draw number): a resumed run skips the draws already
consumed and continues exactly where it stopped, and each draw carries its own augmentation seed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from handsynth.errors import UserError


def parse_data_spec(spec: str) -> tuple[str, float]:
    """``PATH[:RATIO]`` -> (path, ratio); the ratio defaults to 1.0."""
    path, ratio = spec, 1.0
    head, sep, tail = spec.rpartition(":")
    if sep and head:
        try:
            path, ratio = head, float(tail)
        except ValueError:
            path, ratio = spec, 1.0
    if not (ratio > 0 and np.isfinite(ratio)):
        raise UserError(f"--in {spec!r}: the ratio after ':' must be a positive number, e.g. synth:0.5")
    return path, ratio


class RatioSampler(torch.utils.data.Sampler):
    """Infinite stream of ``(flat_index, draw_seed)`` over concatenated datasets, mixed by ``ratios``.

    ``flat_index`` indexes the concatenation of the datasets (sizes ``sizes``, in order). ``start``
    skips that many draws (for resume); ``rank``/``world`` give each process its own stream.
    """

    CHUNK = 4096

    def __init__(
        self, sizes: Sequence[int], ratios: Sequence[float], seed: int = 0, rank: int = 0, world: int = 1
    ) -> None:
        if len(sizes) != len(ratios) or not sizes:
            raise ValueError("sizes and ratios must be non-empty and of equal length")
        empty = [i for i, n in enumerate(sizes) if n <= 0]
        if empty:
            raise UserError(f"dataset #{empty[0] + 1} of --in has no hands to train on; remove it or fix it")
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        p = np.asarray(ratios, dtype=np.float64)
        self.probs = p / p.sum()
        self.seed, self.rank, self.world = seed, rank, world
        self.start = 0

    def chunk(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Draws ``k*CHUNK .. (k+1)*CHUNK-1`` of this process: (flat indices, augmentation seeds)."""
        rng = np.random.default_rng([self.seed, self.rank, k])
        which = rng.choice(len(self.sizes), size=self.CHUNK, p=self.probs)
        u = rng.random(self.CHUNK)
        idx = self.offsets[which] + np.minimum(
            (u * self.sizes[which]).astype(np.int64), self.sizes[which] - 1
        )
        seeds = rng.integers(0, 2**31 - 1, size=self.CHUNK)
        return idx, seeds

    def dataset_of(self, flat_index: np.ndarray) -> np.ndarray:
        """Which dataset each flat index belongs to."""
        return np.searchsorted(self.offsets, flat_index, side="right") - 1

    def __iter__(self) -> Iterator[tuple[int, int]]:
        k, off = divmod(self.start, self.CHUNK)
        while True:
            idx, seeds = self.chunk(k)
            for i in range(off, self.CHUNK):
                yield int(idx[i]), int(seeds[i])
            k, off = k + 1, 0
