"""Part-of-speech back-ends for hand-token tagging: NLTK, spaCy, and a built-in offline tagger.

Why: AttentionHand selects words NLTK tags VBG ("holding"), but NLTK's tagger data and spaCy models
are downloads a user may not have. The built-in tagger (lexicon + suffix and context rules) is tuned
for the one decision that matters here, verb "-ing" forms vs "-ing" nouns such as thing, ring,
ceiling or building, and gives Penn-Treebank-like tags for everything else.
"""

from __future__ import annotations

import logging
from typing import Protocol

from handsynth.errors import UserError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "builtin", "nltk", "spacy")


def _words(text: str) -> set[str]:
    return set(text.split())


class PosTagger(Protocol):
    name: str

    def tag(self, words: list[str]) -> list[str]:
        """One Penn-Treebank tag per word (punctuation tokens are tagged with themselves)."""
        ...


# --- built-in lexicon ------------------------------------------------------------------------------

_CLOSED = {
    "DT": "a an the this that these those each every some any no another either neither all both half",
    "PRP$": "my your his her its our their",
    "PRP": "i you he she it we they me him us them myself yourself himself herself itself themselves "
    "someone somebody something anyone anybody everyone nobody",
    "IN": "in on at of with by from into onto over under above below behind beside besides between "
    "among through across along around near against toward towards without within inside outside "
    "upon about after before during while since until like as than per via atop beneath underneath "
    "throughout amid off",
    "CC": "and or but nor yet so",
    "TO": "to",
    "MD": "can could will would shall should may might must",
    "VBZ": "is has does",
    "VBP": "are am have do",
    "VBD": "was were had did made held took gave put got caught threw grabbed",
    "VBN": "been done given taken shown seen held",
    "VB": "be hold take use grab make give show put get play cut bring sing swing cling fling sting wring",
    "RB": "not very also just too together up down out away back here there then now gently carefully "
    "tightly firmly slightly closely upward downward forward almost only still",
    "WDT": "which what whose",
    "WP": "who whom",
    "EX": "",
    "CD": "one two three four five six seven eight nine ten",
    "JJ": "left right red blue green yellow white black brown gray grey pink purple orange small large big "
    "little young old elderly wooden metal plastic glass open closed empty full hot cold warm soft "
    "hard bright dark blurred blurry clear close raised other several many few single whole new "
    "smooth rough wet dry long short tall middle-aged bare",
}
CLOSED: dict[str, str] = {w: tag for tag, words in _CLOSED.items() for w in words.split()}

# Third-person verbs common in hand captions ("she holds"), tagged VBZ after a subject.
VERBS_S = _words(
    """holds grips grasps uses takes picks lifts raises carries shows points waves touches presses pours
    cuts opens closes types plays writes draws paints rubs claps makes gives puts pulls pushes reaches
    squeezes turns twists ties folds peels wipes washes"""
)
# "-ing" words that are nouns (or prepositions) in captions; never verb forms.
ING_NOUNS = _words(
    """thing something anything nothing everything ring earring string spring ceiling morning
    evening king wing clothing sibling pudding wedding sling awning icing stuffing dumpling duckling
    seedling offspring herring shilling viking lightning railing siding bedding housing stocking
    legging lasagna sapling darling sterling inkling pudding ping ding ling bling thong tong during
    ceiling shirting roofing flooring tubing piping fencing plumbing wiring padding lining sibling
    handwriting footing"""
)
# Nouns when after a determiner/possessive/adjective ("a painting"), verbs otherwise ("painting a wall").
ING_AMBIGUOUS = _words(
    """building landing fitting painting drawing reading writing recording meeting opening setting cutting serving frosting filling
    wrapping carving sketching sewing knitting bowling swimming boxing cooking baking dining living
    sitting waiting shopping parking changing dressing crossing"""
)
# Compound modifiers: "-ing" + noun that PTB tags NN ("cutting board", "dining table").
ING_COMPOUND_HEADS = _words(
    "board table room area machine needle pool gloves glove bag paper kit pin pins pan gown ring rink"
)
# Nouns that suffix rules would mistag ("mechanic" is not an adjective, "glass" not a verb).
NOUNS = _words(
    """man woman person boy girl child kid baby lady guy chef cook worker mechanic doctor nurse student
    musician artist carpenter gardener barista teacher scientist player pianist guitarist individual
    adult teenager toddler customer user craftsman athlete father mother surgeon farmer painter potter
    baker waiter waitress driver engineer technician hand finger thumb palm fist wrist arm glass cup
    mug bottle phone smartphone laptop keyboard pen pencil knife fork spoon bowl plate ball toy book"""
)
_VOWELS = set("aeiouy")
_ADJ_SUFFIXES = ("ful", "ous", "ive", "able", "ible", "ish", "less", "ical", "ary", "y")
_SUBJECT_TAGS = {"NN", "NNS", "NNP", "PRP", "WP"}


class BuiltinTagger:
    """Offline rule tagger: closed-class lexicon, "-ing" noun lists, suffix and one-word-context rules."""

    name = "builtin"

    def tag(self, words: list[str]) -> list[str]:
        tags: list[str] = []
        for i, w in enumerate(words):
            prev = tags[i - 1] if i else "<s>"
            prev_word = words[i - 1].lower() if i else ""
            nxt = words[i + 1].lower() if i + 1 < len(words) else ""
            tags.append(self._tag_one(w, prev, prev_word, nxt, i))
        return tags

    def _tag_one(self, w: str, prev: str, prev_word: str, nxt: str, i: int) -> str:
        lw = w.lower()
        if not any(c.isalnum() for c in w):
            return w if w in ",.:;!?" else ":"
        if lw in ("'s", "’s"):
            return "POS" if prev in ("NN", "NNS", "NNP") else "VBZ"
        if lw[0].isdigit():
            return "CD"
        if lw in CLOSED:
            tag = CLOSED[lw]
            if tag == "VB" and prev in _SUBJECT_TAGS | {"DT", "JJ", "PRP$"} and lw not in ("be",):
                return "NN" if prev in ("DT", "JJ", "PRP$") else "VBP"
            return tag
        if lw in NOUNS:
            return "NN"
        if lw.endswith("s") and lw[:-1] in NOUNS or lw.endswith("es") and lw[:-2] in NOUNS:
            return "NNS"
        if lw in ("men", "women", "children", "people"):
            return "NNS"
        if lw.endswith("ing") and len(lw) > 4:
            return self._ing(lw, prev, nxt)
        if lw.endswith("ings") and lw[:-1] in ING_NOUNS | ING_AMBIGUOUS:
            return "NNS"
        if w[0].isupper() and i > 0 and prev not in (".", "!", "?", ":"):
            return "NNP"
        if lw.endswith("ly") and len(lw) > 4:
            return "RB"
        if lw.endswith("ed") and len(lw) > 4:
            return "VBD" if prev in _SUBJECT_TAGS else "VBN" if prev in ("VBZ", "VBP", "VBD", "RB") else "JJ"
        if lw.endswith("s") and not lw.endswith(("ss", "us", "is")) and len(lw) > 3:
            verb_like = lw in VERBS_S or CLOSED.get(nxt) in ("DT", "PRP$", "CD", "IN", "RB", "TO", "PRP")
            return "VBZ" if prev in ("NN", "NNP", "PRP") and verb_like else "NNS"
        if (
            lw.endswith(_ADJ_SUFFIXES)
            and len(lw) > 5
            and prev in ("DT", "PRP$", "RB", "VBZ", "VBP", "CC")
            and nxt
            and nxt not in CLOSED
        ):
            return "JJ"
        return "NN"

    @staticmethod
    def _ing(lw: str, prev: str, nxt: str) -> str:
        if lw in ING_NOUNS:
            return "NN"
        if not (set(lw[:-3]) & _VOWELS):  # bring, sing, string, spring, swing, wing: no verb stem
            return "VB" if lw in CLOSED else "NN"
        if lw in ING_AMBIGUOUS and (prev in ("DT", "PRP$", "POS", "JJ", "CD") or nxt in ING_COMPOUND_HEADS):
            return "NN"
        return "VBG"


class NltkTagger:
    """NLTK's averaged-perceptron tagger (the AttentionHand default); needs its data installed."""

    name = "nltk"

    def __init__(self) -> None:
        import nltk

        self._pos_tag = nltk.pos_tag
        self._pos_tag(["a", "hand"])  # raises LookupError when the tagger data is missing

    def tag(self, words: list[str]) -> list[str]:
        return [t for _, t in self._pos_tag(words)] if words else []


class SpacyTagger:
    """A spaCy pipeline's fine-grained (Penn Treebank) tags, run on our own word split."""

    name = "spacy"

    def __init__(self, model: str | None = None) -> None:
        import spacy
        from spacy.tokens import Doc

        names = [model] if model else [m for m in spacy.util.get_installed_models() if m.startswith("en_")]
        if not names:
            raise LookupError("no English spaCy model installed")
        self._nlp = spacy.load(names[0], disable=["ner", "parser", "lemmatizer"])
        self._doc = Doc
        self.name = f"spacy:{names[0]}"

    def tag(self, words: list[str]) -> list[str]:
        if not words:
            return []
        doc = self._nlp(self._doc(self._nlp.vocab, words=words))
        return [t.tag_ for t in doc]


_taggers: dict[str, PosTagger] = {}


def get_pos_tagger(backend: str = "auto") -> PosTagger:
    """The tagger for ``backend``; ``auto`` tries NLTK, then spaCy, then the built-in one (logged)."""
    if backend not in BACKENDS:
        raise UserError(f"unknown part-of-speech back-end {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend in _taggers:
        return _taggers[backend]
    tagger: PosTagger | None = None
    errors = []
    for name in ("nltk", "spacy", "builtin") if backend == "auto" else (backend,):
        try:
            tagger = {"nltk": NltkTagger, "spacy": SpacyTagger, "builtin": BuiltinTagger}[name]()
            break
        except ImportError:
            errors.append(f"{name}: not installed")
        except (LookupError, OSError):
            errors.append(f"{name}: tagger data/model not installed")
    if tagger is None:
        raise UserError(
            f"part-of-speech back-end {backend!r} is not usable ({'; '.join(errors)}); install its data "
            "(nltk: nltk.download('averaged_perceptron_tagger_eng'); spacy: python -m spacy download "
            "en_core_web_sm) or use --pos builtin"
        )
    log.info(
        "part-of-speech tagging with the %s back-end%s",
        tagger.name,
        f" ({'; '.join(errors)})" if errors else "",
    )
    _taggers[backend] = tagger
    return tagger
