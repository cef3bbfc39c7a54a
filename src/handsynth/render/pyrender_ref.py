"""The straightforward pyrender way to make the same maps: one scene (and one render) per map.

This is what the papers' released code and most users do (HandBooster renders its conditions with
pyrender), kept as an independent reference: the tests compare :class:`handsynth.render.Renderer`'s
geometry against it, and ``benchmarks/render.py`` times it as the baseline. pyrender is in the dev
extra; it needs ``PYOPENGL_PLATFORM=egl`` before OpenGL is first imported (set here if unset).

Per map it builds a fresh ``pyrender.Scene`` with fresh ``pyrender.Mesh`` objects (so every map
re-uploads the geometry) and calls ``OffscreenRenderer.render`` once:

- mesh: light-grey metallic-roughness material (metallic 0, roughness 1) for hands, black for objects,
  a directional light along the view axis plus ambient light;
- normal: per-vertex camera-space normals (flipped per vertex to face the camera) encoded as vertex
  colours, rendered with ``RenderFlags.FLAT`` (unlit, interpolated colours);
- texture: vertex colours (skin / object colour) or the uv texture image, lit like the mesh map;
- seg: ``RenderFlags.SEG`` with a colour per mesh node;
- depth: ``RenderFlags.DEPTH_ONLY``, metres -> millimetres;
- skeleton: the same 2-D drawing as the fast renderer (no GL involved).

Shading follows pyrender's PBR shader, so mesh/texture pixels differ from the Lambert maps; seg, depth
and normals describe the same geometry. pyrender renders with 4x MSAA, so label and depth edges are
blended (one reason label maps should not be made this way).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

import numpy as np

from handsynth.errors import UserError
from handsynth.pinhole import check_K
from handsynth.render.maps import MAP_NAMES, check_maps
from handsynth.render.scene import SceneMesh, vertex_normals
from handsynth.render.skeleton import draw_skeleton

# OpenCV camera (x right, y down, z forward) -> pyrender/OpenGL camera (y up, z backward).
CV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])


class PyrenderSceneRenderer:
    """Scene-per-map pyrender renderer with :class:`handsynth.render.Renderer`'s ``render`` signature."""

    def __init__(self, width: int, height: int, znear: float = 0.01, zfar: float = 20.0):
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
        try:
            import pyrender
        except ImportError as e:
            raise UserError(
                f"pyrender is not installed ({e}); install the dev extra: pip install -e '.[dev]'"
            ) from e
        self._pr = pyrender
        self.width, self.height = width, height
        self.znear, self.zfar = znear, zfar
        self.renderer = pyrender.OffscreenRenderer(width, height)

    def _scene(self, K: np.ndarray, ambient: float = 0.0):
        pr = self._pr
        scene = pr.Scene(bg_color=(0.0, 0.0, 0.0, 0.0), ambient_light=(ambient,) * 3)
        cam = pr.IntrinsicsCamera(K[0, 0], K[1, 1], K[0, 2], K[1, 2], znear=self.znear, zfar=self.zfar)
        scene.add(cam, pose=CV_TO_GL)
        scene.add(pr.DirectionalLight(color=np.ones(3), intensity=2.0), pose=CV_TO_GL)
        return scene

    def _mesh(
        self,
        m: SceneMesh,
        colors: np.ndarray | None = None,
        rgba: tuple | None = None,
        textured: bool = False,
    ):
        import trimesh

        pr = self._pr
        tm = trimesh.Trimesh(m.vertices, m.faces, vertex_colors=colors, process=False)
        if textured:
            from PIL import Image

            tm.visual = trimesh.visual.TextureVisuals(uv=m.uv, image=Image.fromarray(m.texture[..., :3]))
        material = None
        if rgba is not None:
            material = pr.MetallicRoughnessMaterial(
                baseColorFactor=rgba, metallicFactor=0.0, roughnessFactor=1.0
            )
        return pr.Mesh.from_trimesh(tm, material=material, smooth=True)

    def render(
        self,
        meshes: Sequence[SceneMesh],
        K: np.ndarray,
        maps: Sequence[str] = MAP_NAMES,
        joints_2d: Sequence[np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        pr = self._pr
        K = check_K(K)
        maps = check_maps(maps)
        out: dict[str, np.ndarray] = {}
        for name in maps:
            if name == "skeleton":
                if joints_2d is None:
                    raise UserError("the skeleton map needs joints_2d (one (21, 2) array per hand)")
                out[name] = draw_skeleton(joints_2d, self.width, self.height)
                continue
            scene = self._scene(K, ambient=0.25 if name in ("mesh", "texture") else 0.0)
            nodes = []
            for m in meshes:
                if name == "mesh":
                    grey = (0.8, 0.8, 0.8, 1.0) if m.label != "object" else (0.0, 0.0, 0.0, 1.0)
                    mesh = self._mesh(m, rgba=grey)
                elif name == "normal":
                    n = vertex_normals(m.vertices, m.faces)
                    n[(n * m.vertices).sum(axis=1) > 0] *= -1  # face the camera
                    mesh = self._mesh(m, colors=np.round((n * 0.5 + 0.5) * 255).astype(np.uint8))
                elif name == "texture" and m.texture is not None:
                    mesh = self._mesh(m, textured=True)
                elif name == "texture":
                    mesh = self._mesh(m, colors=np.round(np.asarray(m.albedo()) * 255).astype(np.uint8))
                else:
                    mesh = self._mesh(m)
                nodes.append((scene.add(mesh), m.label_id))
            if name == "seg":
                seg_map = {node: (label, label, label) for node, label in nodes}
                color, _ = self.renderer.render(scene, flags=pr.RenderFlags.SEG, seg_node_map=seg_map)
                out[name] = np.ascontiguousarray(color[..., 0])
            elif name == "depth":
                depth = self.renderer.render(scene, flags=pr.RenderFlags.DEPTH_ONLY)
                out[name] = np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16)
            elif name == "normal":
                color, _ = self.renderer.render(scene, flags=pr.RenderFlags.FLAT)
                out[name] = color
            else:
                color, _ = self.renderer.render(scene)
                out[name] = color
        return out

    def release(self) -> None:
        """Free pyrender's GL objects and context WITHOUT ``eglTerminate``.

        pyrender's ``OffscreenRenderer.delete()`` (also run from its and its platform's ``__del__``)
        terminates the process-wide EGL display, which silently breaks every other EGL context in the
        process: a handsynth Renderer then draws garbage. So we destroy only our own context, and
        leave the platform with no display, so that its ``__del__`` has nothing left to terminate.
        """
        r = getattr(self, "renderer", None)
        platform = getattr(r, "_platform", None)
        if r is None or platform is None:
            return
        if not hasattr(platform, "_egl_display"):  # not EGL (OSMesa, pyglet): pyrender's own cleanup
            r.delete()
            return
        from OpenGL.EGL import EGL_NO_CONTEXT, EGL_NO_SURFACE, eglDestroyContext, eglMakeCurrent

        if platform._egl_display is not None and platform._egl_context is not None:
            platform.make_current()
            r._renderer.delete()
            eglMakeCurrent(platform._egl_display, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT)
            eglDestroyContext(platform._egl_display, platform._egl_context)
        platform._egl_context = None
        platform._egl_display = None
        r._renderer = r._platform = None
        self.renderer = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: EGL may already be gone
            self.release()
