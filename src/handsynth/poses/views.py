"""HandBooster's novel views: a grasp seen from other directions. The hand's orientation and the
object's pose are rotated together about the wrist by R = Rx·Ry·Rz, so the grasp itself (hand pose,
hand–object contact) is untouched and only the viewpoint changes; labels are re-posed and re-projected.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from handsynth.data.records import Sample
from handsynth.errors import UserError
from handsynth.poses.rigid import HandPoser, inside_image, move_scene, wrist_of
from handsynth.progress import progress

MODES = ("symmetric", "released")


def euler_xyz(angles_deg: np.ndarray) -> np.ndarray:
    """R = Rx(a)·Ry(b)·Rz(c) for angles in degrees."""
    a, b, c = np.radians(np.asarray(angles_deg, dtype=np.float64))
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rx @ ry @ rz


def view_angles(rng: np.random.Generator, max_deg: float, mode: str) -> np.ndarray:
    """Three angles (degrees): U(-max, max) per axis (``symmetric``) or U[0, max) (``released``, the
    released code's one-sided range, which shifts the mean orientation by max/2 per axis)."""
    if mode not in MODES:
        raise UserError(f"view mode {mode!r} is unknown; use one of {MODES}")
    low = -max_deg if mode == "symmetric" else 0.0
    return rng.uniform(low, max_deg, size=3)


def record_rng(seed: int, record_id: str) -> np.random.Generator:
    """A generator per record: the same views for a record whatever else the input holds."""
    return np.random.default_rng([seed, zlib.crc32(record_id.encode())])


@dataclass
class ViewCounts:
    """What ``novel_views`` did: views kept, views dropped (a hand left the image), records passed."""

    kept: int = 0
    dropped: int = 0
    passed: int = 0


def random_view(
    sample: Sample, rng: np.random.Generator, max_deg: float, mode: str, poser: HandPoser
) -> tuple[Sample, np.ndarray]:
    """One rotated copy of ``sample`` about its first hand's wrist, and the angles used."""
    angles = view_angles(rng, max_deg, mode)
    return move_scene(sample, euler_xyz(angles), wrist_of(sample, poser), poser), angles


def novel_views(
    samples: list[Sample],
    n_per_pose: int,
    max_deg: float,
    mode: str,
    seed: int,
    poser: HandPoser,
    counts: ViewCounts,
    step: dict,
) -> list[Sample]:
    """``n_per_pose`` views of every grasping record (ids ``<id>-view<k>``); others pass unchanged.

    A view whose hand leaves the image (a joint outside it or behind the camera) is dropped and
    counted, so a record may yield fewer than ``n_per_pose`` views.
    """
    if not any("grasping" in s.extra for s in samples):
        raise UserError(
            "no record carries a 'grasping' field, so none would get views: label them first with "
            "`handsynth poses grasp-status` (novel views are made of grasping frames only)"
        )
    out = []
    for s in progress(samples, desc="views", unit="record"):
        if not s.extra.get("grasping"):
            out.append(s)
            counts.passed += 1
            continue
        if not s.hands:
            raise UserError(f"record {s.id} is marked grasping but has no hand to rotate about")
        rng = record_rng(seed, s.id)
        for k in range(n_per_pose):
            view, angles = random_view(s, rng, max_deg, mode, poser)
            if not inside_image(view):
                counts.dropped += 1
                continue
            view.id = f"{s.id}-view{k}"
            info = {**step, "from": s.id, "view": k, "angles_deg": [float(a) for a in angles]}
            view.source = {
                **view.source,
                "handbooster": {**view.source.get("handbooster", {}), "views": info},
            }
            out.append(view)
            counts.kept += 1
    return out
