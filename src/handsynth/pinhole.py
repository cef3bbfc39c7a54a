"""Pinhole camera helpers in the OpenCV convention (x right, y down, z forward; intrinsics K).

Pixel convention (the same as pyrender's ``IntrinsicsCamera`` and PIL): a point projects to continuous
coordinates ``u = fx X/Z + s Y/Z + cx``, ``v = fy Y/Z + cy``, and pixel ``(col, row)`` covers
``[col, col + 1) x [row, row + 1)``, so its centre is at ``(col + 0.5, row + 0.5)``. A joint is inside a
``W x H`` image when ``0 <= u < W`` and ``0 <= v < H``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from handsynth.errors import UserError


def check_K(K: np.ndarray | Sequence) -> np.ndarray:
    """Validated (3, 3) float64 intrinsics [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0."""
    k = np.asarray(K, dtype=np.float64)
    if k.shape != (3, 3) or not np.isfinite(k).all():
        raise UserError(f"camera intrinsics K must be a finite 3x3 matrix, got shape {k.shape}")
    if k[0, 0] <= 0 or k[1, 1] <= 0 or k[1, 0] != 0 or not np.allclose(k[2], [0, 0, 1]):
        raise UserError(
            f"camera intrinsics K must look like [[fx,s,cx],[0,fy,cy],[0,0,1]] with fx,fy>0, got {k}"
        )
    return k


def intrinsics(width: int, height: int, fov_deg: float = 45.0) -> np.ndarray:
    """K for a centred principal point and a horizontal field of view (square pixels)."""
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    return np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame points (..., 3), metres -> continuous pixel coordinates (..., 2)."""
    p = np.asarray(points, dtype=np.float64)
    uvw = p @ np.asarray(K, dtype=np.float64).T
    return uvw[..., :2] / uvw[..., 2:3]


def bbox_from_points(*uv: np.ndarray) -> list[float]:
    """Tight [x, y, w, h] around 2D points (e.g. projected mesh vertices and joints)."""
    pts = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in uv])
    pts = pts[np.isfinite(pts).all(axis=1)]
    if not len(pts):
        raise UserError("bbox_from_points needs at least one finite point")
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]
