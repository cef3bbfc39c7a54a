"""Shared scenes for the render tests: spheres and a box with known geometry, one GL context."""

from __future__ import annotations

import os

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import numpy as np
import pytest
import trimesh

from handsynth.render import Renderer, SceneMesh

W, H = 320, 240  # not square, so a swapped width/height shows
K = np.array([[300.0, 0.0, 161.3], [0.0, 310.0, 118.7], [0.0, 0.0, 1.0]])
RADIUS = 0.04
RIGHT_C = np.array([-0.05, -0.01, 0.5])
LEFT_C = np.array([0.055, 0.01, 0.52])
BOX_C = np.array([0.0, 0.035, 0.44])  # in front of both spheres, overlapping them


def sphere(center, label, radius=RADIUS, subdivisions=4, **kw) -> SceneMesh:
    s = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return SceneMesh(s.vertices + np.asarray(center), s.faces, label, **kw)


def box(center, extent=0.05) -> SceneMesh:
    b = trimesh.creation.box(extents=(extent,) * 3)
    return SceneMesh(b.vertices + np.asarray(center), b.faces, "object")


def rays(K_: np.ndarray, width: int, height: int) -> np.ndarray:
    """Unit ray directions through every pixel centre, (H, W, 3)."""
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    d = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K_).T
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def ray_sphere(dirs: np.ndarray, center: np.ndarray, radius: float):
    """Distance along each ray to the first hit and the discriminant (<0: miss)."""
    b = dirs @ center
    disc = b**2 - (center @ center - radius**2)
    t = b - np.sqrt(np.maximum(disc, 0))
    return t, disc


def decode_normals(normal_map: np.ndarray) -> np.ndarray:
    return normal_map.astype(np.float64) / 255.0 * 2.0 - 1.0


@pytest.fixture(scope="session")
def renderer():
    r = Renderer(W, H)
    yield r
    r.release()


@pytest.fixture(scope="session")
def scene():
    return [sphere(RIGHT_C, "right"), sphere(LEFT_C, "left"), box(BOX_C)]


@pytest.fixture(scope="session")
def joints():
    """Two hands' 21 joints scattered over the spheres' projections."""
    rng = np.random.default_rng(0)
    out = []
    for c in (RIGHT_C, LEFT_C):
        p = c + rng.uniform(-RADIUS, RADIUS, size=(21, 3))
        uvw = p @ K.T
        out.append(uvw[:, :2] / uvw[:, 2:])
    return out


@pytest.fixture(scope="session")
def rendered(renderer, scene, joints):
    return renderer.render(scene, K, joints_2d=joints)
