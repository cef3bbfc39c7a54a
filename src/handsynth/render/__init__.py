"""Condition rendering: hand (+ object) meshes -> mesh, normal, texture, seg, depth and skeleton maps.

One headless OpenGL renderer (moderngl over EGL) draws every map in one pass; local maps are rendered
straight through crop intrinsics. See docs/render.md.
"""

from __future__ import annotations

from handsynth.lazy import lazy_exports

# name -> home module, imported on first use (``handsynth --help`` must not pay for numpy, PIL, OpenGL)
_EXPORTS = {
    "bbox_from_points": "handsynth.pinhole",
    "check_K": "handsynth.pinhole",
    "intrinsics": "handsynth.pinhole",
    "project": "handsynth.pinhole",
    "RenderContextError": "handsynth.render.context",
    "crop_box": "handsynth.render.crop",
    "crop_image": "handsynth.render.crop",
    "crop_intrinsics": "handsynth.render.crop",
    "to_global": "handsynth.render.crop",
    "to_local": "handsynth.render.crop",
    "MAP_LAYOUT": "handsynth.render.maps",
    "MAP_NAMES": "handsynth.render.maps",
    "load_map": "handsynth.render.maps",
    "save_map": "handsynth.render.maps",
    "Lighting": "handsynth.render.renderer",
    "Renderer": "handsynth.render.renderer",
    "LABELS": "handsynth.render.scene",
    "SceneMesh": "handsynth.render.scene",
    "vertex_normals": "handsynth.render.scene",
    "draw_skeleton": "handsynth.render.skeleton",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
