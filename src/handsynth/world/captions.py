"""Captions for world images, worded like a VLM describing a photo of someone's hand.

A caption is built only from the scene's own attributes (side, gesture read off the joints, object
and its colour, background phrase, light, sleeve), so it is always true of the image, and it carries
hand-related words (``hand``, ``holding``, ``pointing``...) for AttentionHand's TAS to attend to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# OpenPose-21: each finger's joints from its base (thumb CMC / finger MCP) to the tip.
FINGERS = {
    "thumb": (1, 2, 3, 4),
    "index": (5, 6, 7, 8),
    "middle": (9, 10, 11, 12),
    "ring": (13, 14, 15, 16),
    "little": (17, 18, 19, 20),
}


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    c = a @ b / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12)
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def extended_fingers(
    joints: np.ndarray, straightness: float = 0.85, max_bend_deg: float = 45.0
) -> dict[str, bool]:
    """Which digits are held out straight, read off the 21 joints (OpenPose order).

    A digit is extended when its chain beyond the base joint is nearly straight (base-to-tip distance
    over summed bone lengths > ``straightness``) and it continues the bone before it (bent by less than
    ``max_bend_deg`` at the base: a finger folded at the knuckle is not "out"). For the four fingers the
    bone before is the palm (wrist -> knuckle); the thumb's chain is taken from its MCP joint.
    """
    j = np.asarray(joints, np.float64)
    out = {}
    for name, idx in FINGERS.items():
        chain = j[list(idx)] if name != "thumb" else j[list(idx[1:])]
        before = chain[0] - (j[0] if name != "thumb" else j[idx[0]])
        bones = np.linalg.norm(np.diff(chain, axis=0), axis=1).sum()
        straight = np.linalg.norm(chain[-1] - chain[0]) / max(bones, 1e-9) > straightness
        out[name] = bool(straight and _angle_deg(chain[-1] - chain[0], before) < max_bend_deg)
    return out


# Number words for "showing N fingers".
_NUMBERS = ("no", "one", "two", "three", "four", "five")


def gesture(joints: np.ndarray) -> tuple[str, str]:
    """A (present-participle phrase, short name) for the hand's pose, e.g. ('pointing', 'pointing')."""
    ext = extended_fingers(joints)
    fingers = {k for k, v in ext.items() if v and k != "thumb"}
    thumb = ext["thumb"]
    if fingers == {"index"}:
        return "pointing with the index finger", "pointing"
    if fingers == {"index", "middle"}:
        return "making a peace sign", "peace sign"
    if not fingers and thumb:
        return "giving a thumbs up", "thumbs up"
    if fingers == {"little"} and thumb:
        return "making a hang loose sign", "hang loose"
    if not fingers:
        return "making a fist", "fist"
    if len(fingers) == 4:
        return ("waving with the fingers spread", "open hand") if thumb else ("showing four fingers", "four")
    n = len(fingers) + int(thumb)
    noun = "finger" if n == 1 else "fingers"
    return f"showing {_NUMBERS[n]} {noun}", f"{_NUMBERS[n]} {noun}"


@dataclass
class CaptionFacts:
    """Everything a caption may mention; all of it true of the image."""

    side: str
    gesture: str  # present-participle phrase, e.g. "making a fist"
    background: str  # e.g. "in front of a brick wall"
    object_name: str | None = None
    object_color: str | None = None
    light: str = ""  # e.g. "in warm light"
    sleeve_color: str | None = None
    tone_word: str | None = None
    domain: str = "wild"


def caption(facts: CaptionFacts, rng: np.random.Generator) -> str:
    """One caption; the template is drawn at random so the wording varies like VLM output."""
    side, bg = facts.side, facts.background
    who = ("a person", "someone", "a man", "a woman", "a person")[rng.integers(5)]
    tone = f"{facts.tone_word}-skinned " if facts.tone_word and rng.random() < 0.25 else ""
    sleeve = f" wearing a {facts.sleeve_color} sleeve" if facts.sleeve_color and rng.random() < 0.35 else ""
    if facts.object_name:
        thing = (
            f"a {facts.object_color} {facts.object_name}" if facts.object_color else f"a {facts.object_name}"
        )
        verb = ("holding", "holding", "gripping", "grasping")[rng.integers(4)]
        options = [
            f"{who}{sleeve} {verb} {thing} in the {side} hand {bg}",
            f"a {tone}{side} hand {verb} {thing} {bg}",
            f"close-up of {who}'s {side} hand {verb} {thing} {bg}",
            f"{who} is {verb} {thing} with their {side} hand {bg}",
        ]
    else:
        g = facts.gesture
        options = [
            f"{who}{sleeve} {g} with the {side} hand {bg}",
            f"a {tone}{side} hand {g} {bg}",
            f"close-up of {who}'s {side} hand {g} {bg}",
            f"{who} is {g} with their {side} hand {bg}",
        ]
        if facts.domain == "lab":
            options.append(f"a {tone}{side} hand {g} against a black background in a studio")
    text = options[rng.integers(len(options))]
    if facts.light and rng.random() < 0.5:
        text = f"{text}, {facts.light}"
    return " ".join(text.split())


CAPTION_STYLES = ("short", "verbose")
VERBOSE_MAX_WORDS = 55


@dataclass
class SceneDetail:
    """Environment facts a verbose (VLM-like) caption may add; all of them true of the image."""

    background_kind: str  # "lab" | "procedural" | "natural"
    background_name: str
    light_color: tuple[float, float, float]  # linear RGB of the key light
    light_count: int
    brightness: float  # key light intensity + mean ambient
    sheen: float  # specular strength
    hand_fraction: float  # hand box side / image side
    blurred: bool = False  # the background is out of focus


def _where(phrase: str) -> str:
    """'in front of a brick wall' -> 'a brick wall' (the thing a phrase places the hand against)."""
    for prep in ("in front of ", "against ", "above ", "over ", "on ", "under ", "near ", "by "):
        if phrase.startswith(prep):
            return phrase[len(prep) :]
    return phrase


def _light_sentence(d: SceneDetail, rng: np.random.Generator) -> str:
    r, _, b = d.light_color
    tint = "warm, yellowish" if r > b * 1.15 else "cool, bluish" if b > r * 1.15 else "neutral white"
    level = "dim" if d.brightness < 0.7 else "bright" if d.brightness > 1.1 else "soft"
    sources = {1: "a single light source", 2: "two light sources", 3: "three light sources"}.get(
        d.light_count, "several light sources"
    )
    options = [
        f"The scene is lit by {sources} with {level} {tint} light.",
        f"The lighting is {level} and {tint}, coming from {sources}.",
        f"{level.capitalize()} {tint} light from {sources} falls on the hand.",
    ]
    text = options[rng.integers(len(options))]
    if d.sheen > 0.1:
        text += " The skin shows a slight sheen."
    return text


def verbose_caption(facts: CaptionFacts, detail: SceneDetail, rng: np.random.Generator) -> str:
    """A VLM-like multi-sentence caption: the hand sentence first, then environment sentences.

    Why: SesaHand's claim is that chain-of-thought prompts beat raw VLM captions, whose words are spent
    on scenery; the micro world needs such captions (lighting, background, surfaces, framing) to test it.
    """
    who, pron = (("A person", "their"), ("Someone", "their"), ("A man", "his"), ("A woman", "her"))[
        rng.integers(4)
    ]
    if facts.object_name:
        thing = (
            f"a {facts.object_color} {facts.object_name}" if facts.object_color else f"a {facts.object_name}"
        )
        action = f"holding {thing}"
    else:
        action = facts.gesture
    sentences = [f"{who} is {action} with {pron} {facts.side} hand {facts.background}."]
    thing = _where(facts.background)
    if detail.background_kind == "lab":
        sentences.append("The background is a plain black studio backdrop.")
    elif detail.background_kind == "natural":
        sentences.append(
            f"Behind the hand the background shows {thing}, filling the frame around the subject."
        )
    else:
        surface = (
            "surface"
            if any(w in thing for w in ("table", "floor", "wall"))
            else "fabric"
            if any(w in thing for w in ("curtain", "shirt", "fabric", "cloth"))
            else "texture"
        )
        sentences.append(
            (
                f"The background is {thing}, whose {surface} fills the frame behind the hand.",
                f"Behind the hand there is {thing}; its {surface} covers the whole background.",
            )[rng.integers(2)]
        )
    if detail.blurred and detail.background_kind != "lab":
        sentences.append("The background is slightly out of focus.")
    sentences.append(_light_sentence(detail, rng))
    if facts.sleeve_color:
        sentences.append(f"The forearm is covered by a {facts.sleeve_color} sleeve.")
    framing = "a tight close-up" if detail.hand_fraction >= 0.5 else "a medium shot"
    sentences.append(
        f"The photo is {framing} in which the hand takes up much of the picture."
        if detail.hand_fraction >= 0.5
        else f"The photo is {framing}; the hand occupies a small part of the picture."
    )
    # Within CLIP's 77 tokens (about 1.2 tokens a word here): the hand sentence always, then each
    # environment sentence that still fits, so no hand word is ever cut off by the text encoder.
    kept: list[str] = []
    for s in sentences:
        if not kept or sum(len(x.split()) for x in kept) + len(s.split()) <= VERBOSE_MAX_WORDS:
            kept.append(" ".join(s.split()))
    return " ".join(kept)
