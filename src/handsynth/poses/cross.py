"""HandBooster's cross-distribution sampling (Eq. 6): synthetic poses unlike every real pose are drawn
more often. Weight m_i = minmax_i(Σ_j (1 − cos(v_i^s, v_j^r))), P = m / Σ m."""

from __future__ import annotations

import numpy as np

from handsynth.errors import UserError
from handsynth.poses.features import unit_rows


def distance_sums(synthetic: np.ndarray, real: np.ndarray, block: int = 4096) -> np.ndarray:
    """Σ_j (1 − cos(v_i^s, v_j^r)) for every synthetic row, in blocks (memory O(block · M))."""
    s, r = unit_rows(synthetic), unit_rows(real)
    r_sum = r.sum(axis=0)  # Σ_j cos = s_i · Σ_j r_j: the sum never needs the N × M matrix
    return (
        np.concatenate([len(r) - s[i : i + block] @ r_sum for i in range(0, len(s), block)])
        if len(s)
        else np.zeros(0)
    )


def cross_weights(synthetic: np.ndarray, real: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """The sampling probabilities P of the synthetic rows (sum 1).

    Min-max normalisation gives the most real-like pose probability 0 (the paper); ``floor`` adds ε to
    every normalised weight first so that none is impossible. All sums equal (one synthetic pose, or
    all identical): uniform.
    """
    sums = distance_sums(synthetic, real)
    span = sums.max() - sums.min()
    m = (sums - sums.min()) / span if span > 0 else np.ones_like(sums)
    m = m + floor
    total = m.sum()
    if total <= 0:
        raise UserError("every cross-sampling weight is 0; pass --floor above 0")
    return m / total


def draw(weights: np.ndarray, n: int, seed: int, replace: bool = True) -> np.ndarray:
    """``n`` indices drawn with probabilities ``weights`` (seeded); without replacement ``n`` may not
    exceed the number of rows with a weight above 0."""
    rng = np.random.default_rng(seed)
    if not replace and n > int(np.count_nonzero(weights)):
        raise UserError(
            f"--n {n} exceeds the {int(np.count_nonzero(weights))} synthetic poses with a weight above 0; "
            "lower --n, pass --floor above 0 or drop --without-replacement"
        )
    return rng.choice(len(weights), size=n, replace=replace, p=weights)
