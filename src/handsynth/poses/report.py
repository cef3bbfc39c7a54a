"""``--report PNG`` of ``poses fps`` and ``poses cross-sample`` (the paper's Fig. 4, drawn with PIL):
pose similarity matrices of FPS picks next to random picks, and the histogram of each synthetic pose's
mean similarity to the real poses before and after cross-sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from handsynth.poses.features import unit_rows

SIDE = 160
MAX_OBJECTS = 4


def _matrix_image(sim: np.ndarray, lo: float, hi: float) -> Image.Image:
    gray = np.clip((sim - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    return Image.fromarray((gray * 255).astype(np.uint8)).resize((SIDE, SIDE), Image.NEAREST).convert("RGB")


def _mean_off_diagonal(sim: np.ndarray) -> float:
    n = len(sim)
    return float((sim.sum() - np.trace(sim)) / max(n * (n - 1), 1))


def fps_report(groups: list[tuple[str, np.ndarray, list[int]]], seed: int, path: Path) -> None:
    """One row per object (at most four): cosine similarity among the FPS picks | among as many random
    picks (brighter = more similar; one grey scale per row). Lower mean similarity = more diverse."""
    rng = np.random.default_rng(seed)
    rows = groups[:MAX_OBJECTS]
    canvas = Image.new("RGB", (2 * SIDE + 30, len(rows) * (SIDE + 30) + 10), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (name, vecs, picks) in enumerate(rows):
        unit = unit_rows(vecs)
        rand = rng.choice(len(unit), size=len(picks), replace=False)
        sims = [unit[picks] @ unit[picks].T, unit[rand] @ unit[rand].T]
        lo, hi = min(s.min() for s in sims), max(s.max() for s in sims)
        y = 10 + r * (SIDE + 30)
        for c, (label, sim) in enumerate(zip(("FPS", "random"), sims, strict=True)):
            x = 10 + c * (SIDE + 10)
            canvas.paste(_matrix_image(sim, lo, hi), (x, y + 14))
            draw.text((x, y), f"{name} {label}: mean {_mean_off_diagonal(sim):.3f}", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def mean_similarity(synthetic: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Each synthetic row's mean cosine similarity to the real rows."""
    return unit_rows(synthetic) @ unit_rows(real).mean(axis=0)


def cross_report(before: np.ndarray, after: np.ndarray, path: Path, bins: int = 30) -> None:
    """Histograms (share of poses per bin) of the real–synthetic mean similarity: all synthetic poses
    (grey) and the drawn ones (blue). Cross-sampling should move mass to the left (less real-like)."""
    width, height, pad = 480, 220, 30
    lo, hi = float(min(before.min(), after.min())), float(max(before.max(), after.max()))
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-6, bins + 1)
    shares = [np.histogram(v, edges)[0] / max(len(v), 1) for v in (before, after)]
    top = max(s.max() for s in shares) or 1.0
    canvas = Image.new("RGB", (width, height + 2 * pad), "white")
    draw = ImageDraw.Draw(canvas)
    bar = (width - 2 * pad) / bins
    for share, colour, shift in zip(shares, ((150, 150, 150), (40, 90, 200)), (0.0, 0.5), strict=True):
        for b, s in enumerate(share):
            x0 = pad + (b + shift) * bar
            draw.rectangle([x0, pad + height * (1 - s / top), x0 + bar / 2, pad + height], fill=colour)
    draw.text((pad, 5), "mean cos to real poses: all synthetic (grey) vs drawn (blue)", fill="black")
    draw.text((pad, height + pad + 5), f"{lo:.3f}", fill="black")
    draw.text((width - pad - 40, height + pad + 5), f"{hi:.3f}", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
