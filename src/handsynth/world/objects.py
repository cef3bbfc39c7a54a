"""Household objects held in the hand: trimesh primitives assembled into cups, bottles, phones, ...

Each object is built in its own frame with its *grip axis* along +z (the axis that lies across the
palm, from the index knuckle to the little-finger knuckle, when held) and placed against the palm by
:func:`place_in_hand`. Sizes are real-world metres with some random variation; colours come from a
per-object list of names, so a caption can say "a red cup".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

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


@cache
def _unit(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Cached unit primitives (trimesh creation is the slow part)."""
    import trimesh

    if kind == "cylinder":
        m = trimesh.creation.cylinder(radius=1.0, height=1.0, sections=20)
    elif kind == "sphere":
        m = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
    elif kind == "box":
        m = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    elif kind == "torus":
        m = trimesh.creation.torus(major_radius=1.0, minor_radius=0.22, major_sections=20, minor_sections=8)
    else:
        raise ValueError(kind)
    return np.asarray(m.vertices, np.float64), np.asarray(m.faces, np.int64)


def _part(
    kind: str, scale, offset=(0.0, 0.0, 0.0), rot: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    v, f = _unit(kind)
    v = v * np.asarray(scale, np.float64)
    if rot is not None:
        v = v @ rot.T
    return v + np.asarray(offset, np.float64), f


def _merge(
    parts: list[tuple[np.ndarray, np.ndarray]], shades: list[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    vs, fs, ks, n = [], [], [], 0
    for (v, f), k in zip(parts, shades):
        vs.append(v)
        fs.append(f + n)
        ks.append(np.full(len(v), k))
        n += len(v)
    return np.concatenate(vs), np.concatenate(fs), np.concatenate(ks)


_RX90 = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # maps the torus' z axis to -y


def _cup(rng):
    r, h = rng.uniform(0.032, 0.042), rng.uniform(0.08, 0.105)
    body = _part("cylinder", (r, r, h))
    # Handle: a torus standing in the xz plane beside the cup, its inner half hidden inside the wall.
    s = 0.3 * h
    handle = _part("torus", (s, s, s), (r, 0.0, 0.0), _RX90)
    parts = [body, handle]
    return _merge(parts, [1.0, 0.95]), r


def _bottle(rng):
    r, h = rng.uniform(0.028, 0.036), rng.uniform(0.14, 0.2)
    body = _part("cylinder", (r, r, h))
    neck = _part("cylinder", (0.4 * r, 0.4 * r, 0.3 * h), (0, 0, 0.6 * h))
    cap = _part("cylinder", (0.45 * r, 0.45 * r, 0.06 * h), (0, 0, 0.76 * h))
    return _merge([body, neck, cap], [1.0, 0.9, 0.4]), r


def _can(rng):
    r, h = rng.uniform(0.03, 0.034), rng.uniform(0.1, 0.125)
    return _merge(
        [_part("cylinder", (r, r, h)), _part("cylinder", (0.95 * r, 0.95 * r, 0.01), (0, 0, h / 2))],
        [1.0, 1.6],
    ), r


def _ball(rng):
    r = rng.uniform(0.03, 0.05)
    return _merge([_part("sphere", (r, r, r))], [1.0]), r


def _apple(rng):
    r = rng.uniform(0.035, 0.042)
    body = _part("sphere", (r, r, 0.9 * r))
    stem = _part("cylinder", (0.06 * r, 0.06 * r, 0.4 * r), (0, 0, 0.95 * r))
    return _merge([body, stem], [1.0, 0.25]), r


def _box(rng):
    e = rng.uniform(0.05, 0.08, size=3)
    return _merge([_part("box", e)], [1.0]), e[1] / 2


def _phone(rng):
    w, h, t = rng.uniform(0.065, 0.075), rng.uniform(0.135, 0.155), 0.008
    # Long side across the palm (z); the screen faces away from the palm (+y side darker glass).
    body = _part("box", (w, t, h))
    screen = _part("box", (0.9 * w, 0.002, 0.9 * h), (0, t / 2, 0))
    return _merge([body, screen], [1.0, 0.15]), t / 2


def _book(rng):
    w, h, t = rng.uniform(0.13, 0.16), rng.uniform(0.19, 0.23), rng.uniform(0.015, 0.03)
    cover = _part("box", (w, t, h))
    pages = _part("box", (0.96 * w, 0.9 * t, 0.97 * h), (0.025 * w, 0, 0))
    return _merge([cover, pages], [1.0, 3.0]), t / 2


def _pen(rng):
    r, h = rng.uniform(0.005, 0.007), rng.uniform(0.13, 0.15)
    return _merge(
        [_part("cylinder", (r, r, h)), _part("cylinder", (0.7 * r, 0.7 * r, 0.02), (0, 0, h / 2))], [1.0, 0.5]
    ), r


def _remote(rng):
    w, h, t = rng.uniform(0.04, 0.05), rng.uniform(0.15, 0.19), 0.02
    return _merge([_part("box", (w, t, h))], [1.0]), t / 2


# name -> (builder, colour names it comes in)
OBJECTS: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "cup": (_cup, ("red", "white", "blue", "yellow", "green", "black")),
    "bottle": (_bottle, ("green", "blue", "white", "brown")),
    "can": (_can, ("red", "silver", "blue", "green")),
    "ball": (_ball, ("red", "blue", "yellow", "orange", "green", "white")),
    "apple": (_apple, ("red", "green", "yellow")),
    "box": (_box, ("brown", "white", "red", "blue")),
    "phone": (_phone, ("black", "white", "blue", "pink")),
    "book": (_book, ("red", "blue", "green", "black", "yellow")),
    "pen": (_pen, ("black", "blue", "red")),
    "remote": (_remote, ("black", "grey")),
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
    cols = np.clip(base[None] * shade[:, None], 0, 1)
    cols[shade > 2.0] = (0.92, 0.9, 0.85)  # book pages, can lid: fixed light colour
    cols[(shade > 1.5) & (shade <= 2.0)] = (0.75, 0.76, 0.78)
    cols = np.clip(cols * (1 + rng.normal(0, 0.02, (len(v), 1))), 0, 1)
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

    The object's centre sits just off the palm centre (mean of wrist and the four finger knuckles)
    along the palm normal, a little towards the fingers; a small random tilt keeps grips varied.
    """
    j = np.asarray(joints, np.float64)
    frame = hand_frame(j, side)  # columns: across, along, out
    palm = j[[WRIST, INDEX_MCP, MIDDLE_MCP, 13, PINKY_MCP]].mean(axis=0)
    center = palm + frame[:, 2] * (obj.thickness + 0.012) + frame[:, 1] * rng.uniform(0.0, 0.025)
    # object frame: z -> across the palm, y -> out of the palm, x -> along the fingers
    basis = np.stack([frame[:, 1], frame[:, 2], frame[:, 0]], axis=1)
    tilt = _small_rotation(rng, 0.25)
    return obj.vertices @ (basis @ tilt).T + center


def _small_rotation(rng: np.random.Generator, max_angle: float) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = rng.uniform(-max_angle, max_angle)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)
