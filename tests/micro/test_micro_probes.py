"""The diagnostic probes' own logic: the caption changes and the interval they report."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from handsynth.world.captions import CaptionFacts, caption

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def probe():
    sys.path.insert(0, str(REPO / "benchmarks" / "micro"))
    import caption_classifier_probe

    yield caption_classifier_probe
    sys.path.remove(str(REPO / "benchmarks" / "micro"))


def test_each_change_alters_exactly_its_fact_in_world_captions(probe):
    rng = np.random.default_rng(0)
    for k in range(60):
        side = ("left", "right")[k % 2]
        facts = CaptionFacts(side=side, gesture="making a fist", background="in front of a brick wall")
        text = caption(facts, rng)
        walls = ("in front of a brick wall", "over the grass")
        changes = probe.changed_captions(text, "an empty wooden table", rng, walls[0], walls)
        assert changes["background"] == text.replace(walls[0], walls[1])
        assert changes["hand vs empty"] == "an empty wooden table"
        other = probe.SIDE_SWAP[side]
        assert f" {other} " in f" {changes['side']} " and f" {side} " not in f" {changes['side']} "
        assert changes["side"].replace(other, side) == text
        swapped = changes["gesture group"]
        assert "making a fist" not in swapped and "giving a thumbs up" not in swapped  # another group
        assert any(p in swapped for g in ("few", "many") for p in probe.GROUP_PHRASES[g])
        if "who" in changes:
            assert changes["who"] != text and changes["who"].replace("woman", "man") == text.replace(
                "woman", "man"
            )


def test_a_caption_without_a_fixed_group_gets_no_gesture_change(probe):
    changes = probe.changed_captions(
        "a right hand showing two fingers on a table", "empty", np.random.default_rng(0)
    )
    assert "gesture group" not in changes and "side" in changes


@pytest.mark.parametrize("k,n", [(0, 10), (7, 20), (128, 256), (256, 256)])
def test_wilson_interval_matches_scipy(probe, k, n):
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = probe.wilson(k, n)
    assert lo == pytest.approx(ref.low, abs=2e-4) and hi == pytest.approx(ref.high, abs=2e-4)
