"""Objects resting on a table: the start of HandBooster's grasp synthesis (a hand grasps the object
where it lies). The released code drops each object in a physics engine (SAPIEN); here no engine is
needed: ``trimesh.poses.compute_stable_poses`` gives the faces an object can rest on and how likely
each is (the quasi-static probability of landing on it), and a rest pose is one of them drawn by that
probability, turned by a uniform yaw about the table normal.

Records are object-only (``hands: []``), seen by a fixed camera looking down at the table at 45°
from 0.6 m; ``support_plane`` gives the table (camera frame) for a later grasp search.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

import numpy as np

from handsynth.data.records import WORLD_MESH_PREFIX, Sample
from handsynth.errors import UserError
from handsynth.objects.meshes import load_mesh, resolve_mesh
from handsynth.objects.shapes import SHAPES
from handsynth.pinhole import intrinsics
from handsynth.progress import progress

log = logging.getLogger(__name__)

MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")
YCB_MESH = "textured_simple.obj"  # the YCB model file the DexYCB/HO3D importers name
VIEW_SIZE = 256
VIEW_DISTANCE_M = 0.6
VIEW_ELEVATION_DEG = 45.0


def object_catalogue(spec: str) -> list[tuple[str, str]]:
    """``(name, mesh reference)`` of every object: ``world`` = the procedural shapes; a folder = each
    sub-folder's ``textured_simple.obj`` (YCB layout) or only mesh file, and each loose mesh file."""
    if spec == "world":
        return [(k, f"{WORLD_MESH_PREFIX}{k}") for k in SHAPES]
    root = Path(spec)
    if not root.is_dir():
        raise UserError(f"--objects {spec}: not a folder; pass a folder of object meshes or 'world'")
    found = []
    for entry in sorted(root.iterdir()):
        if entry.is_file() and entry.suffix.lower() in MESH_SUFFIXES:
            found.append((entry.stem, str(entry.resolve())))
        elif entry.is_dir():
            meshes = sorted(p for p in entry.iterdir() if p.suffix.lower() in MESH_SUFFIXES)
            pick = (
                entry / YCB_MESH
                if (entry / YCB_MESH).is_file()
                else (meshes[0] if len(meshes) == 1 else None)
            )
            if pick is None:
                log.warning("%s: no %s and not exactly one mesh file; skipped", entry, YCB_MESH)
                continue
            found.append((entry.name, str(pick.resolve())))
    if not found:
        raise UserError(
            f"--objects {spec} holds no meshes ({', '.join(MESH_SUFFIXES)} files, or NAME/{YCB_MESH})"
        )
    return found


def table_camera() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(K, R_ct, t_ct)``: intrinsics and the table→camera transform of the fixed viewing camera.

    Table frame: z up, the object's resting point at the origin. The camera sits behind (−y) and above
    it, looking at the origin; OpenCV axes (x right, y down, z forward).
    """
    phi = np.radians(VIEW_ELEVATION_DEG)
    c = VIEW_DISTANCE_M * np.array([0.0, -np.cos(phi), np.sin(phi)])
    z = -c / np.linalg.norm(c)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R_ct = np.stack([x, y, z])  # rows: camera axes in the table frame
    return intrinsics(VIEW_SIZE, VIEW_SIZE), R_ct, -R_ct @ c


@cache
def stable_poses(key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(transforms (P, 4, 4), probabilities (P,))`` of a resolved mesh: each transform puts the mesh
    on the plane z = 0 with its centre of mass above the origin."""
    import trimesh

    mesh = load_mesh(key, f"object mesh {key}")
    transforms, probs = trimesh.poses.compute_stable_poses(mesh)
    probs = np.asarray(probs, dtype=np.float64)
    if len(transforms) == 0 or probs.sum() <= 0:
        raise UserError(f"object mesh {key}: no stable resting pose found (is it a closed solid?)")
    return np.asarray(transforms, dtype=np.float64), probs / probs.sum()


def rest_records(objects: list[tuple[str, str]], n: int, seed: int, step: dict) -> list[Sample]:
    """``n`` rest poses per object (ids ``<name>-rest<k>``), reproducible by seed and object name."""
    K, R_ct, t_ct = table_camera()
    plane = {"normal": (R_ct @ [0.0, 0.0, 1.0]).tolist(), "point": t_ct.tolist()}
    out = []
    for k, (name, ref) in enumerate(progress(objects, desc="rest poses", unit="object")):
        key = resolve_mesh(ref, None, f"object {name!r}")
        transforms, probs = stable_poses(key)
        rng = np.random.default_rng([seed, k])
        picks = rng.choice(len(probs), size=n, p=probs)
        yaws = rng.uniform(0.0, 2 * np.pi, size=n)
        for i, (p, yaw) in enumerate(zip(picks, yaws)):
            c, s = np.cos(yaw), np.sin(yaw)
            Rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
            R = R_ct @ Rz @ transforms[p, :3, :3]
            t = R_ct @ (Rz @ transforms[p, :3, 3]) + t_ct
            info = {
                **step,
                "stable_pose": int(p),
                "probability": float(probs[p]),
                "yaw_deg": float(np.degrees(yaw)),
            }
            out.append(
                Sample(
                    id=f"{name}-rest{i:06d}",
                    width=VIEW_SIZE,
                    height=VIEW_SIZE,
                    K=K.tolist(),
                    hands=[],
                    source={"generator": "handsynth poses rest", "seed": seed, "handbooster": {"rest": info}},
                    extra={
                        "objects": [{"name": name, "mesh": ref, "pose": np.c_[R, t].tolist()}],
                        "support_plane": plane,
                    },
                )
            )
    return out
