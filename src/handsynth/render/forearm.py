"""A forearm (and sleeve) attached at the wrist, so world hands are not floating cut-offs.

The tube starts inside the hand mesh's open wrist, fitted to that opening (its centre and its
elliptical cross-section measured from the hand's wrist-most vertices), and widens towards the elbow.
Past a random point it becomes a slightly wider sleeve of cloth. It is drawn in the photograph only:
the hand's labels (joints, bbox, condition maps) never include it; only the `body` map draws it
(from the record's ``body.forearms``). It lives in render so that map can rebuild it (render must not
import world, which imports render); ``handsynth.world.forearm`` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WRIST, INDEX_MCP, MIDDLE_MCP, PINKY_MCP = 0, 5, 9, 17  # OpenPose-21 joint indices


@dataclass
class Forearm:
    """Tube mesh in the camera frame, its sRGB albedo, and which vertices are sleeve."""

    vertices: np.ndarray
    faces: np.ndarray
    sleeve: np.ndarray  # (V,) bool


def arm_direction(joints: np.ndarray) -> np.ndarray:
    """Unit vector from the middle-finger knuckle through the wrist: the way the forearm goes."""
    j = np.asarray(joints, np.float64)
    d = j[WRIST] - j[MIDDLE_MCP]
    return d / np.linalg.norm(d)


def make_forearm(
    hand_vertices: np.ndarray,
    joints: np.ndarray,
    length: float = 1.0,
    sleeve_start: float | None = 0.15,
    rings: int = 16,
    sections: int = 18,
) -> Forearm:
    """Build the arm tube for a posed hand (camera frame, metres).

    ``sleeve_start``: distance from the wrist where the sleeve begins (None: bare arm).
    """
    v = np.asarray(hand_vertices, np.float64)
    j = np.asarray(joints, np.float64)
    d = arm_direction(j)
    across = j[PINKY_MCP] - j[INDEX_MCP]
    across -= d * (across @ d)
    across /= np.linalg.norm(across)
    thick = np.cross(d, across)

    # The wrist opening: hand vertices within 1 cm of the most arm-ward one.
    s = (v - j[WRIST]) @ d
    ring = v[s > s.max() - 0.01]
    center = ring.mean(axis=0)
    r_across = max(float(np.abs((ring - center) @ across).max()), 0.015)
    r_thick = max(float(np.abs((ring - center) @ thick).max()), 0.01)
    start = center - 0.02 * d  # overlap the hand so no seam shows

    # Stations along the arm: (distance, radius scale, is_sleeve).
    ts = list(np.linspace(0.0, length, rings))
    if sleeve_start is not None:
        ts += [sleeve_start - 1e-4, sleeve_start]
    ts = np.array(sorted(set(ts)))
    widen = (
        1.0 + 0.6 * np.clip(ts / 0.22, 0.0, 1.0) + 0.25 * np.clip((ts - 0.3) / 0.2, 0.0, 1.0)
    )  # forearm, upper arm
    is_sleeve = np.zeros(len(ts), bool) if sleeve_start is None else ts >= sleeve_start
    widen = widen * np.where(is_sleeve, 1.25, 0.97)

    theta = np.linspace(0.0, 2 * np.pi, sections, endpoint=False)
    circle = np.cos(theta)[:, None] * across[None] * r_across + np.sin(theta)[:, None] * thick[None] * r_thick
    verts = (start[None, None] + ts[:, None, None] * d[None, None]) + widen[:, None, None] * circle[None]
    verts = verts.reshape(-1, 3)
    faces = []
    for i in range(len(ts) - 1):
        for k in range(sections):
            a, b = i * sections + k, i * sections + (k + 1) % sections
            c, e = a + sections, b + sections
            faces += [[a, b, c], [b, e, c]]  # counter-clockwise seen from outside
    # Close the elbow end with a fan around a centre vertex.
    end = len(verts)
    verts = np.vstack([verts, start + length * d])
    last = (len(ts) - 1) * sections
    faces += [[last + k, last + (k + 1) % sections, end] for k in range(sections)]
    sleeve = np.append(np.repeat(is_sleeve, sections), is_sleeve[-1])
    return Forearm(verts, np.asarray(faces, np.int64), sleeve)
