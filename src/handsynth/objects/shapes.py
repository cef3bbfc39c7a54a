"""Procedural household object shapes: trimesh primitives assembled into cups, bottles, phones, ...

Each shape is built in its own frame with its *grip axis* along +z (the axis that lies across the palm
when held; the world's ``place_in_hand`` puts it there). Sizes are real-world metres drawn from
per-shape ranges. Below the renderer and the pose tools, so records can name these shapes as
``mesh: "world:<kind>"`` (:func:`canonical_shape`) and the photo world (``handsynth.world.objects``)
builds its random objects from the same builders.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np

# A builder: rng -> ((vertices, faces, shade per vertex), thickness). ``shade`` multiplies the colour;
# values above 1.5 mark parts with a fixed light colour (book pages, a can's lid).
Builder = Callable[[np.random.Generator], tuple[tuple[np.ndarray, np.ndarray, np.ndarray], float]]


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


SHAPES: dict[str, Builder] = {
    "cup": _cup,
    "bottle": _bottle,
    "can": _can,
    "ball": _ball,
    "apple": _apple,
    "box": _box,
    "phone": _phone,
    "book": _book,
    "pen": _pen,
    "remote": _remote,
}


class _MidRange:
    """Stands in for a random generator: every ``uniform(low, high)`` draw is the range's middle."""

    def uniform(self, low=0.0, high=1.0, size=None):
        mid = (np.asarray(low, np.float64) + np.asarray(high, np.float64)) / 2
        return mid if size is None else np.broadcast_to(mid, np.atleast_1d(size)).copy()


@cache
def canonical_shape(kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(vertices, faces, shade)`` of ``world:<kind>``: the shape at the middle of its size ranges, so a
    record names one fixed mesh (its ``scale`` resizes it). Unknown kinds raise ``KeyError``."""
    (v, f, shade), _ = SHAPES[kind](_MidRange())  # type: ignore[arg-type]
    for a in (v, f, shade):
        a.setflags(write=False)
    return v, f, shade
