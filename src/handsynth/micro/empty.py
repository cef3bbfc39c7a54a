"""No-hand photos of the micro world: the world's backgrounds alone, captioned as empty scenes.

Why: a yardstick that "finds" a hand everywhere cannot tell a hand from noise. These images give the
world detector negatives to learn from and to be calibrated on (its hand-present threshold), the base
model captions without a hand ("an empty wooden table"), and gate (b) its no-hand prompts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from handsynth.data.records import Sample

_EMPTY = ("an empty scene {bg}", "nobody {bg}", "no hand, only the background {bg}", "an empty view {bg}")


def empty_caption(phrase: str, rng: np.random.Generator) -> str:
    """A caption true of a hand-less background image, e.g. 'an empty scene on a wooden table'."""
    return _EMPTY[int(rng.integers(len(_EMPTY)))].format(bg=phrase)


def render_empty(domain: str, n: int, size: int, seed: int, out: str | Path, backgrounds_k: int = 0) -> Path:
    """Write ``n`` hand-less world photos of ``domain`` (records with no hands) to dataset folder ``out``.

    ``backgrounds_k`` > 0 draws from the world's fixed set (``world render --backgrounds K``), so the
    empty scenes show the same backgrounds as the hand photos.
    """
    from handsynth.data import write_metadata
    from handsynth.pinhole import intrinsics
    from handsynth.world import backgrounds, degrade

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    samples = []
    for i in tqdm(range(n), desc=f"empty {domain}", unit="img", disable=None):
        rng = np.random.default_rng([seed, 7, i])
        if backgrounds_k:
            bg = backgrounds.fixed_background(domain, int(rng.integers(backgrounds_k)), size)
        else:
            bg = backgrounds.sample_background(domain, rng, size)
        deg = degrade.sample_degradation(domain, rng, size)
        img = degrade.apply_degradation(bg.image, deg, rng)
        rel = f"images/empty_{domain}_{i:06d}.png"
        Image.fromarray(img).save(out / rel)
        samples.append(
            Sample(
                id=f"empty_{domain}_{i:06d}",
                width=size,
                height=size,
                K=intrinsics(size, size, 50.0).tolist(),  # unused: no hand to project
                hands=[],
                prompt=empty_caption(bg.phrase, rng),
                file_name=rel,
                source={
                    "generator": "handsynth micro empty",
                    "domain": domain,
                    "seed": seed,
                    "index": i,
                    "attributes": {"background": {"name": bg.name, "kind": bg.kind, "phrase": bg.phrase}},
                },
            )
        )
    write_metadata(out / "metadata.jsonl", samples)
    return out
