"""Human-behaviour semantics of a caption (SesaHand's chain, steps 2-3), and the offline rule version.

Why: SesaHand turns verbose VLM captions into human-centric prompts: who, which hand(s), what action,
what object, body posture, with environment detail dropped. :class:`Semantics` is the structured
middle of that chain (what the model is asked to emit as JSON); :func:`rule_semantics` extracts it
from a plain caption without any model (drops locative/background phrases, keeps the
subject-verb-object around the hands), so the feature also works with the ``template`` captioner.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from handsynth.text.pos import BuiltinTagger, PosTagger, _words
from handsynth.text.tagging import _WORD_RE
from handsynth.text.tokenizer import fix_text

HAND_VALUES = ("left", "right", "both", "one", "unspecified", "none")
PERSON_NOUNS = _words(
    """man men woman women person people boy boys girl girls child children kid kids baby lady guy guys
    chef cook worker mechanic doctor nurse student musician artist carpenter gardener barista teacher
    scientist player pianist guitarist individual someone somebody adult teenager toddler customer
    user craftsman craftswoman athlete father mother grandmother grandfather he she they surgeon
    farmer painter potter baker waiter waitress driver engineer technician"""
)
HAND_NOUNS = {
    "hand",
    "hands",
    "finger",
    "fingers",
    "thumb",
    "thumbs",
    "palm",
    "palms",
    "fist",
    "fists",
    "fingertips",
}
SCENE_NOUNS = _words(
    """kitchen room background foreground backdrop scene setting environment surroundings office park
    street road sidewalk garden yard field forest beach sea ocean lake river mountain sky window wall
    floor ground ceiling table desk counter countertop bench workbench shelf sofa couch chair stool bed
    studio workshop library cafe restaurant bar store shop supermarket market classroom school
    laboratory lab hospital clinic garage car train bus station airport house home building city town
    outdoors indoors outside inside sunlight daylight sunset sunrise night day light lighting
    surface tablecloth carpet rug grass sand snow rain area space corner hallway bathroom bedroom
    livingroom stage gym plants plant curtains door"""
)
LOC_PREPS = {
    "in",
    "on",
    "at",
    "near",
    "beside",
    "behind",
    "against",
    "under",
    "inside",
    "outside",
    "by",
    "across",
    "along",
    "around",
    "atop",
    "beneath",
    "underneath",
    "amid",
    "throughout",
    "during",
}
POSTURE_VERBS = _words(
    """sitting standing kneeling leaning lying crouching squatting bending seated perched lounging reclining
    sits stands kneels leans lies crouches squats bends"""
)
_DIRECTIONAL = {"into", "onto", "to", "from", "through", "with", "toward", "towards", "across"}
_AUX = {"is", "are", "was", "were", "be", "being", "been", "appears", "appear", "seems", "seem", "to"}
_NOT_ACTION_VBZ = {"is", "are", "has", "have", "does", "appears", "seems", "shows", "depicts", "features"}
_NP_TAGS = {"DT", "PRP$", "JJ", "NN", "NNS", "NNP", "CD", "POS", "VBN", "PRP"}
_LEAD_INS = [
    r"^(?:the|this)\s+(?:image|photo|photograph|picture|scene|shot|frame)\s+(?:shows|depicts|features|captures|"
    r"contains|presents|is of)\s+",
    r"^in\s+(?:the|this)\s+(?:image|photo|photograph|picture|scene),?\s+",
    r"^(?:a|an)\s+(?:(?:close-up|closeup|realistic|detailed|high-resolution)\s+)?"
    r"(?:close-up|closeup|photo|photograph|picture|image|shot)\s+of\s+",
    r"^there\s+(?:is|are)\s+",
]


@dataclass
class Semantics:
    """Who does what with which hand(s); ``environment`` lists what the prompt leaves out."""

    subject: str = "a person"
    hands: str = "unspecified"
    action: str = ""
    object: str | None = None
    posture: str | None = None
    environment: list[str] = field(default_factory=list)
    hand_phrase: str | None = None  # wording from the caption ("in her left hand"), when known
    action_phrase: str | None = None  # verb + complement as written ("typing on a laptop")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> Semantics | None:
        """Normalise a model's JSON (synonym keys, lists, "none" strings); None if it says nothing usable."""
        low = {str(k).lower().replace(" ", "_"): v for k, v in d.items()}

        def get(*keys: str) -> Any:
            for k in keys:
                if k in low and low[k] not in (None, "", [], {}):
                    v = low[k]
                    if isinstance(v, str) and v.strip().lower() in ("none", "n/a", "null", "unknown", "-"):
                        return None
                    return v
            return None

        def text(v: Any) -> str | None:
            if v is None:
                return None
            if isinstance(v, (list, tuple)):
                v = " and ".join(str(x) for x in v if x)
            if isinstance(v, dict):
                v = " ".join(str(x) for x in v.values() if x)
            s = " ".join(str(v).split()).strip(" .")
            return s or None

        action = text(get("action", "activity", "verb", "what", "hand_action"))
        subject = text(get("subject", "person", "who", "human"))
        if not action and not subject:
            return None
        env = get("environment", "environment_details", "background", "scene", "setting", "surroundings")
        env_list = [str(x) for x in env] if isinstance(env, list) else ([str(env)] if env else [])
        return cls(
            subject=subject or "a person",
            hands=normalise_hands(text(get("hands", "hands_used", "hand", "which_hands", "which_hand"))),
            action=action or "",
            object=text(get("object", "interacting_object", "interaction_object", "held_object", "objects")),
            posture=text(get("posture", "body_posture", "pose", "body_pose")),
            environment=env_list,
        )


def normalise_hands(v: str | None) -> str:
    """Free text about hands -> one of :data:`HAND_VALUES`."""
    if not v:
        return "unspecified"
    s = v.lower()
    if re.search(r"\b(both|two|left and right|right and left)\b", s) or s.strip() == "hands":
        return "both"
    if "left" in s:
        return "left"
    if "right" in s:
        return "right"
    if re.search(r"\b(none|no hands?)\b", s):
        return "none"
    if re.search(r"\b(one|single|a hand)\b", s):
        return "one"
    return "unspecified"


def _possessive(subject: str) -> str:
    words = set(re.findall(r"[a-z]+", subject.lower()))
    if words & {"man", "boy", "he", "guy", "father", "grandfather", "craftsman", "his"}:
        return "his"
    if words & {"woman", "girl", "she", "lady", "mother", "grandmother", "her", "waitress", "craftswoman"}:
        return "her"
    return "their"


def compose_prompt(sem: Semantics) -> str:
    """A human-centric prompt from semantics: subject, posture, action + object, hand phrase; no scene."""
    subject = sem.subject or "a person"
    action = sem.action_phrase or " ".join(x for x in (sem.action, sem.object) if x)
    parts = [subject]
    ing = action.split(" ")[0].endswith("ing")
    posture = sem.posture if sem.posture and sem.posture.lower() not in action.lower() else None
    if posture and ing:
        parts.append(posture + (" and" if posture.split(" ")[0].endswith("ing") else ","))
    if action:
        parts.append(action)
    hp = sem.hand_phrase
    if not hp:
        pos = _possessive(subject)
        hp = {
            "both": "with both hands",
            "left": f"with {pos} left hand",
            "right": f"with {pos} right hand",
            "one": "with one hand",
        }.get(sem.hands)
    text = " ".join(parts)
    if hp and not re.search(r"\b(hands?|fingers?|palms?|fists?)\b", text.lower()):
        text += f" {hp}"
    if posture and not ing:
        text += f" while {posture}"
    text = " ".join(text.split()).strip(" ,.")
    return text[:1].lower() + text[1:] if text[:2] != "I " else text


# --- offline rule extraction ------------------------------------------------------------------------


class _Sentence:
    def __init__(self, text: str, tagger: PosTagger) -> None:
        self.text = text
        self.m = list(_WORD_RE.finditer(text))
        self.w = [m.group() for m in self.m]
        self.lw = [w.lower() for w in self.w]
        self.t = tagger.tag(self.w)

    def span(self, i: int, j: int) -> str:
        """Words i..j-1 as written."""
        return self.text[self.m[i].start() : self.m[j - 1].end()] if j > i else ""

    def np_end(self, i: int) -> int:
        """End (exclusive) of the noun phrase starting at i, with "of"-chains and hyphenated words."""
        j = i
        n = len(self.w)
        while j < n:
            if self.t[j] in _NP_TAGS or self.w[j] == "-" or (self.lw[j] in ("'s", "’s")):
                if self.t[j] == "PRP" and j > i:
                    break
                j += 1
            elif self._of_or_ing_modifier(i, j):
                j += 1
            else:
                break
        has_noun = any(self.t[k] in ("NN", "NNS", "NNP", "PRP", "CD") for k in range(i, j))
        trim = ("DT", "PRP$", "POS", "JJ") if has_noun else ("DT", "PRP$", "POS")
        while j > i and self.t[j - 1] in trim and self.lw[j - 1] not in ("left", "right", "both"):
            j -= 1  # a noun phrase ends on a noun (or on an adjective used as one: "an orange")
        return j

    def _of_or_ing_modifier(self, i: int, j: int) -> bool:
        """An "of" continuing a noun phrase, or an "-ing" modifier ("pruning shears", "a spinning wheel")."""
        n = len(self.w)
        if self.lw[j] == "of":
            return j > i and j + 1 < n and self.t[j + 1] in _NP_TAGS
        return (
            self.t[j] == "VBG"
            and j + 1 < n
            and self.t[j + 1] in ("NN", "NNS")
            and (j == i or self.t[j - 1] in ("DT", "JJ", "PRP$"))
        )

    def head(self, i: int, j: int) -> str:
        nouns = [self.lw[k] for k in range(i, j) if self.t[k] in ("NN", "NNS", "NNP", "PRP", "CD")]
        if "of" in self.lw[i:j]:  # "a pair of scissors": head before "of" unless it is a quantity
            k = self.lw.index("of", i)
            before = [self.lw[x] for x in range(i, k) if self.t[x] in ("NN", "NNS")]
            if before and before[-1] not in (
                "pair",
                "cup",
                "glass",
                "slice",
                "piece",
                "set",
                "deck",
                "bunch",
            ):
                return before[-1]
        return nouns[-1] if nouns else (self.lw[j - 1] if j > i else "")


def _is_env_np(s: _Sentence, i: int, j: int) -> bool:
    words = set(s.lw[i:j])
    return bool(words & SCENE_NOUNS) and not (words & HAND_NOUNS) and s.head(i, j) in SCENE_NOUNS


def _env_spans(s: _Sentence) -> list[tuple[int, int]]:
    """Locative prepositional phrases about the scene (and their "of"/"with" continuations)."""
    spans: list[tuple[int, int]] = []
    n = len(s.w)
    i = 0
    while i < n:
        start = i
        k = i
        if (
            s.lw[i] in ("next", "in", "on")
            and i + 2 < n
            and s.lw[i + 1] in ("to", "front", "top")
            and (s.lw[i + 1] == "to" or s.lw[i + 2] == "of")
        ):
            k = i + (2 if s.lw[i + 1] == "to" else 3)
        elif s.lw[i] in ("outdoors", "indoors", "outside", "inside") and (
            i + 1 == n or s.t[i + 1] not in _NP_TAGS
        ):
            spans.append((i, i + 1))
            i += 1
            continue
        elif s.lw[i] in LOC_PREPS:
            k = i + 1
        else:
            i += 1
            continue
        j = s.np_end(k)
        if j > k and _is_env_np(s, k, j):
            while (
                j < n and s.lw[j] in ("with", "and", "of") and j + 1 < n
            ):  # "in a kitchen with white cabinets"
                j2 = s.np_end(j + 1)
                if j2 == j + 1 or set(s.lw[j + 1 : j2]) & (HAND_NOUNS | PERSON_NOUNS):
                    break
                j = j2
            spans.append((start, j))
            i = j
        else:
            i += 1
    return spans


def _is_env_sentence(s: _Sentence) -> bool:
    words = set(s.lw)
    if words & (HAND_NOUNS | PERSON_NOUNS):
        return False
    return bool(words & SCENE_NOUNS) or not any(t in ("VBG",) for t in s.t)


def _hand_phrase(s: _Sentence, hand_k: int, start: int, in_env: list[bool]) -> str | None:
    """The phrase around a hand word, e.g. "in his right hand" or "with a brush held in her right hand"."""
    a = hand_k
    while a - 1 >= start and s.t[a - 1] in ("DT", "PRP$", "JJ", "CD", "POS", "NN") and not in_env[a - 1]:
        a -= 1
    if a - 1 >= start and s.lw[a - 1] in ("with", "in", "using", "between", "by", "into", "on"):
        a -= 1
        if a - 1 >= start and s.t[a - 1] == "VBN":  # "a brush held in her right hand"
            b = a - 1
            k = b
            while k - 1 >= start and s.t[k - 1] in _NP_TAGS:
                k -= 1
            if k < b and k - 1 >= start and s.lw[k - 1] == "with":
                a = k - 1
    return (
        s.span(a, hand_k + 1)
        if a >= start and s.lw[a] in ("with", "in", "using", "between", "by", "into", "on")
        else None
    )


def rule_semantics(caption: str, tagger: PosTagger | None = None) -> Semantics:
    """Semantics from a plain caption with rules only (deterministic, offline)."""
    tagger = tagger or BuiltinTagger()
    text = fix_text(caption)
    for pat in _LEAD_INS:
        text = re.sub(pat, "", text, count=1, flags=re.I)
    sentences = [_Sentence(x.strip(), tagger) for x in re.split(r"(?<=[.!?;])\s+", text) if x.strip()]
    sem = Semantics()
    main = None
    for s in sentences:
        if not _is_env_sentence(s) and main is None:
            main = s
        else:
            sem.environment.append(s.text.strip(" ."))
    if main is None:
        return sem
    s = main
    env = _env_spans(s)
    in_env = [any(a <= k < b for a, b in env) for k in range(len(s.w))]
    sem.environment[:0] = [s.span(a, b) for a, b in env]

    verbs = [
        k
        for k in range(len(s.w))
        if not in_env[k]
        and (
            s.t[k] == "VBG"
            or (s.t[k] == "VBZ" and s.lw[k] not in _NOT_ACTION_VBZ)
            or s.lw[k] in POSTURE_VERBS
        )
    ]
    posture = next((k for k in verbs if s.lw[k] in POSTURE_VERBS), None)
    action = next((k for k in verbs if s.lw[k] not in POSTURE_VERBS), None)
    first_verb = min([k for k in (posture, action) if k is not None], default=len(s.w))
    if posture is not None:
        end = posture + 1
        if end < len(s.w) and s.lw[end] in ("down", "up", "upright", "cross-legged", "forward", "back"):
            end += 1
        sem.posture = s.span(posture, end)
    if action is None and posture is not None:
        action, sem.posture = posture, None

    # subject: what precedes the first verb, minus scene phrases and auxiliaries
    if first_verb == len(s.w):  # no verb: the subject is the first clause
        first_verb = next((k for k, w in enumerate(s.w) if w in (",", ";", ".", ":")), len(s.w))
    subj_idx = [k for k in range(first_verb) if not in_env[k] and s.w[k] not in (",", ";")]
    while subj_idx and (s.lw[subj_idx[-1]] in _AUX or s.t[subj_idx[-1]] in ("RB", "CC", "WP", "WDT")):
        subj_idx.pop()
    if subj_idx and set(s.lw[k] for k in subj_idx) & (PERSON_NOUNS | HAND_NOUNS):
        sem.subject = s.span(subj_idx[0], subj_idx[-1] + 1)
        if subj_idx[-1] - subj_idx[0] + 1 != len(subj_idx):  # an env phrase sat inside: rebuild from words
            runs, run = [], [subj_idx[0]]
            for k in subj_idx[1:]:
                if k == run[-1] + 1:
                    run.append(k)
                else:
                    runs.append(run)
                    run = [k]
            sem.subject = " ".join(s.span(r[0], r[-1] + 1) for r in [*runs, run])
        sem.subject = sem.subject[:1].lower() + sem.subject[1:]

    # hand phrase anywhere in the main sentence (outside scene phrases)
    hand_ks = [k for k in range(len(s.w)) if s.lw[k] in HAND_NOUNS and not in_env[k]]
    hand_k = next((k for k in hand_ks if s.lw[k] in ("hand", "hands")), hand_ks[0] if hand_ks else None)
    if hand_k is not None:
        a = hand_k
        while (
            a > 0
            and s.t[a - 1] in ("DT", "PRP$", "JJ", "CD", "POS", "NN")
            and not in_env[a - 1]
            and a - 1 > first_verb
        ):
            a -= 1
        if (
            a > 0
            and s.lw[a - 1] in ("with", "in", "using", "between", "by", "into", "on")
            and a - 1 > first_verb
        ):
            a -= 1
        phrase = s.span(a, hand_k + 1) if a > first_verb else None
        around = " ".join(s.lw[max(0, hand_k - 4) : hand_k + 1])
        sem.hands = normalise_hands(around if s.lw[hand_k] in ("hand", "hands") else None)
        if sem.hands == "unspecified" and s.lw[hand_k] == "hands":
            sem.hands = "both"
        if sem.hands == "unspecified" and s.lw[hand_k] == "hand":
            sem.hands = "one"
        sem.hand_phrase = phrase

    if action is not None:
        sem.action = s.lw[action]
        j = action + 1
        n = len(s.w)
        if j < n and s.lw[j] in ("up", "down", "out", "off", "away", "together", "open"):
            j += 1
        obj = None
        if j < n and s.t[j] in ("IN", "TO") and not in_env[j] and s.lw[j] not in ("with",):
            k = s.np_end(j + 1)
            if k > j + 1 and not set(s.lw[j + 1 : k]) & HAND_NOUNS:
                obj, j = s.span(j + 1, k), k
        elif j < n and s.t[j] in _NP_TAGS and not in_env[j]:
            k = s.np_end(j)
            if k > j and not set(s.lw[j:k]) & HAND_NOUNS:
                obj = s.span(j, k)
                j = k
            elif k > j:  # "rubbing her hands together": the hands are the object
                j = k
                if j < n and s.lw[j] in ("together", "apart", "up", "out"):
                    j += 1
        # a directional or tool phrase after the object: "pouring milk into a cup", "cutting roses with shears"
        if obj is not None and j < n and s.lw[j] in _DIRECTIONAL and not in_env[j]:
            k = s.np_end(j + 1)
            if k > j + 1 and not set(s.lw[j + 1 : k]) & HAND_NOUNS and not any(in_env[j:k]):
                j = k
        sem.object = obj
        sem.action_phrase = s.span(action, j)
        action_end = j
        if sem.hand_phrase and hand_k is not None and hand_k < action_end:
            sem.hand_phrase = None  # already part of the action phrase
        elif hand_k is not None and hand_k >= action_end:
            sem.hand_phrase = _hand_phrase(s, hand_k, action_end, in_env)
    return sem


def rule_prompt(caption: str, tagger: PosTagger | None = None) -> tuple[Semantics, str]:
    """Offline SesaHand steps 2-3: semantics and the human-centric prompt for a caption."""
    sem = rule_semantics(caption, tagger)
    return sem, compose_prompt(sem)
