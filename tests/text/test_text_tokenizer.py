"""The shipped CLIP tokenizer gives open_clip's (= OpenAI CLIP's = SD-1.x's) ids without open_clip."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from handsynth.errors import UserError
from handsynth.text import tokenizer as T


@pytest.fixture(scope="module")
def reference():
    """open_clip's own SimpleTokenizer, loaded from its file (``import open_clip`` needs torchvision);
    handsynth does not depend on open_clip, so these comparisons run only where it is installed."""
    if importlib.util.find_spec("open_clip") is None:
        pytest.skip("open-clip-torch not installed (KNOWN_IDS below hold its ids for key prompts)")
    root = Path(importlib.util.find_spec("open_clip").submodule_search_locations[0])
    spec = importlib.util.spec_from_file_location("_openclip_tokenizer", root / "tokenizer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.SimpleTokenizer()


PROMPTS = [
    "a photo of a cat",
    "A man HOLDING a red mug, with his RIGHT hand!!!",
    "close-up: two hands (left & right) typing on a keyboard... 4k, 8K; f/1.8",
    "she's holding it; they'll grab what's there -- isn't it?",
    "café naïve Ünïcödé façade, crème brûlée",
    "the person’s hand “quoted” — with curly quotes",
    "tom &amp; jerry &lt;3 html entities",
    "ΣΑΣ ΟΔΟΣ greek capitals with final sigma",
    "emoji 👍✋🤚 and CJK 你好 手 and ＦＵＬＬＷＩＤＴＨ",
    "tabs\tand\nnewlines   and    spaces",
    "ﬁne ligatures and İstanbul",
    "1234567890 numbers 3.14 and 1,000",
    "",
    "hand " * 40,  # 80 tokens: truncated
    "a very long prompt about a left-handed carpenter " * 12,
]


def _ref_ids(reference, text):
    ids = reference(text)[0].tolist()
    return [i for i in ids if i != 0]  # open_clip pads with 0; SD's tokenizer pads with <|endoftext|>


@pytest.mark.parametrize("text", PROMPTS)
def test_ids_match_open_clip(reference, text):
    ids = T.encode_prompts(text)[0].tolist()
    ref = _ref_ids(reference, text)
    assert len(ids) == T.CONTEXT_LENGTH
    assert ids[: len(ref)] == ref
    assert all(i == 49407 for i in ids[len(ref) :])  # SD-1.x pad token
    assert ids[0] == 49406 and 49407 in ids


def test_truncation_keeps_start_and_end(reference):
    ids = T.encode_prompts("hand " * 100)[0].tolist()
    assert ids[0] == 49406 and ids[-1] == 49407 and ids[1:-1] == [2463] * 75  # "hand</w>"
    assert ids == reference("hand " * 100)[0].tolist()


def test_plain_prompts_need_no_cleaning(reference):
    """Without entities, curly quotes, final sigma or full-width letters (which ftfy rewrites) the raw HF
    tokenizer is already identical; the cleaning in encode_prompts covers the rest."""
    tok = T.clip_tokenizer()
    for text in [*PROMPTS[:5], PROMPTS[9], PROMPTS[11], PROMPTS[14]]:
        assert tok(text, truncation=True, max_length=77).input_ids == _ref_ids(reference, text)


def test_known_sd_ids_and_vocab():
    tok = T.clip_tokenizer()
    assert len(tok) == 49408
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tok.bos_token_id == 49406 and tok.eos_token_id == 49407 and tok.pad_token_id == 49407


# open_clip's SimpleTokenizer ids (padding removed) for prompts that exercise text cleaning: checked
# on every install, with or without open_clip.
KNOWN_IDS = {
    "A man HOLDING a red mug, with his RIGHT hand!!!": [
        49406, 320, 786, 5050, 320, 736, 9722, 267, 593, 787, 1155, 2463, 995, 49407,
    ],
    "the person\u2019s hand \u201cquoted\u201d \u2014 with curly quotes": [
        49406, 518, 2533, 568, 2463, 257, 27706, 257, 2005, 593, 20795, 5808, 49407,
    ],
    "tom &amp; jerry &lt;3 html entities": [49406, 2435, 261, 9164, 283, 274, 18231, 38134, 49407],
    "\u03a3\u0391\u03a3 \u039f\u0394\u039f\u03a3 greek capitals with final sigma": [
        49406, 139, 225, 138, 109, 139, 480, 138, 123, 138, 112, 138, 123, 139, 480, 6842, 29579, 593,
        1755, 15697, 49407,
    ],
}  # fmt: skip


@pytest.mark.parametrize("text", sorted(KNOWN_IDS))
def test_shipped_tokenizer_gives_open_clip_ids(text):
    ids = T.encode_prompts(text)[0].tolist()
    ref = KNOWN_IDS[text]
    assert ids[: len(ref)] == ref and all(i == 49407 for i in ids[len(ref) :])


def test_shipped_files_are_used_and_missing_ones_are_a_user_error(tmp_path, monkeypatch):
    assert (T.shipped_tokenizer_dir() / "tokenizer.json").is_file()
    monkeypatch.setattr(T, "_memo", {})
    monkeypatch.setattr(T, "shipped_tokenizer_dir", lambda: tmp_path / "gone")
    with pytest.raises(UserError, match="reinstall handsynth"):
        T.clip_tokenizer()


def test_model_folder_tokenizer_wins(tmp_path, monkeypatch):
    """A model folder with its own tokenizer/ (diffusers layout) is used instead of the built one."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    monkeypatch.setattr(T, "_memo", {})
    tk = Tokenizer(models.WordLevel({"[UNK]": 0, "hand": 1, "a": 2}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]").save_pretrained(
        tmp_path / "model" / "tokenizer"
    )
    tok = T.clip_tokenizer(tmp_path / "model")
    assert len(tok) == 3 and tok("a hand").input_ids == [2, 1]
    # a folder without a tokenizer falls back to the built CLIP tokenizer
    (tmp_path / "empty").mkdir()
    assert len(T.clip_tokenizer(tmp_path / "empty")) == 49408


def test_a_tokenizer_path_that_does_not_exist_or_resolve_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setattr(T, "_memo", {})
    with pytest.raises(UserError, match="does not exist"):
        T.clip_tokenizer(tmp_path / "nowhere")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a hub id this machine cannot load
    with pytest.raises(UserError, match="neither a local folder nor a tokenizer"):
        T.clip_tokenizer("no-such-org/no-such-model")
