"""Plausible random hand poses and camera placements (the ``handsynth poses sample`` library).

Why not uniform joint angles: uniformly drawn angles give claw-like, self-intersecting hands. Here a
pose is drawn from per-joint anatomical limits (:data:`FINGER_LIMITS`, :data:`THUMB_LIMITS`; flexion,
abduction, twist in degrees, right hand, signs as in :mod:`handsynth.hand.poses`) with the couplings
that real hands have: one overall curl shared by the fingers (with per-finger deviations and an
occasional independent finger, so pointing and peace-like poses occur), neighbouring fingers kept
within a tendon-coupling distance, DIP flexion about two thirds of PIP flexion (Rijpkema & Girard
1991), spread shrinking as fingers curl, thumb opposition growing with its flexion. Poses whose bones
of different digits come closer than their radii allow are redrawn.

Every sample uses its own generator ``default_rng([seed, index])``, so a sample depends only on the
seed and its index: runs are reproducible and can be split or resumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from handsynth.hand.openhand import CHAINS, RADII
from handsynth.hand.poses import anatomical_to_pose

# (low, high) degrees per level: 1 = MCP, 2 = PIP, 3 = DIP; rows flexion, abduction, twist.
FINGER_LIMITS = {
    1: ((-20.0, 90.0), (-20.0, 20.0), (-8.0, 8.0)),
    2: ((0.0, 110.0), (-4.0, 4.0), (-6.0, 6.0)),
    3: ((-5.0, 80.0), (-4.0, 4.0), (-6.0, 6.0)),
}
# MCP abduction per finger (positive = towards the thumb) and its spread at an open hand.
FINGER_ABDUCTION = {
    "index": (-10.0, 20.0),
    "middle": (-15.0, 15.0),
    "ring": (-15.0, 10.0),
    "little": (-25.0, 10.0),
}
FINGER_SPREAD = {"index": 12.0, "middle": 0.0, "ring": -8.0, "little": -18.0}
THUMB_LIMITS = {
    1: ((-20.0, 60.0), (-15.0, 45.0), (-15.0, 60.0)),  # CMC: palmar abduction, radial abduction, pronation
    2: ((-10.0, 60.0), (-8.0, 8.0), (-10.0, 10.0)),  # MCP
    3: ((-15.0, 80.0), (-4.0, 4.0), (-6.0, 6.0)),  # IP
}
FINGERS4 = ("index", "middle", "ring", "little")


def _limits(digit: str, level: int) -> np.ndarray:
    if digit == "thumb":
        return np.array(THUMB_LIMITS[level])
    lim = np.array(FINGER_LIMITS[level])
    if level == 1:
        lim[1] = FINGER_ABDUCTION[digit]
    return lim


def limits_table() -> np.ndarray:
    """(15, 3, 2) low/high degrees per posed joint (MANO hand_pose order) and angle."""
    out = np.zeros((15, 3, 2))
    for digit, (chain, _tip) in CHAINS.items():
        for level, j in enumerate(chain, start=1):
            out[j - 1] = _limits(digit, level)
    return out


def sample_angles(rng: np.random.Generator) -> np.ndarray:
    """(15, 3) anatomical angles of one plausible right hand (degrees, within :func:`limits_table`)."""
    angles = np.zeros((15, 3))
    g = rng.beta(0.8, 0.8)
    curl = {f: float(np.clip(g + rng.normal(0, 0.22), 0, 1)) for f in FINGERS4}
    for f in FINGERS4:
        if rng.random() < 0.12:  # an independent finger (pointing, peace, ...)
            curl[f] = float(rng.choice([0.0, 1.0]) * 0.85 + rng.random() * 0.15)
    # Tendon coupling: ring follows its neighbours, little follows ring.
    curl["ring"] = float(np.clip(curl["ring"], 0.5 * (curl["middle"] + curl["little"]) - 0.45, 1.0))
    curl["ring"] = float(np.clip(curl["ring"], 0.0, 0.5 * (curl["middle"] + curl["little"]) + 0.45))
    curl["little"] = float(np.clip(curl["little"], curl["ring"] - 0.5, curl["ring"] + 0.5))
    spread = rng.uniform(-0.3, 1.0)
    for f in FINGERS4:
        c = curl[f]
        chain = CHAINS[f][0]
        mcp = -10 + 95 * c + rng.normal(0, 7)
        pip = 105 * c + rng.normal(0, 9)
        dip = 0.67 * pip + rng.normal(0, 6)
        abd = spread * FINGER_SPREAD[f] * (1 - 0.8 * c) + rng.normal(0, 3)
        angles[chain[0] - 1] = (mcp, abd, rng.normal(0, 3))
        angles[chain[1] - 1] = (pip, rng.normal(0, 1.5), rng.normal(0, 2))
        angles[chain[2] - 1] = (dip, rng.normal(0, 1.5), rng.normal(0, 2))
    chain = CHAINS["thumb"][0]
    flex = rng.uniform(-15, 55)
    angles[chain[0] - 1] = (flex, rng.uniform(-10, 40), 0.8 * max(flex, 0) + rng.normal(5, 10))
    mcp = rng.uniform(-5, 55)
    angles[chain[1] - 1] = (mcp, rng.normal(0, 3), rng.normal(0, 4))
    angles[chain[2] - 1] = (0.5 * mcp + rng.uniform(-15, 45), rng.normal(0, 1.5), rng.normal(0, 2))
    lim = limits_table()
    return np.clip(angles, lim[..., 0], lim[..., 1])


# Bones (start joint, end joint) in OpenPose indices per digit, and their radius, for the collision test.
_DIGIT_BONES = {
    f: [(1 + 4 * i + k, 2 + 4 * i + k) for k in range(3)] for i, f in enumerate(("thumb",) + FINGERS4)
}


def _segment_distance(p1, q1, p2, q2) -> float:
    """Closest distance between segments p1-q1 and p2-q2."""
    d1, d2, r = q1 - p1, q2 - p2, p1 - p2
    a, e, f = d1 @ d1, d2 @ d2, d2 @ r
    c, b = d1 @ r, d1 @ d2
    den = a * e - b * b
    s = np.clip((b * f - c * e) / den, 0, 1) if den > 1e-12 else 0.0
    t = np.clip((b * s + f) / e, 0, 1)
    s = np.clip((b * t - c) / a, 0, 1)
    return float(np.linalg.norm(p1 + d1 * s - (p2 + d2 * t)))


def digits_collide(joints: np.ndarray, scale: float = 0.7) -> bool:
    """True if bones of two different digits come closer than ``scale`` x the sum of their radii."""
    names = list(_DIGIT_BONES)
    for i, fa in enumerate(names):
        for fb in names[i + 1 :]:
            for ka, (a0, a1) in enumerate(_DIGIT_BONES[fa]):
                for kb, (b0, b1) in enumerate(_DIGIT_BONES[fb]):
                    if ka == 0 and kb == 0 and fa != "thumb":
                        continue  # neighbouring proximal phalanges touch at the web by design
                    lim = scale * (RADII[fa][ka + 1] + RADII[fb][kb + 1])
                    if _segment_distance(joints[a0], joints[a1], joints[b0], joints[b1]) < lim:
                        return True
    return False


def sample_hand_pose(
    rng: np.random.Generator, model: torch.nn.Module | None = None, side: str = "right", tries: int = 30
) -> np.ndarray:
    """(45,) absolute axis-angle of one plausible pose, collision-checked with ``model`` when given."""
    pose = anatomical_to_pose(sample_angles(rng), side=side)
    if model is None:
        return pose
    for _ in range(tries):
        with torch.no_grad():
            hp = torch.as_tensor(pose, dtype=torch.float32)[None] - model.hand_mean
            joints = model(hand_pose=hp, joints_only=True).joints[0].double().numpy()
        if not digits_collide(joints):
            return pose
        pose = anatomical_to_pose(sample_angles(rng), side=side)
    return pose


@dataclass
class SceneConfig:
    """How hands are framed: square image, field of view and how much of the image they fill."""

    size: int = 512
    fov_deg: tuple[float, float] = (40.0, 65.0)
    fill: tuple[float, float] = (0.35, 0.8)  # fraction of the image the hand(s) span
    margin: float = 0.03  # fraction of the image kept free at each border
    two_hands: bool = False
    beta_std: float = 1.0


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.random(random_state=rng).as_rotvec()


@dataclass
class PlacedHand:
    side: str
    global_orient: np.ndarray
    hand_pose: np.ndarray
    betas: np.ndarray
    transl: np.ndarray
    vertices: np.ndarray
    joints: np.ndarray


def _pose_hand(model, go, hp, betas) -> tuple[np.ndarray, np.ndarray]:
    def t(x):
        return torch.as_tensor(np.asarray(x), dtype=torch.float32)[None]

    with torch.no_grad():
        out = model(global_orient=t(go), hand_pose=t(hp), betas=t(betas))
    return out.vertices[0].double().numpy(), out.joints[0].double().numpy()


def _min_distance(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.spatial import cKDTree

    return float(cKDTree(a[::4]).query(b[::4])[0].min())


def sample_scene(
    rng: np.random.Generator, models: dict[str, torch.nn.Module], cfg: SceneConfig
) -> tuple[np.ndarray, list[PlacedHand]]:
    """One camera ``K`` and one or two posed hands fully inside the image (camera frame, metres)."""
    sides = ["right", "left"] if cfg.two_hands else [str(rng.choice(["right", "left"]))]
    betas = np.clip(rng.normal(0, cfg.beta_std, 10), -2.5, 2.5)
    hands = []
    for side in sides:
        model = models[side]
        pose = sample_hand_pose(rng, model, side)
        hp = pose - model.hand_mean.double().numpy()
        go = _random_rotation(rng)
        v, j = _pose_hand(model, go, hp, betas)
        hands.append(PlacedHand(side, go, hp, betas.copy(), np.zeros(3), v, j))
    # Centre each hand at the origin; a second hand goes beside the first, never through it.
    for h in hands:
        c = 0.5 * (h.vertices.min(0) + h.vertices.max(0))
        h.transl = -c
    if len(hands) == 2:
        r = [0.5 * np.linalg.norm(h.vertices.max(0) - h.vertices.min(0)) for h in hands]
        ang = rng.normal(0.0, 0.5)
        direction = np.array([np.cos(ang), np.sin(ang), rng.normal(0, 0.2)])
        direction /= np.linalg.norm(direction)
        sep = (r[0] + r[1]) * rng.uniform(0.55, 0.95)
        for _ in range(20):
            off = 0.5 * sep * direction
            a = hands[0].vertices + hands[0].transl - off
            b = hands[1].vertices + hands[1].transl + off
            if _min_distance(a, b) > 0.008:
                break
            sep *= 1.15
        hands[0].transl = hands[0].transl - off
        hands[1].transl = hands[1].transl + off
    size = cfg.size
    fov = np.radians(rng.uniform(*cfg.fov_deg))
    f = 0.5 * size / np.tan(0.5 * fov)
    K = np.array([[f, 0.0, size / 2], [0.0, f, size / 2], [0.0, 0.0, 1.0]])
    pts = np.concatenate([h.vertices + h.transl for h in hands])
    lo_px, hi_px = cfg.margin * size, (1 - cfg.margin) * size
    fill = rng.uniform(*cfg.fill)
    for _ in range(50):
        ext = (pts[:, :2].max(0) - pts[:, :2].min(0)).max()
        z = f * ext / (fill * size) + (pts[:, 2].max() - pts[:, 2].min()) / 2
        cam = pts + np.array([0.0, 0.0, z])
        uv = cam[:, :2] / cam[:, 2:3] * f + size / 2
        lo, hi = uv.min(0), uv.max(0)
        slack_lo, slack_hi = lo_px - lo, hi_px - hi  # allowed shift range per axis: [slack_lo, slack_hi]
        if np.all(slack_lo <= slack_hi) and cam[:, 2].min() > 0.05:
            shift_px = rng.uniform(slack_lo, slack_hi)
            shift = np.append(shift_px * z / f, 0.0)
            uv2 = (cam + shift)[:, :2] / (cam + shift)[:, 2:3] * f + size / 2
            if uv2.min() >= lo_px - 1e-6 and uv2.max() <= hi_px + 1e-6:
                for h in hands:
                    h.transl = h.transl + np.array([0.0, 0.0, z]) + shift
                break
        fill *= 0.93
    else:  # pragma: no cover - the shrinking fill always converges
        raise RuntimeError("could not frame the hands inside the image")
    for h in hands:
        h.vertices = h.vertices + h.transl
        h.joints = h.joints + h.transl
    return K, hands


def sample_records(
    n: int,
    seed: int,
    models: dict[str, torch.nn.Module],
    cfg: SceneConfig,
    start: int = 0,
    progress: bool = True,
) -> list:
    """``n`` dataset records (:class:`handsynth.data.records.Sample`) of random hands, reproducible by seed."""
    from handsynth.data.records import Hand, Sample
    from handsynth.pinhole import bbox_from_points, project
    from handsynth.progress import progress as progress_bar

    flat = {bool(getattr(m, "flat_hand_mean", False)) for m in models.values()}
    if len(flat) > 1:
        raise ValueError("the right and left hand models disagree on flat_hand_mean")
    flat_hand_mean = flat.pop() if flat else False
    out = []
    for i in progress_bar(range(start, start + n), desc="poses", unit="pose", disable=not progress):
        rng = np.random.default_rng([seed, i])
        K, hands = sample_scene(rng, models, cfg)
        recs = []
        for h in hands:
            uv_j = project(h.joints, K)
            recs.append(
                Hand(
                    side=h.side,
                    model=models[h.side].kind,
                    global_orient=[float(x) for x in h.global_orient],
                    hand_pose=[float(x) for x in h.hand_pose],
                    betas=[float(x) for x in h.betas],
                    transl=[float(x) for x in h.transl],
                    joints_3d=h.joints.tolist(),
                    joints_2d=uv_j.tolist(),
                    bbox=bbox_from_points(project(h.vertices, K)),
                )
            )
        out.append(
            Sample(
                id=f"{seed}_{i:07d}",
                width=cfg.size,
                height=cfg.size,
                K=K.tolist(),
                hands=recs,
                prompt="",
                source={
                    "generator": "handsynth poses sample",
                    "seed": seed,
                    "index": i,
                    # how hand_pose is read (docs/format.md): relative to MANO's mean pose unless True
                    "flat_hand_mean": flat_hand_mean,
                },
            )
        )
    return out
