"""Seeded prompt generator: diverse, reproducible, hand-centric, and consistent with a record's labels."""

from __future__ import annotations

import re

from handsynth.text.pos import BuiltinTagger
from handsynth.text.prompts import PromptGenerator, object_phrase, prompt_for_sample
from handsynth.text.tagging import hand_token_indices
from handsynth.text.tokenizer import clip_tokenizer, encode_prompts


def test_diversity_1000_draws():
    prompts = PromptGenerator(seed=0)(1000)
    distinct = len(set(prompts))
    print(f"distinct prompts in 1000 draws: {distinct}")
    assert distinct >= 900


def test_seeded_and_reproducible():
    assert PromptGenerator(3)(50) == PromptGenerator(3)(50)
    assert PromptGenerator(3)(50) != PromptGenerator(4)(50)


def test_hand_centric_and_taggable():
    prompts = PromptGenerator(1)(300)
    hand_words = sum(bool(re.search(r"\b(hands?|fingers?|thumbs?|palms?|fist)\b", p, re.I)) for p in prompts)
    assert hand_words >= 0.6 * len(prompts)
    tok, tagger = clip_tokenizer(), BuiltinTagger()
    tagged = sum(bool(hand_token_indices(p, tok, tagger=tagger)) for p in prompts)
    assert tagged == len(prompts)  # every prompt gives TAS something to attend to
    assert all(encode_prompts(p, tok)[0, -1].item() == 49407 for p in prompts[:20])
    assert all(len(tok(p).input_ids) <= 77 for p in prompts)  # never truncated


def test_object_phrase():
    assert object_phrase("006_mustard_bottle") == "a mustard bottle"
    assert object_phrase("apple") == "an apple"
    assert object_phrase("the cup") == "the cup"


def test_prompt_agrees_with_record(record):
    make_record = record
    for i in range(40):
        left = prompt_for_sample(make_record(i, ("left",)), seed=0)
        assert "right hand" not in left and "right palm" not in left
        both = prompt_for_sample(make_record(i, ("left", "right"), obj="006_mustard_bottle"), seed=0)
        assert "mustard bottle" in both and re.search(r"both hands|two hands|cupped hands", both)
        one = prompt_for_sample(make_record(i, ("right",), obj="apple"), seed=0)
        assert "an apple" in one and "left hand" not in one
    r = make_record(7, ("right",))
    assert prompt_for_sample(r, 0) == prompt_for_sample(r, 0) != prompt_for_sample(r, 1)


def test_one_hand_prompts_never_describe_two_hands(record):
    from handsynth.text.prompts import TWO_HAND_ACTIONS, TWO_HAND_GRASP

    two = re.compile(
        "|".join(re.escape(a).replace(re.escape("{pos}"), r"\w+") for a in TWO_HAND_ACTIONS + TWO_HAND_GRASP)
    )
    for i in range(300):
        prompts = [prompt_for_sample(record(i, (side,)), seed=0) for side in ("left", "right")]
        for p in [*prompts, PromptGenerator(i).sample(two_hands=False)]:
            assert not two.search(p) and "both" not in p, p
