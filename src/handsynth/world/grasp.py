"""A simple power grasp sized to the held object: every finger curls towards the palm.

The world needs a hand that plausibly holds a cup or a phone without running grasp synthesis (that is
HandBooster's job, in ``handsynth.poses``). The grasp is written in anatomical angles (flexion /
abduction per joint, :mod:`handsynth.hand.poses`) between the hand model's "grasp" and "fist" poses:
the thinner the object, the tighter the curl.
"""

from __future__ import annotations

import numpy as np

from handsynth.hand.poses import anatomical_to_pose, spec_to_angles


def grip_curl(grip_radius: float) -> float:
    """0 (wide open grasp) .. 1 (closed fist) for an object of ``grip_radius`` metres."""
    return float(np.clip((0.05 - grip_radius) / 0.045, 0.0, 1.0))


def grasp_pose(
    side: str, grip_radius: float, rng: np.random.Generator, mean: np.ndarray | None = None
) -> np.ndarray:
    """``hand_pose`` (45,) of a power grasp around an object of ``grip_radius`` metres.

    ``mean``: the model's ``hand_mean`` (subtracted, as :func:`handsynth.hand.poses.canonical_pose` does).
    """
    c = grip_curl(grip_radius)
    spec = {}
    for i, digit in enumerate(("index", "middle", "ring", "little")):
        mcp = 40 + 45 * c + 5 * i + rng.normal(0, 6)
        pip = 50 + 45 * c + rng.normal(0, 6)
        dip = 25 + 30 * c + rng.normal(0, 5)
        spec[digit] = (mcp, pip, dip, rng.normal(0, 4) - 2 * i)
    spec["thumb"] = (
        40 + 10 * c + rng.normal(0, 6),
        5 + 10 * (1 - c) + rng.normal(0, 5),
        50 + rng.normal(0, 6),
        15 + 20 * c + rng.normal(0, 5),
        15 + 25 * c + rng.normal(0, 5),
    )
    pose = anatomical_to_pose(spec_to_angles(spec), side=side)
    if mean is not None:
        pose = pose - np.asarray(mean, dtype=np.float64).reshape(45)
    return pose
