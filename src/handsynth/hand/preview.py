"""A tiny dependency-free mesh preview (numpy z-buffer, Lambert shading) and the OpenHand contact sheet.

Why here and not in ``handsynth.render``: looking at a hand model must not need OpenGL, and the
contact sheet in ``docs/openhand_poses.png`` is rebuilt with
``python -m handsynth.hand.preview --out docs/openhand_poses.png``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import numpy as np

from handsynth import cli_args

if TYPE_CHECKING:
    from PIL import Image


def rasterize(
    vertices: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    width: int,
    height: int,
    color: tuple[float, float, float] = (0.93, 0.72, 0.60),
    background: tuple[int, int, int] = (255, 255, 255),
    light: tuple[float, float, float] = (-0.3, -0.5, -1.0),
) -> np.ndarray:
    """Shaded ``(H, W, 3)`` uint8 image of a camera-frame mesh (OpenCV frame, z forward)."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    uvw = v @ np.asarray(K, dtype=np.float64).T
    uv = uvw[:, :2] / uvw[:, 2:3]
    z = v[:, 2]
    # Smooth vertex normals for shading.
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, f[:, k], fn)
    vn /= np.linalg.norm(vn, axis=1, keepdims=True) + 1e-12
    L = np.asarray(light, dtype=np.float64)  # from the surface towards the light
    L /= np.linalg.norm(L)
    shade = 0.35 + 0.65 * np.clip(vn @ L, 0.0, 1.0)

    tri = uv[f]  # (F, 3, 2)
    lo = np.floor(tri.min(1) - 0.5).astype(int)
    size = (np.ceil(tri.max(1) - 0.5).astype(int) - lo).max(1) + 1
    depth = np.full(height * width, np.inf)
    value = np.zeros(height * width)
    k = int(min(max(size.max(initial=1), 1), 64))
    for start in range(0, len(f), 20000):
        sl = slice(start, start + 20000)
        ox, oy = np.meshgrid(np.arange(k), np.arange(k))
        px = lo[sl, 0:1] + ox.reshape(1, -1)
        py = lo[sl, 1:2] + oy.reshape(1, -1)
        cx, cy = px + 0.5, py + 0.5
        a, b, c = tri[sl, 0], tri[sl, 1], tri[sl, 2]
        den = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
        den = np.where(np.abs(den) < 1e-12, np.nan, den)[:, None]
        l0 = ((b[:, 1:2] - c[:, 1:2]) * (cx - c[:, 0:1]) + (c[:, 0:1] - b[:, 0:1]) * (cy - c[:, 1:2])) / den
        l1 = ((c[:, 1:2] - a[:, 1:2]) * (cx - c[:, 0:1]) + (a[:, 0:1] - c[:, 0:1]) * (cy - c[:, 1:2])) / den
        l2 = 1 - l0 - l1
        inside = (l0 >= -1e-9) & (l1 >= -1e-9) & (l2 >= -1e-9) & (px >= 0) & (py >= 0)
        inside &= (px < width) & (py < height)
        fi = np.nonzero(inside)
        ff = f[sl][fi[0]]
        w0, w1, w2 = l0[fi], l1[fi], l2[fi]
        zz = w0 * z[ff[:, 0]] + w1 * z[ff[:, 1]] + w2 * z[ff[:, 2]]
        ss = w0 * shade[ff[:, 0]] + w1 * shade[ff[:, 1]] + w2 * shade[ff[:, 2]]
        pix = py[fi] * width + px[fi]
        order = np.lexsort((zz, pix))
        pix, zz, ss = pix[order], zz[order], ss[order]
        first = np.ones(len(pix), dtype=bool)
        first[1:] = pix[1:] != pix[:-1]
        pix, zz, ss = pix[first], zz[first], ss[first]
        closer = zz < depth[pix]
        depth[pix[closer]] = zz[closer]
        value[pix[closer]] = ss[closer]
    img = np.empty((height * width, 3))
    img[:] = background
    hit = np.isfinite(depth)
    img[hit] = 255 * value[hit, None] * np.asarray(color)
    return np.clip(img, 0, 255).astype(np.uint8).reshape(height, width, 3)


def look_at_hand(
    vertices: np.ndarray, size: int, rot: np.ndarray | None = None, fill: float = 0.8
) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame vertices and K that frame a mesh (rotated by ``rot`` about its centre) in a square image."""
    v = np.asarray(vertices, dtype=np.float64)
    c = 0.5 * (v.min(0) + v.max(0))
    v = (v - c) @ (np.eye(3) if rot is None else rot).T
    f = 2.0 * size
    radius = np.linalg.norm(v[:, :2], axis=1).max()
    zdist = f * radius / (0.5 * size * fill) + np.abs(v[:, 2]).max()
    cam = v + np.array([0.0, 0.0, zdist])
    # Re-centre the projection.
    K = np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]])
    uv = cam[:, :2] / cam[:, 2:3] * f
    K[0, 2] -= 0.5 * (uv[:, 0].min() + uv[:, 0].max())
    K[1, 2] -= 0.5 * (uv[:, 1].min() + uv[:, 1].max())
    return cam, K


def view_rotation(name: str) -> np.ndarray:
    """Rotations from the MANO frame (fingers -x, palm -y) to a camera frame (x right, y down, z forward)."""
    from scipy.spatial.transform import Rotation

    # Back of the hand towards the camera, fingers up: MANO -x -> image up (-y), +y (back) -> -z.
    base = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    extra = {
        "back": Rotation.identity(),
        "palm": Rotation.from_euler("y", 180, degrees=True),
        "side": Rotation.from_euler("y", 70, degrees=True) * Rotation.from_euler("x", -15, degrees=True),
        "three_quarter": Rotation.from_euler("y", -40, degrees=True)
        * Rotation.from_euler("x", 25, degrees=True),
    }[name]
    return extra.as_matrix() @ base


def _gl_renderer(cell: int):
    """handsynth.render's OpenGL renderer when a context can be made, else None (numpy fallback)."""
    import os

    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    try:
        from handsynth.render import Renderer

        return Renderer(cell, cell)
    except Exception:  # no EGL/OpenGL here: the numpy rasteriser still works
        return None


def openhand_contact_sheet(cell: int = 256, side: str = "right", use_gl: bool = True) -> Image.Image:
    """One row per canonical pose, columns: back, palm, side and three-quarter views (a PIL image).

    Uses handsynth.render's mesh map (what the methods are conditioned on) when OpenGL is available,
    otherwise :func:`rasterize`.
    """
    import torch

    from handsynth.hand.model import load_hand_model
    from handsynth.hand.poses import CANONICAL_POSES, canonical_pose
    from handsynth.viz import contact_sheet

    model = load_hand_model("openhand", side=side, flat_hand_mean=True)
    views = ("back", "palm", "side", "three_quarter")
    gl = _gl_renderer(cell) if use_gl else None
    rows, captions = [], []
    for name in CANONICAL_POSES:
        pose = torch.as_tensor(canonical_pose(name, side=side), dtype=torch.float32)[None]
        with torch.no_grad():
            out = model(hand_pose=pose)
        verts = out.vertices[0].numpy()
        row = []
        for view in views:
            rot = view_rotation(view)
            cam, K = look_at_hand(verts, cell, rot)
            if gl is not None:
                from handsynth.render import SceneMesh

                mesh = SceneMesh(cam.astype(np.float32), model.faces.astype(np.int32), label=side)
                row.append(gl.render(meshes=[mesh], K=K, maps=("mesh",))["mesh"])
            else:
                row.append(rasterize(cam, model.faces, K, cell, cell))
        rows.append(row)
        captions.append(f"{name}")
    return contact_sheet(rows, column_titles=views, row_captions=captions, cell=cell, caption_lines=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render the OpenHand canonical-pose contact sheet.")
    parser.add_argument("--out", default="docs/openhand_poses.png")
    parser.add_argument("--cell", type=cli_args.image_side, default=256)
    parser.add_argument("--side", default="right", choices=("right", "left"))
    parser.add_argument("--numpy", action="store_true", help="use the numpy rasteriser, not OpenGL")
    args = parser.parse_args(argv)
    openhand_contact_sheet(args.cell, args.side, use_gl=not args.numpy).save(args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
