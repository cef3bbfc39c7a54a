"""``--caption-style verbose``: VLM-like captions true to the record, the rest of the sample unchanged."""

from __future__ import annotations

import os

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import numpy as np
import pytest

from handsynth.errors import UserError
from handsynth.world import WorldConfig, WorldGenerator
from handsynth.world.captions import VERBOSE_MAX_WORDS

N = 6
SIZE = 64


def _generate(domain: str, style: str, seed: int = 5) -> list:
    gen = WorldGenerator(WorldConfig(domain=domain, size=SIZE, seed=seed, maps=(), caption_style=style))
    try:
        return [gen.generate(i) for i in range(N)]
    finally:
        gen.release()


@pytest.fixture(scope="module")
def wild_verbose():
    return _generate("wild", "verbose")


def test_verbose_captions_carry_the_records_facts_and_environment_sentences(wild_verbose):
    lab = _generate("lab", "verbose")
    for domain, (s, _) in [*(("wild", x) for x in wild_verbose), *(("lab", x) for x in lab)]:
        text = s.extra["caption"]
        assert text.count(". ") >= 2  # several sentences
        assert f"{s.hands[0].side} hand" in text
        attrs = s.source["attributes"]
        assert attrs["background"]["phrase"] in text
        if "object" in s.extra:
            o = s.extra["object"]
            assert f"holding a {o['color']} {o['name']}" in text
        else:  # the gesture read off the joints, as the short caption words it
            assert any(
                w in text for w in ("pointing", "peace", "thumbs", "loose", "fist", "waving", "showing")
            )
        assert "light" in text.split(". ", 1)[1]  # an environment sentence about the lighting
        assert ("studio backdrop" in text) == (domain == "lab")
        assert len(text.split()) <= VERBOSE_MAX_WORDS


def test_verbose_captions_fit_clips_77_tokens(wild_verbose):
    from handsynth.text.tokenizer import clean_prompt, clip_tokenizer

    tok = clip_tokenizer()
    lengths = [len(tok(clean_prompt(s.extra["caption"])).input_ids) for s, _ in wild_verbose]
    assert max(lengths) <= 77 and min(lengths) > 30  # long like a VLM's, yet no hand word cut off


def test_verbose_style_changes_nothing_but_the_caption_and_is_deterministic(wild_verbose):
    short = _generate("wild", "short")
    again = _generate("wild", "verbose")
    other = _generate("wild", "verbose", seed=6)
    for (v, vf), (s, sf), (a, _) in zip(wild_verbose, short, again):
        d = v.to_dict()
        assert d.pop("caption") == a.extra["caption"]
        assert d == s.to_dict()  # same prompt, labels, provenance
        assert all(np.array_equal(np.asarray(vf[k]), np.asarray(sf[k])) for k in sf)
    assert [v.extra["caption"] for v, _ in wild_verbose] != [o.extra["caption"] for o, _ in other]
    assert "caption" not in short[0][0].extra


def test_unknown_caption_style_is_refused():
    with pytest.raises(UserError, match="caption style 'long' is unknown"):
        WorldConfig(domain="wild", caption_style="long")
