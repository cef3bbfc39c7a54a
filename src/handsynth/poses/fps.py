"""HandBooster Alg. 1 (farthest pose sampling) with the cosine distance 1 − cos.

The paper's loop recomputes every remaining pose's nearest distance to the whole sampled set at each
step (O(N·M²)); keeping one running minimum per pose and updating it with the newest pick only gives
the same picks in O(N·M) time and O(N) memory.
"""

from __future__ import annotations

import numpy as np

from handsynth.poses.features import unit_rows


def farthest_pose_sampling(vectors: np.ndarray, m: int, seed: int = 0) -> list[int]:
    """Indices of ``m`` rows picked by Alg. 1: a random first row (from ``seed``), then repeatedly the
    row whose nearest picked row is farthest (ties: lowest index, as the paper's strict ``>``)."""
    unit = unit_rows(vectors)
    n = len(unit)
    m = min(m, n)
    first = int(np.random.default_rng(seed).integers(n))
    picks = [first]
    nearest = 1.0 - unit @ unit[first]
    nearest[first] = -np.inf
    while len(picks) < m:
        best = int(np.argmax(nearest))
        picks.append(best)
        np.minimum(nearest, 1.0 - unit @ unit[best], out=nearest)
        # a picked row's own distance is ~0, not -inf: without this, once only exact duplicates of
        # picked rows remain, argmax would return an already-picked row again
        nearest[best] = -np.inf
    return picks


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 − cos(a, b) of two vectors (Eq. 5 as a distance)."""
    return 1.0 - float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def farthest_pose_sampling_literal(vectors: np.ndarray, m: int, seed: int = 0) -> list[int]:
    """Alg. 1 as printed (the reference for tests and the benchmark): slow, O(N·M²) distances."""
    vectors = np.asarray(vectors, dtype=np.float64)
    n = len(vectors)
    m = min(m, n)
    picks = [int(np.random.default_rng(seed).integers(n))]
    while len(picks) < m:
        best, d_max = None, -np.inf
        for i in range(n):
            if i in picks:
                continue
            d_i = min(cosine_distance(vectors[i], vectors[j]) for j in picks)
            if d_i > d_max:
                d_max, best = d_i, i
        picks.append(best)  # type: ignore[arg-type]
    return picks
