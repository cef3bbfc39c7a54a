"""What the renderer draws: meshes in the camera frame with a label and colours.

A scene is a plain list of :class:`SceneMesh`; the renderer never owns geometry, so the hand model, an
object loader or a test can hand it whatever they posed.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from handsynth.errors import UserError

if TYPE_CHECKING:
    import trimesh

# Segmentation labels (the `seg` map): 0 is background.
LABELS = {"right": 1, "left": 2, "object": 3}

# Default albedos of the `texture` map (linear [0, 1] RGB): a medium-light skin tone and a neutral
# blue-grey for objects, so hands and objects stay distinguishable when no colours are given.
DEFAULT_SKIN = (0.87, 0.67, 0.55)
DEFAULT_OBJECT = (0.55, 0.62, 0.72)


@dataclass
class SceneMesh:
    """One triangle mesh in the camera frame (OpenCV: x right, y down, z forward; metres).

    ``label`` picks the seg value and whether it shows in the `mesh` map (hands only). The `texture`
    map's albedo is the ``texture`` image sampled at ``uv`` if given (OBJ/trimesh convention: uv (0, 0)
    is the image's bottom-left corner), else ``vertex_colors``, else ``color``, else the default skin /
    object colour. A texture image is uploaded once and cached by identity: pass the same array
    every frame and do not modify it in place.
    """

    vertices: np.ndarray
    faces: np.ndarray
    label: str
    vertex_colors: np.ndarray | None = None
    color: tuple[float, float, float] | np.ndarray | None = None
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise UserError(f"SceneMesh label {self.label!r} is unknown; use one of {tuple(LABELS)}")
        v = np.asarray(self.vertices, dtype=np.float32)
        f = np.asarray(self.faces)
        if v.ndim != 2 or v.shape[1] != 3 or not np.isfinite(v).all():
            raise UserError(f"SceneMesh ({self.label}) vertices must be a finite (V, 3) array, got {v.shape}")
        if f.ndim != 2 or f.shape[1] != 3 or (f.size and not np.issubdtype(f.dtype, np.integer)):
            raise UserError(f"SceneMesh ({self.label}) faces must be an integer (F, 3) array, got {f.shape}")
        if f.size and (f.min() < 0 or f.max() >= len(v)):
            raise UserError(
                f"SceneMesh ({self.label}) faces index vertices 0..{len(v) - 1} but hold {f.min()}..{f.max()}"
            )
        self.vertices = v
        self.faces = f.astype(np.uint32)
        if self.vertex_colors is not None:
            c = np.asarray(self.vertex_colors, dtype=np.float32)
            if c.shape != v.shape:
                raise UserError(
                    f"SceneMesh ({self.label}) vertex_colors must be (V, 3) = {v.shape}, got {c.shape}"
                )
            self.vertex_colors = np.clip(c, 0.0, 1.0)
        if self.color is not None:
            c = np.asarray(self.color, dtype=np.float32).reshape(-1)
            if c.shape != (3,):
                raise UserError(f"SceneMesh ({self.label}) color must be 3 numbers in [0, 1], got {c}")
            self.color = np.clip(c, 0.0, 1.0)
        if (self.uv is None) != (self.texture is None):
            raise UserError(f"SceneMesh ({self.label}) needs both uv and texture, or neither")
        if self.uv is not None:
            uv = np.asarray(self.uv, dtype=np.float32)
            if uv.shape != (len(v), 2) or not np.isfinite(uv).all():
                raise UserError(f"SceneMesh ({self.label}) uv must be a finite (V, 2) array, got {uv.shape}")
            tex = self.texture
            if (
                not isinstance(tex, np.ndarray)
                or tex.ndim != 3
                or tex.shape[2] not in (3, 4)
                or tex.dtype != np.uint8
            ):
                raise UserError(
                    f"SceneMesh ({self.label}) texture must be a uint8 numpy (h, w, 3|4) image, got {np.shape(tex)}"
                )
            self.uv = uv

    @classmethod
    def from_trimesh(cls, mesh: trimesh.Trimesh, label: str) -> SceneMesh:
        """Take a trimesh mesh with its colours: a texture image + uv, or vertex colours, if it has them."""
        visual = getattr(mesh, "visual", None)
        kind = getattr(visual, "kind", None)
        if kind == "texture" and visual.uv is not None:
            image = getattr(visual.material, "image", None)
            if image is None and hasattr(visual.material, "baseColorTexture"):
                image = visual.material.baseColorTexture
            if image is not None:
                return cls(mesh.vertices, mesh.faces, label, uv=visual.uv, texture=_image_array(image))
        if kind == "vertex":
            return cls(mesh.vertices, mesh.faces, label, vertex_colors=visual.vertex_colors[:, :3] / 255.0)
        return cls(mesh.vertices, mesh.faces, label)

    @property
    def label_id(self) -> int:
        return LABELS[self.label]

    def albedo(self) -> np.ndarray:
        """Per-vertex (V, 3) colours for the `texture` map."""
        if self.vertex_colors is not None:
            return self.vertex_colors
        default = DEFAULT_OBJECT if self.label == "object" else DEFAULT_SKIN
        c = self.color if self.color is not None else np.asarray(default, dtype=np.float32)
        return np.broadcast_to(np.asarray(c, dtype=np.float32), self.vertices.shape)


_IMAGES: OrderedDict[int, tuple[object, np.ndarray]] = OrderedDict()


def _image_array(image) -> np.ndarray:
    """The RGB array of a PIL image, converted once per image object (so the GL texture cache hits)."""
    key = id(image)
    if key in _IMAGES and _IMAGES[key][0] is image:
        _IMAGES.move_to_end(key)
        return _IMAGES[key][1]
    arr = np.asarray(image.convert("RGB"), dtype=np.uint8)
    _IMAGES[key] = (image, arr)  # holding the image keeps its id from being reused
    while len(_IMAGES) > 32:
        _IMAGES.popitem(last=False)
    return arr


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Smooth unit normals: the area-weighted mean of the adjacent faces' normals (winding decides sign).

    Vertices without a face (or only degenerate ones) get a zero normal; the shader then falls back to
    the face's own normal. Written on 1-D coordinate arrays: gathering (F, 3, 3) triangles is 3x slower.
    """
    x, y, z = np.asarray(vertices, dtype=np.float64).T
    f = np.asarray(faces, dtype=np.intp)
    n = np.zeros((len(x), 3), np.float64)
    if len(f):
        a, b, c = f[:, 0], f[:, 1], f[:, 2]
        e1x, e1y, e1z = x[b] - x[a], y[b] - y[a], z[b] - z[a]
        e2x, e2y, e2z = x[c] - x[a], y[c] - y[a], z[c] - z[a]
        # The cross product's length is twice the triangle area, so summing it area-weights.
        fn = (e1y * e2z - e1z * e2y, e1z * e2x - e1x * e2z, e1x * e2y - e1y * e2x)
        idx = f.T.reshape(-1)
        for axis in range(3):
            n[:, axis] = np.bincount(idx, weights=np.tile(fn[axis], 3), minlength=len(x))
    length = np.sqrt(np.einsum("ij,ij->i", n, n))[:, None]
    return np.divide(n, length, out=np.zeros_like(n), where=length > 1e-20).astype(np.float32)
