"""HandBooster pose sampling speed: farthest pose sampling (Alg. 1) and cross-distribution sampling.

- ``fps``: ``handsynth.poses.fps.farthest_pose_sampling`` (one running nearest distance per pose, O(N·M))
  vs Alg. 1 as printed, with numpy inside each step (every step recomputes each pose's nearest distance
  to the whole sampled set: O(N·M²)); same seed, picks must be identical. The pure-Python loop of the
  paper (``farthest_pose_sampling_literal``, the tests' reference) is timed at a small size too.
- ``cross``: ``cross_weights`` (Σ_j cos as one dot product with Σ_j r_j) vs the explicit N × M cosine
  matrix in blocks; the weights must agree.
- ``translation``: how much the object translation moves the cosine distance at --translation-scale 1,
  10, 100 (metres make it nearly invisible).

    python benchmarks/pose_sampling.py      # writes benchmarks/results/pose_sampling.md
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from handsynth.poses.cross import cross_weights
from handsynth.poses.features import VECTOR_SIZE, unit_rows
from handsynth.poses.fps import farthest_pose_sampling, farthest_pose_sampling_literal
from handsynth.poses.quaternions import axis_angle_to_quaternion, matrix_to_quaternion, quaternion_to_matrix

RESULTS = Path(__file__).resolve().parent / "results" / "pose_sampling.md"


def fps_recompute(vectors: np.ndarray, m: int, seed: int) -> list[int]:
    """Alg. 1 step by step: each step, every unpicked pose's min distance to all of Q, recomputed."""
    unit = unit_rows(vectors)
    n = len(unit)
    picks = [int(np.random.default_rng(seed).integers(n))]
    while len(picks) < m:
        d = (1.0 - unit @ unit[picks].T).min(axis=1)
        d[picks] = -np.inf
        picks.append(int(np.argmax(d)))
    return picks


def cross_explicit(syn: np.ndarray, real: np.ndarray, block: int = 2048) -> np.ndarray:
    s, r = unit_rows(syn), unit_rows(real)
    sums = np.concatenate([(1.0 - s[i : i + block] @ r.T).sum(axis=1) for i in range(0, len(s), block)])
    m = (sums - sums.min()) / (sums.max() - sums.min())
    return m / m.sum()


def random_pose_vectors(n: int, seed: int, translation_scale: float = 1.0) -> np.ndarray:
    """Pose vectors shaped like real ones: joint rotations N(0, 0.3 rad), any object rotation,
    object 0–15 cm from the wrist."""
    rng = np.random.default_rng(seed)
    joints = axis_angle_to_quaternion(rng.normal(size=(n, 15, 3)) * 0.3).reshape(n, 60)
    q = rng.normal(size=(n, 4))
    obj = matrix_to_quaternion(quaternion_to_matrix(q))
    t = rng.uniform(-0.15, 0.15, size=(n, 3)) * translation_scale
    return np.concatenate([joints, obj, t], axis=1)


def timed(fn, *a, **k):
    t0 = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--m", type=int, default=500)
    ap.add_argument("--cross-n", type=int, default=100_000)
    ap.add_argument("--cross-m", type=int, default=1_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    assert random_pose_vectors(2, 0).shape[1] == VECTOR_SIZE
    rows = []
    vecs = random_pose_vectors(args.n, args.seed)
    fast, t_fast = timed(farthest_pose_sampling, vecs, args.m, args.seed)
    slow, t_slow = timed(fps_recompute, vecs, args.m, args.seed)
    rows.append((f"fps N={args.n} M={args.m}", "vectorised (running min)", t_fast, "", ""))
    rows.append(
        ("", "Alg. 1 recompute (numpy per step)", t_slow, f"{t_slow / t_fast:.0f}×", str(fast == slow))
    )
    small = random_pose_vectors(1000, args.seed)
    lit, t_lit = timed(farthest_pose_sampling_literal, small, 30, args.seed)
    fast_s, t_fast_s = timed(farthest_pose_sampling, small, 30, args.seed)
    rows.append(("fps N=1000 M=30", "vectorised (running min)", t_fast_s, "", ""))
    rows.append(("", "Alg. 1 pure-Python loop", t_lit, f"{t_lit / t_fast_s:.0f}×", str(lit == fast_s)))
    syn = random_pose_vectors(args.cross_n, args.seed + 1)
    real = random_pose_vectors(args.cross_m, args.seed + 2)
    w, t_w = timed(cross_weights, syn, real)
    w_ref, t_ref = timed(cross_explicit, syn, real)
    same = bool(np.allclose(w, w_ref, rtol=1e-8, atol=1e-15))
    rows.append((f"cross N={args.cross_n} M={args.cross_m}", "cross_weights (Σ r_j trick)", t_w, "", ""))
    rows.append(("", "explicit N×M cosine matrix", t_ref, f"{t_ref / t_w:.0f}×", str(same)))

    # translation visibility: mean |Δ(1 − cos)| between random pairs when the translation is zeroed
    effect = []
    for scale in (1.0, 10.0, 100.0):
        v = unit_rows(random_pose_vectors(4000, 5, scale))
        v0 = random_pose_vectors(4000, 5, scale)
        v0[:, -3:] = 0.0
        v0 = unit_rows(v0)
        d = 1 - np.sum(v[:2000] * v[2000:], axis=1)
        d0 = 1 - np.sum(v0[:2000] * v0[2000:], axis=1)
        effect.append((scale, float(np.mean(np.abs(d - d0))), float(np.mean(d))))

    lines = [
        "# HandBooster pose sampling speed",
        "",
        f"`python benchmarks/pose_sampling.py` on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        f"numpy {np.__version__}; random pose vectors ({VECTOR_SIZE}-d), seed {args.seed}.",
        "",
        "| case | implementation | seconds | speed-up | same result |",
        "|---|---|---:|---:|---|",
        *(f"| {c} | {impl} | {t:.3f} | {sp} | {same} |" for c, impl, t, sp, same in rows),
        "",
        "Translation visibility (`--translation-scale`): mean |Δ(1 − cos)| over 2000 random pairs when the",
        "object translation (±15 cm, metres) is zeroed, next to the mean distance itself:",
        "",
        "| scale | mean change | mean distance |",
        "|---:|---:|---:|",
        *(f"| {s:g} | {ch:.5f} | {d:.4f} |" for s, ch, d in effect),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
