"""Household objects held in the hand: cups, bottles, phones, ... (shapes from ``handsynth.objects.shapes``).

Each object is built in its own frame with its *grip axis* along +z (the axis that lies across the
palm, from the index knuckle to the little-finger knuckle, when held) and placed against the palm by
:func:`place_in_hand`. Sizes are real-world metres with some random variation; colours come from a
per-object list of names, so a caption can say "a red cup".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from handsynth.objects.meshes import shade_colors
from handsynth.objects.shapes import SHAPES
from handsynth.world.backgrounds import COLORS
from handsynth.world.skin import INDEX_MCP, MIDDLE_MCP, PINKY_MCP, WRIST, palm_normal


@dataclass
class WorldObject:
    """A coloured mesh in the object frame; ``thickness`` is its half-extent along the palm normal."""

    name: str
    color_name: str
    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray  # (V, 3) sRGB albedo in [0, 1]
    thickness: float
    grip_radius: float  # how far the fingers must open to hold it (the grasp's tightness)


# name -> (builder, colour names it comes in)
OBJECTS: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "cup": (SHAPES["cup"], ("red", "white", "blue", "yellow", "green", "black")),
    "bottle": (SHAPES["bottle"], ("green", "blue", "white", "brown")),
    "can": (SHAPES["can"], ("red", "silver", "blue", "green")),
    "ball": (SHAPES["ball"], ("red", "blue", "yellow", "orange", "green", "white")),
    "apple": (SHAPES["apple"], ("red", "green", "yellow")),
    "box": (SHAPES["box"], ("brown", "white", "red", "blue")),
    "phone": (SHAPES["phone"], ("black", "white", "blue", "pink")),
    "book": (SHAPES["book"], ("red", "blue", "green", "black", "yellow")),
    "pen": (SHAPES["pen"], ("black", "blue", "red")),
    "remote": (SHAPES["remote"], ("black", "grey")),
}

FLAT = ("phone", "book", "remote")
_EXTRA_COLORS = {"silver": (190, 192, 198)}


def color_rgb(name: str) -> np.ndarray:
    """sRGB [0, 1] of a colour name used by objects."""
    return np.asarray(COLORS.get(name) or _EXTRA_COLORS[name], np.float64) / 255.0


def make_object(name: str, rng: np.random.Generator, color_name: str | None = None) -> WorldObject:
    """Build object ``name`` with a random size and (unless given) a random colour from its list."""
    builder, colors = OBJECTS[name]
    (v, f, shade), thickness = builder(rng)
    color_name = color_name or colors[rng.integers(len(colors))]
    base = color_rgb(color_name)
    cols = np.clip(shade_colors(base, shade) * (1 + rng.normal(0, 0.02, (len(v), 1))), 0, 1)
    grip = 0.03 if name in FLAT else thickness  # flat things are held by their edges
    return WorldObject(name, color_name, v, f, cols, float(thickness), float(grip))


def sample_object(rng: np.random.Generator) -> WorldObject:
    """A random object of a random kind."""
    names = list(OBJECTS)
    return make_object(names[rng.integers(len(names))], rng)


def hand_frame(joints: np.ndarray, side: str) -> np.ndarray:
    """(3, 3) rotation whose columns are: across the palm, along the fingers, out of the palm."""
    j = np.asarray(joints, np.float64)
    across = j[PINKY_MCP] - j[INDEX_MCP]
    across /= np.linalg.norm(across)
    out = palm_normal(j, side)
    out = out - across * (out @ across)
    out /= np.linalg.norm(out)
    along = np.cross(out, across)
    if along @ (j[MIDDLE_MCP] - j[WRIST]) < 0:
        along = -along
    return np.stack([across, along, out], axis=1)


def place_in_hand(obj: WorldObject, joints: np.ndarray, side: str, rng: np.random.Generator) -> np.ndarray:
    """Object vertices in the camera frame: grip axis across the palm, resting on the palm.

    A random slide towards the fingers and a small random tilt keep grips varied (:func:`hold_pose`).
    """
    slide = rng.uniform(0.0, 0.025)
    tilt = _small_rotation(rng, 0.25)
    R, center = hold_pose(obj.thickness, joints, side, slide, tilt)
    return obj.vertices @ R.T + center


def hold_pose(
    thickness: float, joints: np.ndarray, side: str, slide: float, tilt: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) of an object held in the hand: object point p -> R p + t (camera frame).

    The object's centre sits just off the palm centre (mean of wrist and the four finger knuckles)
    along the palm normal, ``slide`` metres towards the fingers; ``tilt`` turns it in the palm.
    """
    j = np.asarray(joints, np.float64)
    frame = hand_frame(j, side)  # columns: across, along, out
    palm = j[[WRIST, INDEX_MCP, MIDDLE_MCP, 13, PINKY_MCP]].mean(axis=0)
    center = palm + frame[:, 2] * (thickness + 0.012) + frame[:, 1] * slide
    # object frame: z -> across the palm, y -> out of the palm, x -> along the fingers
    basis = np.stack([frame[:, 1], frame[:, 2], frame[:, 0]], axis=1)
    return basis @ tilt, center


def _small_rotation(rng: np.random.Generator, max_angle: float) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = rng.uniform(-max_angle, max_angle)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)
