"""A record's object mesh reference (``objects[].mesh``) -> a trimesh mesh in the object's own frame.

A reference is a path relative to the dataset folder, an absolute path, or ``world:<kind>`` (a
procedural shape, :mod:`handsynth.objects.shapes`), optionally ``world:<kind>#rrggbb`` with the shape's
sRGB base colour (the micro world's photos colour their objects; the `texture` map then agrees). Errors name the record, the object and the path,
so a broken import is found before anything is rendered.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from handsynth.data.records import WORLD_MESH_PREFIX
from handsynth.errors import UserError
from handsynth.objects.shapes import SHAPES, canonical_shape

if TYPE_CHECKING:
    import trimesh

# Albedo of the procedural shapes (linear RGB, the renderer's default object colour), times each part's shade.
SHAPE_ALBEDO = (0.55, 0.62, 0.72)


def shade_colors(base: np.ndarray, shade: np.ndarray) -> np.ndarray:
    """(V, 3) colours of a procedural shape: ``base`` times each part's shade; shades above 1.5 mark parts
    with a fixed light colour (book pages > 2, a can's lid)."""
    cols = np.clip(np.asarray(base, np.float64)[None] * shade[:, None], 0, 1)
    cols[shade > 2.0] = (0.92, 0.9, 0.85)
    cols[(shade > 1.5) & (shade <= 2.0)] = (0.75, 0.76, 0.78)
    return cols


def split_world_mesh(ref: str) -> tuple[str, tuple[float, float, float] | None]:
    """``world:<kind>[#rrggbb]`` -> (kind, sRGB base colour in [0, 1] or None); a malformed colour gives
    None (``resolve_mesh`` names it)."""
    kind, _, hex_color = ref[len(WORLD_MESH_PREFIX) :].partition("#")
    if len(hex_color) != 6 or any(c not in "0123456789abcdefABCDEF" for c in hex_color):
        return kind, None
    rgb = int(hex_color, 16)
    return kind, ((rgb >> 16) / 255.0, ((rgb >> 8) & 255) / 255.0, (rgb & 255) / 255.0)


def world_mesh_ref(kind: str, rgb: np.ndarray | None = None) -> str:
    """The ``mesh`` reference of procedural shape ``kind``, with its sRGB base colour ([0, 1]) if given."""
    if rgb is None:
        return f"{WORLD_MESH_PREFIX}{kind}"
    r, g, b = (int(round(float(np.clip(c, 0, 1)) * 255)) for c in rgb)
    return f"{WORLD_MESH_PREFIX}{kind}#{r:02x}{g:02x}{b:02x}"


def resolve_mesh(mesh: str | None, root: str | os.PathLike | None, what: str) -> str:
    """The cache key of a mesh reference: ``world:<kind>`` as is, a file as its absolute path.

    ``what`` names the record and object for the error (``record 000001, object 'mug'``).
    """
    if not mesh:
        raise UserError(
            f"{what} has no 'mesh': give its mesh file or 'world:<kind>' (for DexYCB/HO3D, import with "
            "--objects), or drop the object (`handsynth render --no-objects` draws hands only)"
        )
    if mesh.startswith(WORLD_MESH_PREFIX):
        kind, color = split_world_mesh(mesh)
        if kind not in SHAPES:
            raise UserError(
                f"{what} names mesh {mesh!r}, an unknown world shape; use one of {sorted(SHAPES)}"
            )
        if color is None and "#" in mesh:
            raise UserError(
                f"{what} names mesh {mesh!r}: the colour after '#' must be 6 hex digits (sRGB), e.g. "
                "'world:cup#c83232'"
            )
        return mesh
    path = Path(mesh)
    if not path.is_absolute():
        path = Path(root or ".") / path
    if not path.is_file():
        raise UserError(
            f"{what} names mesh {mesh!r}, but {path} is not a file; fix the path (relative paths are "
            "read from the dataset folder) or re-import with the object models"
        )
    return str(path.resolve())


def load_mesh(key: str, what: str) -> trimesh.Trimesh:
    """The mesh a resolved reference names (object frame, metres), with its texture or colours."""
    import trimesh

    if key.startswith(WORLD_MESH_PREFIX):
        kind, color = split_world_mesh(key)
        v, f, shade = canonical_shape(kind)
        base = np.asarray(SHAPE_ALBEDO) if color is None else np.asarray(color)
        colors = (shade_colors(base, shade) * 255).round().astype(np.uint8)
        return trimesh.Trimesh(v.copy(), f.copy(), vertex_colors=colors, process=False)
    try:
        mesh = trimesh.load(key, force="mesh", process=False)
    except Exception as e:  # trimesh raises many kinds for unreadable files
        raise UserError(f"{what}: mesh file {key} could not be read as a mesh ({e})") from e
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise UserError(f"{what}: mesh file {key} holds no triangles")
    return mesh
