"""Grasp validation (HandBooster keeps only physically plausible synthesised grasps):

(i) contact: the thumb and at least ``min_contacts − 1`` other digits have a contact pad (the candidate
regions of :func:`grasp_energy.contact_regions`) within ``contact_mm`` of the object surface (or inside);
(ii) hand ∩ object volume below ``max_intersection_cm3``: voxel centres (``voxel_mm``) inside the
object's SDF and inside the closed hand mesh (generalised winding number; MANO's wrist opening is
closed by a fan over its boundary loop); counting stops just past the limit, so a rejected grasp's
``intersection_cm3`` is a lower bound;
(iii) no self-penetration: no two digits' bone capsules overlap (:func:`priors.digits_collide`), or with
``exact`` no two digits' mesh triangles cross (:mod:`handsynth.poses.self_penetration`, python-fcl).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import torch

from handsynth.poses.grasp_energy import DIGITS, ContactRegions, contact_regions
from handsynth.poses.sdf import SDFGrid, winding_number
from handsynth.poses.self_penetration import penetrating_segments, vertex_normals


@dataclass(frozen=True)
class ValidationRule:
    contact_mm: float = 5.0
    min_contacts: int = 2
    max_intersection_cm3: float = 1.0
    voxel_mm: float = 2.0
    exact: bool = False  # self-penetration by the mesh triangle test (python-fcl), not bone capsules
    exact_tolerance_mm: float = 1.5  # each surface moved in by this much first (skin gives)


@dataclass
class Verdict:
    contact_digits: list[str]
    volume_cm3: float
    self_collision: bool
    contact_ok: bool
    volume_ok: bool
    penetrating: list[tuple[str, str]] | None = None  # segment pairs of the exact test (None: capsules)

    @property
    def valid(self) -> bool:
        return self.contact_ok and self.volume_ok and not self.self_collision

    def to_dict(self) -> dict:
        out = {
            "contact_digits": self.contact_digits,
            "intersection_cm3": round(self.volume_cm3, 4),
            "self_collision": self.self_collision,
            "valid": self.valid,
        }
        if self.penetrating is not None:
            out["penetrating_segments"] = [list(p) for p in self.penetrating]
        return out


def closed_faces(faces: np.ndarray) -> np.ndarray:
    """``faces`` plus a fan over every boundary loop (the wrist opening), oriented like the mesh, so the
    winding number is 1 inside the hand. A closed mesh comes back unchanged."""
    directed = {(int(a), int(b)) for f in faces for a, b in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0]))}
    nxt = {b: a for a, b in directed if (b, a) not in directed}  # the cap walks boundary edges backwards
    caps, seen = [], set()
    for start in list(nxt):
        if start in seen:
            continue
        loop, v = [], start
        while v not in seen and v in nxt:
            seen.add(v)
            loop.append(v)
            v = nxt[v]
        caps += [(loop[0], loop[i], loop[i + 1]) for i in range(1, len(loop) - 1)]
    return np.concatenate([faces, np.asarray(caps, dtype=np.int64).reshape(-1, 3)])


@cache
def _hand_topology(model: torch.nn.Module) -> tuple[torch.Tensor, ContactRegions]:
    return torch.as_tensor(closed_faces(model.faces)), contact_regions(model)


def intersection_volume(
    hand_vertices: np.ndarray,
    hand_faces: torch.Tensor,
    sdf: SDFGrid,
    voxel: float,
    stop_above: float = np.inf,
) -> float:
    """Volume (m³) of the voxel centres inside both the object (SDF < 0) and the closed hand mesh;
    ``hand_vertices`` in the object frame. Counting stops once past ``stop_above`` (a lower bound then)."""
    from scipy.spatial import cKDTree

    lo = np.maximum(hand_vertices.min(0), sdf.lo.numpy())
    hi = np.minimum(hand_vertices.max(0), sdf.hi.numpy())
    if np.any(hi <= lo):
        return 0.0
    axes = [np.arange(lo[k] + voxel / 2, hi[k], voxel) for k in range(3)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    if len(pts) == 0:
        return 0.0
    with torch.no_grad():
        d, _ = sdf.query(torch.as_tensor(pts, dtype=torch.float32))
    pts = pts[d.numpy() < 0]
    # A point inside the hand lies within a finger's or the palm's half thickness (< 15 mm) of a vertex
    # and behind it (against its normal); the winding number decides only for those candidates.
    dist, nearest = cKDTree(hand_vertices).query(pts, distance_upper_bound=0.015)
    hit = dist < 0.015
    pts, nearest = pts[hit], nearest[hit]
    tris = torch.as_tensor(hand_vertices, dtype=torch.float32)[hand_faces]
    normals = vertex_normals(hand_vertices, hand_faces.numpy())
    pts = pts[((pts - hand_vertices[nearest]) * normals[nearest]).sum(1) < voxel]
    if len(pts) == 0:
        return 0.0
    # Random order, stopping once past ``stop_above``: a hand through the object is rejected quickly.
    pts = torch.as_tensor(pts[np.random.default_rng(0).permutation(len(pts))], dtype=torch.float32)
    count = 0
    for s in range(0, len(pts), 512):
        count += int((winding_number(pts[s : s + 512], tris) > 0.5).sum())
        if count * voxel**3 > stop_above:
            break
    return count * voxel**3


def validate_hand(
    model: torch.nn.Module, vertices: np.ndarray, joints: np.ndarray, sdf: SDFGrid, rule: ValidationRule
) -> Verdict:
    """The :class:`Verdict` of one hand (``vertices``, OpenPose ``joints`` in the object frame)."""
    from handsynth.hand.priors import digits_collide

    faces, regions = _hand_topology(model)
    with torch.no_grad():
        d, _ = sdf.query(torch.as_tensor(vertices[regions.vertices.numpy()], dtype=torch.float32))
    near = np.zeros(len(regions.names), dtype=bool)
    np.logical_or.at(near, regions.region.numpy(), d.numpy() <= rule.contact_mm / 1000)
    touching = sorted({DIGITS[int(regions.digit[r])] for r in np.flatnonzero(near)}, key=DIGITS.index)
    limit = rule.max_intersection_cm3 * 1e-6
    volume = intersection_volume(vertices, faces, sdf, rule.voxel_mm / 1000, stop_above=limit) * 1e6
    pairs = penetrating_segments(model, vertices, rule.exact_tolerance_mm / 1000) if rule.exact else None
    return Verdict(
        contact_digits=touching,
        volume_cm3=volume,
        self_collision=bool(pairs) if rule.exact else bool(digits_collide(joints)),
        contact_ok="thumb" in touching and len(touching) >= rule.min_contacts,
        volume_ok=volume < rule.max_intersection_cm3,
        penetrating=pairs,
    )
