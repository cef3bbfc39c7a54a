"""HandBooster's final condition mix: per sample an object class drawn uniformly, then a synthetic
pose with probability ``synthetic_fraction`` (0.8 in the released code) or a real one, then a random
novel view of it (``poses views``' perturbation), so rare objects get as many conditions as common ones.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from handsynth.data.records import Sample
from handsynth.errors import UserError
from handsynth.poses.features import object_name
from handsynth.poses.rigid import HandPoser, inside_image
from handsynth.poses.views import random_view
from handsynth.progress import progress

VIEW_TRIES = 10  # views drawn before a sample keeps its unrotated pose


@dataclass
class ComposeCounts:
    synthetic: int = 0
    real: int = 0
    unrotated: int = 0  # every drawn view left the image


def by_object(samples: list[Sample], flag: str) -> dict[str, list[Sample]]:
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        if not s.extra.get("objects") or not s.hands:
            raise UserError(f"{flag}: record {s.id} needs a hand and 'objects' to be composed")
        groups[object_name(s)].append(s)
    return groups


def compose(
    real: list[Sample],
    synthetic: list[Sample],
    n: int,
    synthetic_fraction: float,
    seed: int,
    max_deg: float,
    mode: str,
    poser: HandPoser,
    step: dict,
    counts: ComposeCounts,
) -> list[Sample]:
    """``n`` condition records ``compose<i>``; sample i depends only on (seed, i), so a resumed run
    draws the same ones."""
    real_groups, syn_groups = by_object(real, "--real"), by_object(synthetic, "--synthetic")
    classes = sorted(set(real_groups) & set(syn_groups))
    if not classes:
        raise UserError(
            "--real and --synthetic share no object name: each sample draws an object class, then a real "
            "or synthetic pose of it"
        )
    out = []
    for i in progress(range(n), desc="compose", unit="sample"):
        rng = np.random.default_rng([seed, i])
        name = classes[int(rng.integers(len(classes)))]
        use_synthetic = bool(rng.random() < synthetic_fraction)
        pool = syn_groups[name] if use_synthetic else real_groups[name]
        src = pool[int(rng.integers(len(pool)))]
        for _ in range(VIEW_TRIES):
            view, angles = random_view(src, rng, max_deg, mode, poser)
            if inside_image(view):
                break
        else:
            view, angles = random_view(src, rng, 0.0, "symmetric", poser)
            counts.unrotated += 1
        counts.synthetic += use_synthetic
        counts.real += not use_synthetic
        view.id = f"compose{i:06d}"
        info = {
            **step,
            "index": i,
            "object": name,
            "from": src.id,
            "pool": "synthetic" if use_synthetic else "real",
            "angles_deg": [float(a) for a in angles],
        }
        view.source = {**view.source, "handbooster": {**view.source.get("handbooster", {}), "compose": info}}
        out.append(view)
    return out
