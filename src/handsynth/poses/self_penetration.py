"""Exact self-penetration of a posed hand mesh (``poses validate --exact``): do the triangles of two
different digits cross? The capsule test (:func:`priors.digits_collide`) sees bones, not skin, and lets
capsules overlap by 30 % of their radii; this one tests the mesh itself with python-fcl's BVH
triangle–triangle test (an optional extra: ``pip install 'handsynth[fcl]'``).

Each digit segment (proximal, middle, distal; the palm is no digit) is the set of faces whose three
vertices are skinned mostly to that digit (the segment of the face's most distal vertex), found from the
model's skinning weights, so OpenHand and MANO both work. Pairs are those of the capsule test: segments
of different digits, except two proximal segments of fingers (they meet at the web by design). Skin
gives a little under pressure, so every vertex is first moved ``tolerance`` metres inwards along its
normal: two digits may press into each other by up to twice that before they count as penetrating.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import torch

from handsynth.errors import UserError
from handsynth.hand.openhand import CHAINS
from handsynth.poses.grasp_energy import DIGITS

FCL_PIN = "python-fcl==0.7.0.11"


def require_fcl() -> None:
    """Raise the one-sentence :class:`UserError` that says how to install python-fcl when it is missing."""
    try:
        import fcl  # noqa: F401
    except ImportError:
        raise UserError(
            f"--exact needs python-fcl, which is not installed: pip install 'handsynth[fcl]' (or {FCL_PIN})"
        ) from None


@dataclass(frozen=True)
class DigitSegments:
    """Faces of each digit segment and the segment pairs the test checks."""

    names: list[tuple[str, int]]  # (digit, level 0 proximal .. 2 distal)
    faces: list[np.ndarray]  # (F_k, 3) per segment
    pairs: list[tuple[int, int]]


@cache
def digit_segments(model: torch.nn.Module) -> DigitSegments:
    """:class:`DigitSegments` of a hand model, from its skinning weights (no vertex ids)."""
    owner = model.lbs_weights.argmax(dim=1).numpy()
    faces = np.asarray(model.faces, dtype=np.int64)
    digit_of = np.full(int(owner.max()) + 1, -1)
    level_of = np.full(int(owner.max()) + 1, -1)
    for d, name in enumerate(DIGITS):
        for level, joint in enumerate(CHAINS[name][0]):
            digit_of[joint], level_of[joint] = d, level
    fd, fl = digit_of[owner[faces]], level_of[owner[faces]]
    one_digit = (fd[:, 0] >= 0) & (fd == fd[:, :1]).all(1)
    names, parts = [], []
    for d, name in enumerate(DIGITS):
        for level in range(3):
            names.append((name, level))
            parts.append(faces[one_digit & (fd[:, 0] == d) & (fl.max(1) == level)])
    pairs = [
        (a, b)
        for a in range(len(names))
        for b in range(a + 1, len(names))
        if names[a][0] != names[b][0]
        and len(parts[a])
        and len(parts[b])
        and not (names[a][1] == 0 and names[b][1] == 0 and "thumb" not in (names[a][0], names[b][0]))
    ]
    return DigitSegments(names, parts, pairs)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (outward for an outward-wound mesh)."""
    tri = vertices[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    vn = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(vn, faces[:, k], fn)
    return vn / np.linalg.norm(vn, axis=1, keepdims=True).clip(1e-12)


def penetrating_segments(
    model: torch.nn.Module, vertices: np.ndarray, tolerance: float = 0.0015
) -> list[tuple[str, str]]:
    """Names (``"index_distal"``, ...) of the segment pairs whose inset triangles cross; empty when the
    hand does not penetrate itself. ``vertices`` (V, 3) of ``model``'s posed mesh, metres."""
    import fcl

    seg = digit_segments(model)
    v = np.asarray(vertices, dtype=np.float64)
    v = v - tolerance * vertex_normals(v, np.asarray(model.faces, dtype=np.int64))
    objects = []
    for faces in seg.faces:
        bvh = fcl.BVHModel()
        bvh.beginModel(len(v), len(faces))
        bvh.addSubModel(v, faces)
        bvh.endModel()
        objects.append(fcl.CollisionObject(bvh, fcl.Transform()))
    label = ("proximal", "middle", "distal")
    hits = []
    for a, b in seg.pairs:
        if fcl.collide(objects[a], objects[b], fcl.CollisionRequest(), fcl.CollisionResult()):
            (da, la), (db, lb) = seg.names[a], seg.names[b]
            hits.append((f"{da}_{label[la]}", f"{db}_{label[lb]}"))
    return hits
