"""Hand-related tagging: the built-in tagger on hand-centric captions, exact CLIP positions, truncation."""

from __future__ import annotations

import pytest

from handsynth.errors import UserError
from handsynth.text.pos import BuiltinTagger, get_pos_tagger
from handsynth.text.tagging import TagRules, hand_token_indices, tag_prompt
from handsynth.text.tokenizer import clip_tokenizer, encode_prompts

# caption -> selected words in order (default AttentionHand rule: VBG or hand/hands/handed), hand-labelled.
CASES = [
    ("A man holding a red mug with his right hand.", ["holding", "hand"]),
    ("A woman is typing on a laptop keyboard with both hands.", ["typing", "hands"]),
    ("Close-up of a person's hand gripping a tennis racket.", ["hand", "gripping"]),
    ("A child using chopsticks to pick up noodles.", ["using"]),
    ("Someone taking a photo with a smartphone.", ["taking"]),
    ("A chef cutting vegetables on a cutting board.", ["cutting"]),
    ("A hand wearing a diamond ring.", ["hand", "wearing"]),
    ("A person pulling a string with two fingers.", ["pulling"]),
    ("A woman holding a wedding bouquet in her left hand.", ["holding", "hand"]),
    ("Hands painting a wall with a roller.", ["Hands", "painting"]),
    ("A painting of a hand on the ceiling.", ["hand"]),
    ("A man is drawing a circle on a whiteboard.", ["drawing"]),
    ("A girl showing her drawing to the camera.", ["showing"]),
    ("The king is waving his hand from the building.", ["waving", "hand"]),
    ("A boy swinging a baseball bat with both hands in the morning.", ["swinging", "hands"]),
    ("A woman holding her phone while sitting on a swing.", ["holding", "sitting"]),
    ("Two hands tying a shoelace.", ["hands", "tying"]),
    ("A mechanic holding a wrench, fixing a car engine.", ["holding", "fixing"]),
    ("A person's left hand resting on a table.", ["hand", "resting"]),
    ("A pianist playing the piano with nimble fingers.", ["playing"]),
    ("A man lighting a candle with a match in the evening.", ["lighting"]),
    ("A woman wrapping a gift with colorful string.", ["wrapping"]),
    ("A hand reaching for something on a shelf.", ["hand", "reaching"]),
    ("Someone pouring milk into a cup with one hand.", ["pouring", "hand"]),
    ("A baby grabbing its mother's finger.", ["grabbing"]),
    ("Left-handed writer signing a document.", ["handed", "signing"]),
    ("A person clapping their hands at a concert.", ["clapping", "hands"]),
    ("A woman holding an earring between her thumb and index finger.", ["holding"]),
    ("A man carrying a bag of groceries in each hand.", ["carrying", "hand"]),
    ("A nurse putting on rubber gloves.", ["putting"]),
    ("The girl is knitting a scarf with wooden needles.", ["knitting"]),
    ("A student raising a hand in a classroom.", ["raising", "hand"]),
    ("A mechanic's hands covered in grease holding a spark plug.", ["hands", "holding"]),
    ("A man peeling an orange with his thumbs during breakfast.", ["peeling"]),
    ("A woman stirring soup in a pot with a wooden spoon.", ["stirring"]),
    ("Hand holding a glass of wine at a wedding.", ["Hand", "holding"]),
    ("A teenager scrolling through a smartphone in the living room.", ["scrolling"]),
    ("A craftsman carving wood with a sharp chisel.", ["carving"]),
    ("A person opening a jar lid with both hands.", ["opening", "hands"]),
    ("A child building a sand castle with her hands.", ["building", "hands"]),
    ("A woman with a ring on her finger touching her face.", ["touching"]),
    ("Hands of a potter shaping clay on a spinning wheel.", ["Hands", "shaping", "spinning"]),
    ("A man signing with his hands.", ["signing", "hands"]),
    ("Nothing in his hands but a small string.", ["hands"]),
    ("A person holding several things in both hands.", ["holding", "hands"]),
    ("Handsome man holding a pen.", ["holding"]),
]


@pytest.fixture(scope="module")
def tok():
    return clip_tokenizer()


def test_case_count():
    assert len(CASES) >= 40


@pytest.mark.parametrize(("caption", "expected"), CASES)
def test_builtin_selection(tok, caption, expected):
    res = tag_prompt(caption, tok, tagger=BuiltinTagger())
    assert [w.word for w in res.words] == expected
    # every selected word's positions decode back to exactly that word (all its BPE pieces, no others)
    ids = encode_prompts(caption, tok)[0].tolist()
    for w in res.words:
        pieces = "".join(tok.convert_ids_to_tokens([ids[p] for p in w.positions]))
        assert pieces.replace("</w>", "") == w.word.lower()
        assert w.positions == list(range(w.positions[0], w.positions[-1] + 1))


def test_multi_token_word_and_start_offset(tok):
    res = tag_prompt("kneading dough", tok, tagger=BuiltinTagger())
    (w,) = res.words
    assert w.word == "kneading" and len(w.positions) == 2 and w.positions[0] == 1  # start token is position 0
    assert hand_token_indices("hands", tok, tagger=BuiltinTagger()) == [1]


def test_truncated_words_are_dropped(tok):
    filler = (
        "red " * 74
    )  # 74 tokens after the start token -> positions 1..74; position 75 is the last content
    idx = hand_token_indices(filler + "hand holding a cup", tok, tagger=BuiltinTagger())
    assert idx == [75]  # "hand" fits, "holding" would be 76 (the end token's slot): dropped, not mis-indexed
    idx = hand_token_indices(
        filler + "kneading", tok, tagger=BuiltinTagger()
    )  # 2 pieces: only the first fits
    assert idx == [75]
    assert hand_token_indices("red " * 80 + "holding hands", tok, tagger=BuiltinTagger()) == []
    assert all(i < 76 for i in hand_token_indices("holding hands " * 50, tok, tagger=BuiltinTagger()))


def test_rules_groups_words_and_substring(tok):
    text = "A handle in her palm, fingers making a fist around a thumb-sized pebble"
    base = [w.word for w in tag_prompt(text, tok, tagger=BuiltinTagger()).words]
    assert base == ["making"]
    ext = TagRules(groups=("palm", "finger", "fist", "thumb"))
    assert [w.word for w in tag_prompt(text, tok, ext, BuiltinTagger()).words] == [
        "palm",
        "fingers",
        "making",
        "fist",
        "thumb",
    ]
    sub = [w.word for w in tag_prompt(text, tok, TagRules(hand_substring=True), BuiltinTagger()).words]
    assert sub == ["handle", "making"]
    # The released code's list is exact: no substring, no other forms.
    released = "Handed a handle, hands gesturing gestures; a finger, fingers, fingertips and a gesture"
    got = [w.word for w in tag_prompt(released, tok, "released", BuiltinTagger()).words]
    assert got == ["hands", "gesturing", "finger", "fingers", "gesture"]  # gesturing: VBG
    user = TagRules(vbg=False, words=("pebble",))
    assert [w.word for w in tag_prompt(text, tok, user, BuiltinTagger()).words] == ["pebble"]


def test_unicode_prompt_positions(tok):
    """Cleaning (HTML entities, curly quotes) happens before tagging, so positions stay exact."""
    text = "the woman’s hand &amp; a cup she’s holding"
    ids = encode_prompts(text, tok)[0].tolist()
    res = tag_prompt(text, tok, tagger=BuiltinTagger())
    assert [w.word for w in res.words] == ["hand", "holding"]
    for w in res.words:
        assert tok.convert_ids_to_tokens([ids[p] for p in w.positions]) == [w.word + "</w>"]


def test_auto_backend_falls_back_to_builtin_when_no_data(caplog):
    try:
        import nltk

        nltk.pos_tag(["a"])
        pytest.skip("NLTK tagger data is installed here")
    except (ImportError, LookupError):
        pass
    import handsynth.text.pos as pos

    pos._taggers.clear()
    with caplog.at_level("INFO"):
        t = get_pos_tagger("auto")
    assert t.name in ("builtin",) or t.name.startswith("spacy")
    assert "back-end" in caplog.text
    with pytest.raises(UserError, match="nltk"):
        get_pos_tagger("nltk")


def _nltk_ready() -> bool:
    try:
        import nltk

        nltk.pos_tag(["a", "hand"])
        return True
    except (ImportError, LookupError):
        return False


@pytest.mark.skipif(not _nltk_ready(), reason="NLTK averaged-perceptron tagger data not installed")
def test_nltk_path(tok):
    t = get_pos_tagger("nltk")
    res = tag_prompt("A man holding a red mug with his right hand.", tok, tagger=t)
    assert [w.word for w in res.words] == ["holding", "hand"]
    agree = sum([w.word for w in tag_prompt(c, tok, tagger=t).words] == e for c, e in CASES)
    assert agree >= len(CASES) * 0.7  # NLTK's own errors are its own; most must agree
