"""OpenHand: a license-free articulated hand with MANO's skeleton, pose parameters and conventions.

Why: every feature of handsynth must work for users without a MANO licence (and in CI). OpenHand is
built procedurally, here, from public numbers only:

- **Skeleton.** The rest joints are MANO's right-hand mean-template joints (16 kinematic joints + 5
  fingertips, metres, MANO's frame: fingers along -x, thumb towards +z, palm facing -y), as published in
  several open-source projects (e.g. the ``MANO_REF_JOINTS`` table of minimal-hand, which lists the
  mirrored hand, and the wrist offset ``(0.0957, 0.0064, 0.0062)`` used by D-Grasp). The relaxed mean
  pose ``hand_mean`` is MANO's public ``hands_mean`` (reproduced e.g. in FrankMocap).
- **Surface.** A signed distance field, the smooth union of a rounded palm slab, a closed wrist stump,
  thenar and hypothenar pads and one tapered, slightly flattened capsule per phalanx, is polygonised
  with marching cubes (2 mm grid) and Taubin-smoothed: one closed, watertight surface (~14.8k vertices,
  ``detail="high"``). The default ``detail="light"`` mesh is that surface reduced by quadric-error edge
  collapse (fast-simplification) to 3,000 faces / ~1.5k vertices, about MANO's size (778 vertices): 10x
  less work in skinning, rendering and storage for a hand that looks the same at 256-512 px.
- **Skinning.** Each vertex is weighted to the joints whose primitives it lies near (Gaussian of the
  primitive's distance, limited to the dominant bone and its tree neighbours, then diffused a few
  steps along mesh edges), so knuckles blend smoothly and fingers never pull each other. The light mesh
  takes each vertex's weights from its nearest dense vertices. No pose correctives (``posedirs`` is
  ``None``).
- **Joint regressor.** For each joint, minimum-norm affine weights over the surrounding vertices that
  reproduce the rest joint exactly, so joints follow the surface when shape changes (as MANO's do).
- **Shape.** Ten blend shapes with fixed meanings (:data:`SHAPE_PARAMS`), one unit being roughly one
  standard deviation of adult hand anthropometry.
- **Left hand.** The mirror image (x -> -x) of the right, with faces flipped and pose parameters
  mirrored as MANO does (axis-angle ``(x, y, z) -> (x, -y, -z)``).
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from handsynth.atomic import atomic_open
from handsynth.hand.arrays import HandArrays
from handsynth.hand.joints import MANO_PARENTS

# MANO right-hand mean-template joints, metres, MANO order (public figures, see module docstring).
REST_JOINTS = np.array(
    [
        [0.09566993, 0.00638343, 0.00618631],  # wrist
        [0.00757269, 0.00118307, 0.02687230],  # index 1 (MCP)
        [-0.0251062, 0.00519243, 0.02908936],  # index 2 (PIP)
        [-0.0472621, 0.00389400, 0.02897524],  # index 3 (DIP)
        [0.00100949, 0.00490446, 0.00282876],  # middle 1
        [-0.0301731, 0.00676579, -0.0027657],  # middle 2
        [-0.0530778, 0.00551369, -0.0067102],  # middle 3
        [0.02688296, -0.0035569, -0.0370230],  # little 1
        [0.00986855, -0.0034950, -0.0495218],  # little 2
        [-0.0059983, -0.0041862, -0.0598537],  # little 3
        [0.01393438, 0.00242601, -0.0204868],  # ring 1
        [-0.0143799, 0.00449301, -0.0255854],  # ring 2
        [-0.0379004, 0.00280490, -0.0332192],  # ring 3
        [0.07158022, -0.0091389, 0.03199915],  # thumb 1 (CMC)
        [0.05194698, -0.0082476, 0.05569870],  # thumb 2 (MCP)
        [0.02972924, -0.0136805, 0.07022282],  # thumb 3 (IP)
    ]
)
# Fingertip surface points of the same template, smplx's tip order (thumb, index, middle, ring, little).
REST_TIPS = np.array(
    [
        [0.00223126, -0.0180950, 0.09091450],
        [-0.0705249, 0.00461197, 0.03302451],
        [-0.0789928, 0.00614665, -0.0120408],
        [-0.0608042, 0.00734306, -0.0402022],
        [-0.0218988, -0.0016281, -0.0701316],
    ]
)
# MANO's public right-hand relaxed mean pose (hands_mean), axis-angle, 15 joints in MANO order.
HANDS_MEAN = np.array(
    [
        0.11167872, -0.04289217, 0.41644184, 0.10881133, 0.06598568, 0.75622001, -0.09639297, 0.09091566,
        0.18845929, -0.11809504, -0.05094385, 0.5295845, -0.14369841, -0.0552417, 0.70485714, -0.01918292,
        0.09233685, 0.33791352, -0.45703298, 0.19628395, 0.62545753, -0.21465238, 0.06599829, 0.50689421,
        -0.36972436, 0.06034463, 0.07949023, -0.14186969, 0.08585263, 0.63552826, -0.30334159, 0.05788098,
        0.63138921, -0.17612089, 0.13209308, 0.37335458, 0.85096428, -0.27692274, 0.09154807, -0.49983944,
        -0.02655647, -0.05288088, 0.53555915, -0.04596104, 0.27735802,
    ]
)  # fmt: skip

# The meaning of each shape parameter (one unit ~ one standard deviation; positive = more).
SHAPE_PARAMS = (
    "overall size (uniform scale about the wrist, +5.5% per unit)",
    "palm width (across the knuckles, +6% per unit; fingers move apart with it)",
    "palm length (wrist to knuckles, +6% per unit; fingers move with the knuckles)",
    "finger length (index to little, along each finger, +6% per unit)",
    "thumb length (along the thumb from its CMC joint, +6% per unit)",
    "finger and thumb thickness (radial, +7% per unit)",
    "palm thickness (back-to-palm, +7% per unit)",
    "index-to-ring length ratio (index +4%, ring -4% per unit)",
    "little finger length (+6% per unit)",
    "finger taper (fingertips thinner than the bases, -8% at the tip per unit)",
)

# Finger chains in MANO joint indices (base, middle, distal) and their tip index into REST_TIPS.
CHAINS = {
    "thumb": ((13, 14, 15), 0),
    "index": ((1, 2, 3), 1),
    "middle": ((4, 5, 6), 2),
    "ring": ((10, 11, 12), 3),
    "little": ((7, 8, 9), 4),
}
# Radii (metres) at base, middle, distal joint and fingertip centre; breadth (depth is FLAT x this).
RADII = {
    "thumb": (0.0128, 0.0112, 0.0100, 0.0090),
    "index": (0.0102, 0.0095, 0.0086, 0.0077),
    "middle": (0.0105, 0.0097, 0.0087, 0.0078),
    "ring": (0.0099, 0.0091, 0.0082, 0.0074),
    "little": (0.0088, 0.0081, 0.0074, 0.0067),
}
FLAT = 0.88  # finger depth / breadth
PALM_Y = 0.0016  # palm mid-plane
PALM_HALF = 0.0122  # palm half thickness
GRID = 0.002  # marching-cubes step, metres
SKIN_TAU = 0.0028  # skinning falloff, metres
SKIN_SMOOTH = 10  # iterations of weight diffusion along the mesh
# Mesh detail levels: faces after quadric decimation of the dense mesh (None = the dense mesh itself).
DETAILS = {"light": 3000, "high": None}
DEFAULT_DETAIL = "light"
DECIMATE_AGG = 2.0  # fast-simplification aggressiveness: lower = better-shaped triangles (default 7)
VERSION = 2


@dataclass
class _Prim:
    """One SDF primitive owned by one joint."""

    kind: str  # "cone" | "palm"
    joint: int
    a: np.ndarray | None = None
    b: np.ndarray | None = None
    ra: float = 0.0
    rb: float = 0.0
    flat: float = 1.0  # depth / breadth ratio; the depth axis is the palm normal (-y) made perpendicular
    stretch: tuple[float, float, float] = (1.0, 1.0, 1.0)


def _cone_sdf(p: np.ndarray, prim: _Prim) -> np.ndarray:
    """Distance to a tapered capsule (radius linear along the segment), with an elliptic cross-section."""
    a, b = prim.a, prim.b
    ba = b - a
    L2 = float(ba @ ba)
    t = np.clip(((p - a) @ ba) / L2, 0.0, 1.0)
    e = p - (a + t[:, None] * ba)
    if prim.flat != 1.0:
        u = ba / np.sqrt(L2)
        n = np.array([0.0, 1.0, 0.0]) - u[1] * u
        n /= np.linalg.norm(n)
        e = e + ((1.0 / prim.flat) - 1.0) * (e @ n)[:, None] * n
    if prim.stretch != (1.0, 1.0, 1.0):
        e = e / np.asarray(prim.stretch)
    r = prim.ra + t * (prim.rb - prim.ra)
    return np.linalg.norm(e, axis=1) - r


# Core palm polygon in (x, z), metres: the rounded slab is this polygon grown by PALM_HALF.
PALM_POLY = np.array(
    [
        [0.0870, 0.0190],  # radial wrist
        [0.0450, 0.0255],  # radial palm edge (under the thenar)
        [0.0040, 0.0235],  # index knuckle
        [-0.0030, 0.0030],  # middle knuckle
        [0.0100, -0.0195],  # ring knuckle
        [0.0240, -0.0325],  # little knuckle
        [0.0600, -0.0310],  # ulnar palm edge
        [0.0870, -0.0180],  # ulnar wrist
    ]
)


def _polygon_sdf(q: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Signed distance in 2D to a convex polygon (negative inside)."""
    d = np.full(len(q), np.inf)
    inside = np.ones(len(q), dtype=bool)
    n = len(poly)
    area = 0.5 * np.sum(poly[:, 0] * np.roll(poly[:, 1], -1) - np.roll(poly[:, 0], -1) * poly[:, 1])
    orient = 1.0 if area > 0 else -1.0
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        e = b - a
        w = q - a
        t = np.clip((w @ e) / (e @ e), 0, 1)
        d = np.minimum(d, np.linalg.norm(w - t[:, None] * e, axis=1))
        cross = e[0] * w[:, 1] - e[1] * w[:, 0]
        inside &= orient * cross >= 0
    return np.where(inside, -d, d)


def _palm_sdf(p: np.ndarray) -> np.ndarray:
    q = p[:, [0, 2]]
    d2 = _polygon_sdf(q, PALM_POLY)
    dy = p[:, 1] - PALM_Y
    # A flat polygon grown by a sphere of radius PALM_HALF (a "pill" slab), slightly flatter on the back.
    dy = np.where(dy > 0, dy * 1.08, dy)
    return np.sqrt(np.maximum(d2, 0.0) ** 2 + dy**2) - PALM_HALF


def _primitives() -> list[_Prim]:
    J, T = REST_JOINTS, REST_TIPS
    prims = [_Prim("palm", 0)]
    w = J[0]
    # Closed wrist stump: an elliptic capsule running proximally from inside the palm.
    prims.append(
        _Prim(
            "cone",
            0,
            a=w + [-0.010, -0.0008, -0.0005],
            b=w + [0.018, -0.0012, -0.0005],
            ra=0.0270,
            rb=0.0255,
            stretch=(1.0, 0.62, 1.0),
        )
    )
    # Hypothenar pad (ulnar side of the palm) and the proximal thenar mass, both on the wrist joint.
    prims.append(_Prim("cone", 0, a=np.array([0.078, -0.0005, -0.0175]), b=np.array([0.036, -0.0010, -0.0290]),
                       ra=0.0120, rb=0.0105))  # fmt: skip
    prims.append(_Prim("cone", 0, a=np.array([0.083, -0.0030, 0.0120]), b=np.array([0.064, -0.0055, 0.0240]),
                       ra=0.0130, rb=0.0125))  # fmt: skip
    for name, (chain, tip_i) in CHAINS.items():
        r = RADII[name]
        tip = T[tip_i]
        u = tip - J[chain[2]]
        u /= np.linalg.norm(u)
        tip_centre = tip - r[3] * u
        pts = [J[chain[0]], J[chain[1]], J[chain[2]], tip_centre]
        flat = 1.0 if name == "thumb" else FLAT
        for k in range(3):
            prims.append(_Prim("cone", chain[k], a=pts[k], b=pts[k + 1], ra=r[k], rb=r[k + 1], flat=flat))
    return prims


def _prim_sdf(p: np.ndarray, prim: _Prim) -> np.ndarray:
    return _palm_sdf(p) if prim.kind == "palm" else _cone_sdf(p, prim)


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum (blends within ``k``)."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _hand_sdf(p: np.ndarray, prims: list[_Prim]) -> np.ndarray:
    d = {i: _prim_sdf(p, pr) for i, pr in enumerate(prims)}
    body = _smin(d[0], d[1], 0.016)  # palm + wrist
    body = _smin(body, d[2], 0.008)  # hypothenar
    body = _smin(body, d[3], 0.010)  # thenar base
    i = 4
    for name in CHAINS:
        finger = _smin(_smin(d[i], d[i + 1], 0.003), d[i + 2], 0.003)
        body = _smin(body, finger, 0.010 if name == "thumb" else 0.0045)
        i += 3
    return body


def _hand_field(lo: np.ndarray, n: np.ndarray, prims: list[_Prim]) -> np.ndarray:
    """The SDF on the grid ``lo + GRID * index``, exact only in a band around the surface (coarse-to-fine)."""
    axes = [lo[i] + GRID * np.arange(n[i]) for i in range(3)]
    coarse_axes = [a[::2] for a in axes]
    cg = np.stack(np.meshgrid(*coarse_axes, indexing="ij"), axis=-1).reshape(-1, 3)
    nc = [len(a) for a in coarse_axes]
    coarse = _hand_sdf(cg, prims).reshape(nc)
    # Nearest coarse value everywhere; the field is ~1-Lipschitz, so only points near the surface need more.
    field = coarse[np.ix_(*[np.arange(n[i]) // 2 for i in range(3)])]
    band = np.abs(field) < 2.5 * GRID
    idx = np.nonzero(band)
    pts = np.stack([axes[i][idx[i]] for i in range(3)], axis=-1)
    field[idx] = _hand_sdf(pts, prims)
    return field


def _marching_cubes(prims: list[_Prim]) -> tuple[np.ndarray, np.ndarray]:
    from skimage.measure import marching_cubes

    pts = np.concatenate([REST_JOINTS, REST_TIPS])
    lo = pts.min(0) - 0.03
    hi = pts.max(0) + 0.03
    lo[0] = REST_TIPS[:, 0].min() - 0.02
    hi[0] = REST_JOINTS[0, 0] + 0.06
    n = np.ceil((hi - lo) / GRID).astype(int) + 1
    field = _hand_field(lo, n, prims)
    verts, faces, _, _ = marching_cubes(field, level=0.0, spacing=(GRID, GRID, GRID))
    verts = verts + lo
    return verts, faces[:, ::-1].astype(np.int64)  # outward-facing counter-clockwise winding


def _smooth(verts: np.ndarray, faces: np.ndarray, iterations: int = 12) -> tuple[np.ndarray, np.ndarray]:
    import trimesh
    from trimesh import smoothing

    mesh = trimesh.Trimesh(verts, faces, process=True)
    mesh.merge_vertices()
    mesh.remove_unreferenced_vertices()
    smoothing.filter_taubin(mesh, lamb=0.5, nu=-0.53, iterations=iterations)
    if mesh.volume < 0:
        mesh.invert()
    return np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)


def _skin_weights(verts: np.ndarray, prims: list[_Prim]) -> np.ndarray:
    """(V, 16) weights: Gaussian of each joint's primitive distance, over the dominant joint's tree neighbours."""
    V = len(verts)
    dist = np.full((V, 16), np.inf)
    for pr in prims:
        dist[:, pr.joint] = np.minimum(dist[:, pr.joint], _prim_sdf(verts, pr))
    dom = dist.argmin(1)
    allowed = np.zeros((16, 16), dtype=bool)
    for j in range(16):
        allowed[j, j] = True
        p = MANO_PARENTS[j]
        if p >= 0:
            allowed[j, p] = allowed[p, j] = True
    mask = allowed[dom]
    d = np.maximum(dist - np.maximum(dist.min(1, keepdims=True), 0.0), 0.0)
    w = np.exp(-((d / SKIN_TAU) ** 2)) * mask
    return w / w.sum(1, keepdims=True)


def _smooth_weights(W: np.ndarray, faces: np.ndarray, iterations: int = SKIN_SMOOTH) -> np.ndarray:
    """Diffuse skinning weights along mesh edges, softening seams where two bones meet (thumb base)."""
    import scipy.sparse as sp

    V = len(W)
    i = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 1], faces[:, 2], faces[:, 0]])
    j = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0], faces[:, 0], faces[:, 1], faces[:, 2]])
    A = sp.csr_matrix((np.ones(len(i)), (i, j)), shape=(V, V))
    A.data[:] = 1.0
    A = sp.diags(1.0 / np.asarray(A.sum(1)).ravel()) @ A
    for _ in range(iterations):
        W = 0.5 * W + 0.5 * (A @ W)
    return W / W.sum(1, keepdims=True)


def _joint_regressor(verts: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """(16, V) minimum-norm affine weights over nearby vertices that reproduce each rest joint exactly."""
    R = np.zeros((len(joints), len(verts)))
    for j, c in enumerate(joints):
        d = np.linalg.norm(verts - c, axis=1)
        idx = np.nonzero(d < d.min() * 1.35 + 0.003)[0]
        if len(idx) < 12:
            idx = np.argsort(d)[:12]
        X = verts[idx].T  # (3, n)
        A = np.vstack([X, np.ones(len(idx))])  # (4, n)
        b = np.append(c, 1.0)
        R[j, idx] = A.T @ np.linalg.solve(A @ A.T, b)
    return R


def _bone_axes() -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """For each digit joint: its bone segment (start, end) in the rest pose."""
    out = {}
    for _name, (chain, tip_i) in CHAINS.items():
        ends = [REST_JOINTS[chain[1]], REST_JOINTS[chain[2]], REST_TIPS[tip_i]]
        for k in range(3):
            out[chain[k]] = (REST_JOINTS[chain[k]], ends[k])
    return out


def _shapedirs(verts: np.ndarray, W: np.ndarray) -> np.ndarray:
    """(V, 3, 10) displacement per unit of each shape parameter (see SHAPE_PARAMS)."""
    V = len(verts)
    J = REST_JOINTS
    w = J[0]
    S = np.zeros((V, 3, 10))
    x, y, z = np.eye(3)
    chain_of = {}
    for name, (chain, _tip) in CHAINS.items():
        for j in chain:
            chain_of[j] = name
    root = {name: J[chain[0]] for name, (chain, _t) in CHAINS.items()}
    tips = {name: REST_TIPS[t] for name, (_c, t) in CHAINS.items()}
    axes = _bone_axes()
    z_mid = J[4, 2]

    # 0 overall size
    S[:, :, 0] = 0.055 * (verts - w)
    palm_len = w[0] - J[[1, 4, 7, 10], 0].mean()
    for j in range(16):
        wj = W[:, j : j + 1]
        if j == 0:
            width = 0.06 * (verts[:, 2] - z_mid)[:, None] * z
            along = np.clip(w[0] - verts[:, 0], 0.0, palm_len)
            length = -0.06 * along[:, None] * x
            thick = 0.07 * (verts[:, 1] - PALM_Y)[:, None] * y
            S[:, :, 1] += wj * width
            S[:, :, 2] += wj * length
            S[:, :, 6] += wj * thick
            continue
        name = chain_of[j]
        r = root[name]
        S[:, :, 1] += wj * (0.06 * (r[2] - z_mid) * z)
        S[:, :, 2] += wj * (-0.06 * np.clip(w[0] - r[0], 0.0, palm_len) * x)
        u = tips[name] - r
        u = u / np.linalg.norm(u)
        along = ((verts - r) @ u)[:, None] * u
        if name == "thumb":
            S[:, :, 4] += wj * 0.06 * along
        else:
            S[:, :, 3] += wj * 0.06 * along
        if name == "index":
            S[:, :, 7] += wj * 0.04 * along
        if name == "ring":
            S[:, :, 7] -= wj * 0.04 * along
        if name == "little":
            S[:, :, 8] += wj * 0.06 * along
        a, b = axes[j]
        ba = b - a
        t = np.clip(((verts - a) @ ba) / (ba @ ba), 0.0, 1.0)
        radial = verts - (a + t[:, None] * ba)
        S[:, :, 5] += wj * 0.07 * radial
        frac = np.clip(((verts - r) @ u) / np.linalg.norm(tips[name] - r), 0.0, 1.0)
        S[:, :, 9] += wj * (-0.08 * frac[:, None] * radial)
    return S


@dataclass
class OpenHandMesh:
    """The right-hand rest mesh and its rig (everything the left hand is mirrored from)."""

    vertices: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    J_regressor: np.ndarray
    shapedirs: np.ndarray
    tip_vertices: tuple[int, ...]


@functools.lru_cache(maxsize=1)
def _dense_right() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The dense right-hand surface (marching cubes + smoothing) and its skinning weights."""
    prims = _primitives()
    verts, faces = _marching_cubes(prims)
    verts, faces = _smooth(verts, faces)
    W = _smooth_weights(_skin_weights(verts, prims), faces)
    return verts, faces, W


def _cache_file(detail: str) -> Path:
    """Where a built hand is kept between processes, named by this module's source and the versions of
    the libraries that shape it: a change to any of them builds afresh."""
    from importlib.metadata import PackageNotFoundError, version

    from handsynth.runtime import cache_dir

    key = hashlib.sha256(Path(__file__).read_bytes())
    for package in ("numpy", "scipy", "scikit-image", "trimesh", "fast-simplification"):
        try:
            key.update(f"{package}={version(package)}".encode())
        except PackageNotFoundError:
            key.update(package.encode())
    return cache_dir() / f"openhand-{detail}-{key.hexdigest()[:16]}.npz"


def _load_cached(path: Path) -> OpenHandMesh | None:
    try:
        with np.load(path) as saved:
            fields = {name: saved[name] for name in OpenHandMesh.__dataclass_fields__}
    except (OSError, KeyError, ValueError):
        return None  # not built yet on this machine (or a damaged file): build it
    fields["tip_vertices"] = tuple(int(i) for i in fields["tip_vertices"])
    return OpenHandMesh(**fields)


def _save_cached(path: Path, mesh: OpenHandMesh) -> None:
    """Write through a temp file and a rename: parallel processes never read half a file; a read-only
    cache only costs the next process the build."""
    try:
        with atomic_open(path) as f:
            np.savez(f, **{k: np.asarray(v) for k, v in mesh.__dict__.items()})
    except OSError:
        pass


def _decimate(verts: np.ndarray, faces: np.ndarray, n_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadric-error edge collapse (fast-simplification) down to ``n_faces``; keeps the surface closed."""
    import fast_simplification

    v, f = fast_simplification.simplify(verts, faces.astype(np.int32), target_count=n_faces, agg=DECIMATE_AGG)
    used = np.unique(f)  # drop vertices no face uses (none in practice), keeping order
    remap = np.full(len(v), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return np.asarray(v, dtype=np.float64)[used], remap[np.asarray(f, dtype=np.int64)]


def _transfer_weights(src_v: np.ndarray, src_w: np.ndarray, dst_v: np.ndarray, k: int = 6) -> np.ndarray:
    """Skinning weights of ``dst_v`` from the nearest dense vertices (inverse-distance, k nearest)."""
    from scipy.spatial import cKDTree

    d, idx = cKDTree(src_v).query(dst_v, k=k)
    inv = 1.0 / np.maximum(d, 1e-6)
    W = np.einsum("vk,vkj->vj", inv, src_w[idx])
    return W / W.sum(1, keepdims=True)


@functools.lru_cache(maxsize=2)
def build_right(detail: str = DEFAULT_DETAIL) -> OpenHandMesh:
    """The right OpenHand at ``detail`` (see :data:`DETAILS`). Built once per machine (~2 s, most of it
    importing trimesh and scipy, smoothing and decimating), then read back from the cache as the exact
    same arrays: every command that poses a hand starts that much sooner."""
    if detail not in DETAILS:
        from handsynth.errors import UserError

        raise UserError(f"OpenHand detail must be one of {tuple(DETAILS)}, got {detail!r}")
    path = _cache_file(detail)
    mesh = _load_cached(path)
    if mesh is None:
        mesh = _build_right(detail)
        _save_cached(path, mesh)
    return mesh


def _build_right(detail: str) -> OpenHandMesh:
    verts, faces, W = _dense_right()
    if DETAILS[detail] is not None:
        dense_v = verts
        verts, faces = _decimate(verts, faces, DETAILS[detail])
        W = _transfer_weights(dense_v, W, verts)
        # Fingertips: the coarse vertex nearest each public fingertip moves onto the dense surface point
        # nearest to it, so the 5 tip joints stay as close to MANO's as on the dense mesh.
        for t in REST_TIPS:
            i = int(np.argmin(np.linalg.norm(verts - t, axis=1)))
            verts[i] = dense_v[np.argmin(np.linalg.norm(dense_v - t, axis=1))]
    # Fingertip vertices: the surface point nearest to each public fingertip position.
    tips = tuple(int(np.argmin(np.linalg.norm(verts - t, axis=1))) for t in REST_TIPS)
    Jr = _joint_regressor(verts, REST_JOINTS)
    S = _shapedirs(verts, W)
    return OpenHandMesh(verts, faces, W, Jr, S, tips)


def resolve_detail(detail: str | None = None) -> str:
    """``detail``, else ``$HANDSYNTH_OPENHAND_DETAIL``, else :data:`DEFAULT_DETAIL`."""
    return detail or os.environ.get("HANDSYNTH_OPENHAND_DETAIL") or DEFAULT_DETAIL


def openhand_arrays(side: str = "right", detail: str | None = None) -> HandArrays:
    """OpenHand's arrays in the MANO schema; the left hand is the mirror image of the right."""
    return _openhand_arrays(side, resolve_detail(detail))


@functools.lru_cache(maxsize=4)
def _openhand_arrays(side: str, detail: str) -> HandArrays:
    m = build_right(detail)
    mean = HANDS_MEAN.copy()
    if side == "right":
        return HandArrays(
            v_template=m.vertices,
            shapedirs=m.shapedirs,
            posedirs=None,
            J_regressor=m.J_regressor,
            weights=m.weights,
            faces=m.faces,
            hands_mean=mean,
            tip_vertices=m.tip_vertices,
            side="right",
        )
    flip = np.array([-1.0, 1.0, 1.0])
    return HandArrays(
        v_template=m.vertices * flip,
        shapedirs=m.shapedirs * flip[None, :, None],
        posedirs=None,
        J_regressor=m.J_regressor,
        weights=m.weights,
        faces=m.faces[:, ::-1].copy(),
        hands_mean=(mean.reshape(15, 3) * np.array([1.0, -1.0, -1.0])).reshape(45),
        tip_vertices=m.tip_vertices,
        side="left",
    )
