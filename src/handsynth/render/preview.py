"""The OpenHand contact sheet, drawn with the OpenGL renderer or the tiny numpy mesh preview
(:func:`handsynth.viz.rasterize`: looking at a hand model must not need OpenGL). The contact sheet in ``docs/openhand_poses.png`` is rebuilt with
``python -m handsynth.render.preview --out docs/openhand_poses.png``.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch
from PIL import Image

from handsynth import cli_args
from handsynth.hand.model import load_hand_model
from handsynth.hand.poses import CANONICAL_POSES, canonical_pose
from handsynth.render.renderer import Renderer
from handsynth.render.scene import SceneMesh
from handsynth.viz import contact_sheet, rasterize


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
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    try:
        return Renderer(cell, cell)
    except Exception:  # no EGL/OpenGL here: the numpy rasteriser still works
        return None


def openhand_contact_sheet(cell: int = 256, side: str = "right", use_gl: bool = True) -> Image.Image:
    """One row per canonical pose, columns: back, palm, side and three-quarter views (a PIL image).

    Uses handsynth.render's mesh map (what the methods are conditioned on) when OpenGL is available,
    otherwise :func:`rasterize`.
    """
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
