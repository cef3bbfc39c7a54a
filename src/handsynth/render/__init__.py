"""Condition rendering: hand (+ object) meshes -> mesh, normal, texture, seg, depth and skeleton maps.

One headless OpenGL renderer (moderngl over EGL) draws every map in one pass; local maps are rendered
straight through crop intrinsics. See docs/render.md.
"""

from handsynth.pinhole import bbox_from_points, check_K, intrinsics, project
from handsynth.render.context import RenderContextError
from handsynth.render.crop import crop_box, crop_image, crop_intrinsics, to_global, to_local
from handsynth.render.maps import MAP_LAYOUT, MAP_NAMES, load_map, save_map
from handsynth.render.renderer import Lighting, Renderer
from handsynth.render.scene import LABELS, SceneMesh, vertex_normals
from handsynth.render.skeleton import draw_skeleton

__all__ = [
    "LABELS",
    "MAP_LAYOUT",
    "MAP_NAMES",
    "Lighting",
    "RenderContextError",
    "Renderer",
    "SceneMesh",
    "bbox_from_points",
    "check_K",
    "crop_box",
    "crop_image",
    "crop_intrinsics",
    "draw_skeleton",
    "intrinsics",
    "load_map",
    "project",
    "save_map",
    "to_global",
    "to_local",
    "vertex_normals",
]
