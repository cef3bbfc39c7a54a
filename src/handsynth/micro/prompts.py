"""Wild-style prompts for lab poses: the micro benchmark's generation prompts.

The paper generates in-the-wild images for poses it already has; here, held-out ``lab`` poses get a
``wild`` caption that is still true of the pose: the record's own side and gesture (read off its
joints by the world's captioner) in a background phrase drawn from real ``wild`` records, worded by
the world's caption templates. So the image content asked for is "this hand, this gesture, in the
wild", and the labels stay exact.
"""

from __future__ import annotations

import numpy as np

from handsynth.data.records import Sample
from handsynth.world.captions import CaptionFacts, caption, gesture


def wild_backgrounds(wild: list[Sample]) -> list[str]:
    """The background phrases of ``wild`` records (deduplicated, in first-seen order)."""
    seen: dict[str, None] = {}
    for s in wild:
        bg = ((s.source or {}).get("attributes") or {}).get("background") or {}
        phrase = bg.get("phrase") if isinstance(bg, dict) else None
        if phrase:
            seen.setdefault(phrase, None)
    return list(seen) or ["in front of a brick wall"]


def wild_prompt(sample: Sample, background: str, rng: np.random.Generator) -> str:
    """A wild-domain caption of the first hand of ``sample`` in front of ``background``."""
    hand = sample.hands[0]
    phrase, _ = gesture(np.asarray(hand.joints_3d))
    return caption(CaptionFacts(side=hand.side, gesture=phrase, background=background, domain="wild"), rng)


def wild_prompts(lab: list[Sample], wild: list[Sample], seed: int = 0) -> list[str]:
    """One wild-style prompt per lab record, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    backgrounds = wild_backgrounds(wild)
    return [wild_prompt(s, backgrounds[rng.integers(len(backgrounds))], rng) for s in lab]
