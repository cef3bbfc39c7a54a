"""Hand-related token positions in the 77-token CLIP sequence (AttentionHand's TAS targets).

Why: TAS raises attention on the tokens of hand-related words. The released code used NLTK word
indices as CLIP token indices (off by one, and wrong whenever a word splits into several BPE tokens);
here each selected word maps to ALL of its BPE token positions through the tokenizer's character
offsets, with the start token at position 0. Words cut off by truncation are dropped, never
mis-indexed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import regex

from handsynth.text.pos import PosTagger, get_pos_tagger
from handsynth.text.tokenizer import CONTEXT_LENGTH, clip_tokenizer, fix_text

# Optional word groups (besides the default VBG + hand); each lists the forms it matches.
WORD_GROUPS: dict[str, tuple[str, ...]] = {
    "finger": ("finger", "fingers", "fingertip", "fingertips"),
    "gesture": ("gesture", "gestures", "gesturing"),
    "palm": ("palm", "palms"),
    "fist": ("fist", "fists"),
    "thumb": ("thumb", "thumbs"),
    "grip": ("grip", "grips", "gripping", "gripped"),
}
HAND_WORDS = ("hand", "hands", "handed")
_WORD_RE = regex.compile(r"[\p{L}\p{M}]+|\p{N}+|'[\p{L}]+|[^\s\p{L}\p{N}]")
# CLIP's own pre-tokenizer split, used when a tokenizer cannot report character offsets.
_CLIP_SPLIT = regex.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+", regex.IGNORECASE)


@dataclass(frozen=True)
class TagRules:
    """Which words are hand-related.

    ``vbg``: words tagged VBG ("holding"); ``hand``: the ``hand_words`` (hand/hands/handed), or, with
    ``hand_substring``, any word containing "hand" (also "handle" or "handsome"); ``groups``: names
    from :data:`WORD_GROUPS`; ``words``: a user list, whose plurals match too unless ``plurals`` is off.
    """

    vbg: bool = True
    hand: bool = True
    hand_substring: bool = False
    groups: tuple[str, ...] = ()
    words: tuple[str, ...] = field(default_factory=tuple)
    hand_words: tuple[str, ...] = HAND_WORDS
    plurals: bool = True

    def extra_words(self) -> set[str]:
        out = {w.lower() for w in self.words}
        for g in self.groups:
            out.update(WORD_GROUPS[g])
        return out

    def reason(self, word: str, tag: str) -> str | None:
        """Why ``word`` is selected ("vbg", "hand", "list"), or None."""
        lw = word.lower()
        if self.hand and (lw in self.hand_words or (self.hand_substring and "hand" in lw)):
            return "hand"
        plural = self.plurals and lw.endswith("s") and lw[:-1] in {w.lower() for w in self.words}
        if lw in self.extra_words() or plural:
            return "list"
        if self.vbg and tag == "VBG":
            return "vbg"
        return None


PRESETS: dict[str, TagRules] = {
    # The paper: VBG or a hand word.
    "attentionhand": TagRules(),
    # The released code: VBG or exactly one of hand, hands, gesture, finger, fingers.
    "released": TagRules(hand_words=("hand", "hands"), words=("gesture", "finger", "fingers"), plurals=False),
    # Every hand word group this project knows.
    "extended": TagRules(groups=tuple(WORD_GROUPS)),
}


@dataclass
class SelectedWord:
    word: str
    tag: str
    reason: str
    span: tuple[int, int]  # characters in the cleaned prompt
    positions: list[int]  # CLIP token positions (start token = 0); empty if truncated away


@dataclass
class TagResult:
    prompt: str  # the cleaned text that was tagged and tokenized
    backend: str
    words: list[SelectedWord]

    @property
    def positions(self) -> list[int]:
        return sorted({p for w in self.words for p in w.positions})


def _token_spans(text: str, tokenizer: Any) -> list[tuple[int, int]]:
    """Character span of each token at positions 0..n-1 of the truncated 77-token sequence
    ((0, 0) for special tokens)."""
    try:
        enc = tokenizer(text, truncation=True, max_length=CONTEXT_LENGTH, return_offsets_mapping=True)
        return [tuple(o) for o in enc["offset_mapping"]]
    except (NotImplementedError, ValueError, KeyError):
        pass
    spans: list[tuple[int, int]] = [(0, 0)]
    for m in _CLIP_SPLIT.finditer(text):  # CLIP BPE never merges across these chunks
        n = len(tokenizer(m.group(), add_special_tokens=False).input_ids)
        spans.extend([(m.start(), m.end())] * n)
    spans = spans[: CONTEXT_LENGTH - 1]
    return [*spans, (0, 0)]


def tag_prompt(
    prompt: str,
    tokenizer: Any | None = None,
    rules: TagRules | str = "attentionhand",
    tagger: PosTagger | str = "auto",
) -> TagResult:
    """Select hand-related words of ``prompt`` and their CLIP token positions."""
    rules = PRESETS[rules] if isinstance(rules, str) else rules
    tagger = get_pos_tagger(tagger) if isinstance(tagger, str) else tagger
    tokenizer = tokenizer if tokenizer is not None else clip_tokenizer()
    fixed = fix_text(prompt)
    lowered = fixed.lower()
    text = fixed if len(fixed) == len(lowered) else lowered  # tag cased text when spans agree
    matches = list(_WORD_RE.finditer(text))
    words = [m.group() for m in matches]
    tags = tagger.tag(words)
    spans = _token_spans(lowered, tokenizer)
    selected = []
    for m, tag in zip(matches, tags):
        reason = rules.reason(m.group(), tag)
        if reason is None:
            continue
        s, e = m.span()
        pos = [i for i, (a, b) in enumerate(spans) if b > a and a < e and b > s]
        selected.append(SelectedWord(m.group(), tag, reason, (s, e), pos))
    return TagResult(prompt=text, backend=tagger.name, words=selected)


def hand_token_indices(
    prompt: str,
    tokenizer: Any | None = None,
    rules: TagRules | str = "attentionhand",
    tagger: PosTagger | str = "auto",
) -> list[int]:
    """Sorted positions (start token = 0) of every BPE token of every hand-related word in ``prompt``."""
    return tag_prompt(prompt, tokenizer, rules, tagger).positions
