"""Anatomical arms: the palm turns only as far as a forearm can, and the elbow leans to the hand's side.

The palm normal and arm direction are measured on the posed model's joints (skin.palm_normal, the
wrist -> middle-knuckle vector), not on the quantities the sampler set, so a wrong roll sign or axis
fails here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handsynth.errors import UserError
from handsynth.world import camera
from handsynth.world.scene import WorldConfig, WorldGenerator
from handsynth.world.skin import MIDDLE_MCP, WRIST, palm_normal


def _flat(v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """``v`` projected into the plane perpendicular to unit ``axis``, normalised."""
    v = v - (v @ axis) * axis
    return v / np.linalg.norm(v)


def _draws(arm_model: str, n: int = 80) -> list[tuple[str, np.ndarray]]:
    gen = WorldGenerator(
        WorldConfig(domain="wild", size=64, seed=0, maps=(), object_probability=0.0, arm_model=arm_model)
    )
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        side, o, p, b = gen.sample_articulated_hand(rng)
        with torch.no_grad():
            j = gen.model(side)(*(torch.tensor(x[None], dtype=torch.float32) for x in (o, p, b))).joints[0]
        out.append((side, j.double().numpy()))
    gen.release()
    return out


def _palm_turn_deg(side: str, j: np.ndarray) -> float:
    """Angle between the palm normal and the body's midline direction, about the forearm."""
    d = j[WRIST] - j[MIDDLE_MCP]
    d /= np.linalg.norm(d)

    def flat(v):
        v = v - (v @ d) * d
        return v / np.linalg.norm(v)

    return float(
        np.degrees(
            np.arccos(np.clip(flat(palm_normal(j, side)) @ flat(camera.medial_direction(side)), -1, 1))
        )
    )


def test_anatomical_palms_stay_within_the_forearms_turn_and_use_most_of_it():
    draws = _draws("anatomical")
    turns = np.array([_palm_turn_deg(s, j) for s, j in draws])
    assert turns.max() <= camera.PALM_TURN_LIMIT_DEG + 0.5
    assert turns.min() < 30 and turns.max() > 80  # the whole range is drawn, not one roll


def test_free_arms_turn_the_palm_all_the_way_round():
    turns = np.array([_palm_turn_deg(s, j) for s, j in _draws("free")])
    assert (turns > camera.PALM_TURN_LIMIT_DEG + 10).mean() > 0.15


def test_anatomical_elbows_lean_to_the_hands_own_side_of_the_image():
    """Person facing the camera: the right arm comes from the image's left (wrist -> elbow x < 0)."""
    draws = _draws("anatomical", 120)
    x = {
        s: np.mean(
            [
                (j[WRIST] - j[MIDDLE_MCP])[0] / np.linalg.norm(j[WRIST] - j[MIDDLE_MCP])
                for t, j in draws
                if t == s
            ]
        )
        for s in ("left", "right")
    }
    assert x["right"] < -0.1 and x["left"] > 0.1


def test_roll_towards_lands_on_the_asked_angle():
    rng = np.random.default_rng(1)
    for _ in range(20):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        n, t = rng.normal(size=3), rng.normal(size=3)
        want = rng.uniform(-np.pi, np.pi)
        turned = camera.axis_rotation(axis, camera.roll_towards(n, axis, t, want)) @ n
        ft, fn = _flat(t, axis), _flat(turned, axis)
        got = np.arctan2(axis @ np.cross(ft, fn), ft @ fn)
        assert np.angle(np.exp(1j * (got - want))) == pytest.approx(0.0, abs=1e-9)


def test_unknown_arm_model_is_one_clear_error():
    with pytest.raises(UserError, match="arm model"):
        WorldConfig(arm_model="elastic")
