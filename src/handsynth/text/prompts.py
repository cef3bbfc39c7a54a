"""Seeded hand-centric prompt generator (subject, hand(s), action, object, scene, photographic style).

Why: records made from poses alone (no photo to caption) still need a prompt, and TAS needs
hand-related words in it. The phrasing mimics VLM captions of hand activity, so prompts seen at
generation time look like the captions seen in training. Given a record, the prompt agrees with its
labels: which hand(s) and, when the record names one, the object held.
"""

from __future__ import annotations

import random
import re
from typing import Any

# (phrase, possessive pronoun)
SUBJECTS = [
    ("a man", "his"),
    ("a woman", "her"),
    ("a young woman", "her"),
    ("a young man", "his"),
    ("an elderly man", "his"),
    ("an elderly woman", "her"),
    ("a teenage boy", "his"),
    ("a teenage girl", "her"),
    ("a little girl", "her"),
    ("a little boy", "his"),
    ("a chef", "his"),
    ("a female chef", "her"),
    ("a mechanic", "his"),
    ("a doctor", "her"),
    ("a nurse", "her"),
    ("a student", "his"),
    ("a musician", "his"),
    ("a person", "their"),
    ("a middle-aged woman", "her"),
    ("a bearded man", "his"),
    ("a craftsman", "his"),
    ("a barista", "her"),
    ("an artist", "her"),
    ("a carpenter", "his"),
    ("a gardener", "her"),
    ("an office worker", "his"),
    ("a scientist", "her"),
    ("a child", "their"),
    ("a smiling woman", "her"),
    ("a man in a blue shirt", "his"),
    ("a woman in a red sweater", "her"),
    ("a man wearing glasses", "his"),
    ("a woman with long dark hair", "her"),
    ("someone", "their"),
]
OBJECTS = [
    "a coffee mug",
    "a smartphone",
    "a pen",
    "a pencil",
    "an apple",
    "a banana",
    "a water bottle",
    "a paintbrush",
    "a TV remote",
    "a tennis ball",
    "a screwdriver",
    "a wrench",
    "a kitchen knife",
    "a wooden spoon",
    "a toothbrush",
    "a glass of orange juice",
    "a cup of tea",
    "a credit card",
    "a set of keys",
    "a spray bottle",
    "a microphone",
    "a hammer",
    "a flashlight",
    "a computer mouse",
    "a soda can",
    "an ice cream cone",
    "a slice of pizza",
    "a sandwich",
    "a camera",
    "a paperback book",
    "a notebook",
    "a playing card",
    "a chess piece",
    "a baseball",
    "an orange",
    "a lemon",
    "a pair of scissors",
    "a hairbrush",
    "a fork",
    "a pair of chopsticks",
    "a mustard bottle",
    "a power drill",
    "a tape measure",
    "a small candle",
    "a red rose",
    "a seashell",
    "a game controller",
    "a marker",
    "a calculator",
    "a tablet",
    "a wine glass",
    "a cracker box",
    "a tomato soup can",
    "a plastic cup",
    "a sponge",
    "a light bulb",
    "a padlock",
    "a paper cup",
    "a stapler",
    "a teaspoon",
]
GRASP_VERBS = [
    "holding",
    "gripping",
    "grasping",
    "picking up",
    "lifting",
    "clutching",
    "raising",
    "showing",
    "examining",
    "carrying",
    "reaching for",
    "putting down",
    "squeezing",
    "turning",
    "inspecting",
    "offering",
    "passing",
]
_MOTION_VERBS = {"reaching for", "passing", "offering", "putting down", "picking up", "lifting", "raising"}
ONE_HAND = [
    "with {pos} {side} hand",
    "in {pos} {side} hand",
    "in one hand",
    "between {pos} thumb and index finger",
    "with {pos} fingers",
    "with {pos} {side} hand, fingers curled around it",
    "",
]
TWO_HAND_GRASP = ["with both hands", "in both hands", "with two hands", "in {pos} cupped hands"]
TWO_HAND_ACTIONS = [
    "typing on a laptop keyboard with both hands",
    "kneading dough with both hands",
    "tying {pos} shoelaces",
    "knitting a scarf",
    "playing the piano",
    "playing an acoustic guitar",
    "clapping {pos} hands",
    "rubbing {pos} hands together",
    "washing {pos} hands under a faucet",
    "shaping clay on a pottery wheel",
    "folding a paper airplane",
    "opening a glass jar",
    "peeling an orange",
    "shuffling a deck of cards",
    "holding a basketball in both hands",
    "making a heart shape with {pos} hands",
    "texting on a phone with both thumbs",
    "assembling plastic building bricks",
    "solving a Rubik's cube",
    "wringing out a towel",
    "chopping vegetables on a cutting board",
    "braiding {pos} hair",
    "rolling out pizza dough",
    "tearing a sheet of paper",
    "unwrapping a gift box",
    "zipping up a jacket",
    "interlacing {pos} fingers",
    "pressing {pos} palms together",
    "stretching {pos} hands forward",
    "cracking an egg into a bowl",
    "buttoning {pos} shirt",
    "sewing a button onto a shirt",
]
GESTURES = [
    "giving a thumbs-up with {pos} {side} hand",
    "waving {pos} {side} hand",
    "pointing {pos} index finger at the camera",
    "making a peace sign with {pos} {side} hand",
    "making a fist with {pos} {side} hand",
    "counting on {pos} fingers",
    "making an OK sign with {pos} {side} hand",
    "raising {pos} open {side} palm",
    "snapping {pos} fingers",
    "crossing {pos} fingers",
    "resting {pos} chin on {pos} {side} hand",
    "covering {pos} mouth with {pos} hand",
    "scratching {pos} head with {pos} {side} hand",
    "pointing to the left with {pos} {side} hand",
    "holding up three fingers",
    "shading {pos} eyes with {pos} {side} hand",
]
SCENES = [
    "in a bright kitchen",
    "at a wooden desk",
    "in a cozy living room",
    "on a busy city street",
    "in a park",
    "in a workshop",
    "at a cafe table",
    "in an office",
    "in a classroom",
    "on a beach at sunset",
    "in a garden",
    "in a laboratory",
    "in a music studio",
    "on a train",
    "at a dining table",
    "in a library",
    "in a hospital room",
    "in a garage",
    "against a plain white background",
    "against a dark background",
    "outdoors",
    "by a window",
    "in a supermarket",
    "at a workbench",
]
PREFIXES = [
    "",
    "",
    "",
    "a photo of ",
    "a close-up photo of ",
    "a realistic photo of ",
    "a high-resolution photo of ",
    "an overhead shot of ",
    "a candid photo of ",
    "a close-up of ",
]
SUFFIXES = [
    "",
    "",
    "",
    ", natural lighting",
    ", soft studio lighting",
    ", shallow depth of field",
    ", sharp focus, detailed hands",
    ", 35mm photo",
    ", DSLR, 4k",
    ", warm light",
    ", high detail",
]


def object_phrase(name: str) -> str:
    """A record's object name as an English noun phrase: ``006_mustard_bottle`` -> ``a mustard bottle``."""
    words = re.sub(r"^[\d_\-\s]+", "", str(name)).replace("_", " ").replace("-", " ").split()
    noun = " ".join(words) or "object"
    if noun.split()[0] in ("a", "an", "the"):
        return noun
    return f"{'an' if noun[0].lower() in 'aeiou' else 'a'} {noun}"


class PromptGenerator:
    """Draws hand-centric prompts from a seeded RNG; the same seed gives the same prompts."""

    def __init__(self, seed: int | str = 0) -> None:
        self.rng = random.Random(seed)

    def sample(
        self, side: str | None = None, two_hands: bool | None = None, object_name: str | None = None
    ) -> str:
        """One prompt. ``side`` ("left"/"right") and ``two_hands`` constrain the hand phrase,
        ``object_name`` the object (a grasp is then always described)."""
        r = self.rng
        subject, pos = r.choice(SUBJECTS)
        if two_hands is None:
            two_hands = side is None and r.random() < 0.35
        side = side or r.choice(("left", "right"))
        obj = object_phrase(object_name) if object_name else None
        kind = "grasp" if obj else r.choices(("grasp", "two", "gesture"), (0.55, 0.25, 0.2))[0]
        if kind == "grasp":
            verb = r.choice(GRASP_VERBS)
            hands = r.choice(TWO_HAND_GRASP) if two_hands else r.choice(ONE_HAND)
            if verb in _MOTION_VERBS and not hands.startswith("with"):
                hands = "with both hands" if two_hands else "with {pos} {side} hand"
            action = f"{verb} {obj or r.choice(OBJECTS)}" + (f" {hands}" if hands else "")
        elif two_hands:  # a "two" draw for one hand is a gesture: a one-hand record never gets "clapping"
            action = r.choice(TWO_HAND_ACTIONS)
        else:
            action = r.choice(GESTURES)
        action = action.format(pos=pos, side=side)
        scene = r.choice(SCENES) if r.random() < 0.6 else ""
        if r.random() < 0.5:  # VLM caption style: full sentence
            text = f"{subject} is {action}" + (f" {scene}" if scene else "") + "."
            return text[0].upper() + text[1:]
        text = (
            r.choice(PREFIXES) + subject + f" {action}" + (f" {scene}" if scene else "") + r.choice(SUFFIXES)
        )
        return text

    def __call__(self, n: int) -> list[str]:
        return [self.sample() for _ in range(n)]


def prompt_for_sample(sample: Any, seed: int = 0) -> str:
    """A prompt that agrees with a record's hands and object; deterministic in (seed, sample id)."""
    sides = sorted(h.side for h in sample.hands)
    obj = (
        (sample.extra.get("object") or {}).get("name")
        if isinstance(sample.extra.get("object"), dict)
        else None
    )
    gen = PromptGenerator(f"{seed}:{sample.id}")
    return gen.sample(side=sides[0] if len(sides) == 1 else None, two_hands=len(sides) == 2, object_name=obj)
