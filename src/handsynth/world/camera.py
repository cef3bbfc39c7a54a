"""Camera of the micro world: field of view, where the arm comes from, and how big the hand appears.

The two domains differ here the most (AttentionHand's lab-vs-wild gap):

- ``lab`` (InterHand2.6M-like): one fixed narrow field of view, the hand centred and filling 55-80 % of
  the frame, seen from any side (a capture dome has cameras all around).
- ``wild`` (COCO-like): a random phone-camera field of view, the hand anywhere and only 22-45 % of the
  frame, the arm usually entering from below or the sides, as when a person faces the camera.

Placement only translates the posed hand (``transl``), so the pose sampler's articulation and shape
are kept as sampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handsynth.pinhole import intrinsics, project

LAB_FOV_DEG = 30.0
WILD_FOV_DEG = (45.0, 70.0)
LAB_HAND_FRACTION = (0.55, 0.8)
WILD_HAND_FRACTION = (0.22, 0.45)


@dataclass
class Framing:
    """Intrinsics and the wanted hand size / position in the image."""

    K: np.ndarray  # (3, 3)
    fov_deg: float
    hand_fraction: float  # wanted longest side of the hand box / image side
    center: tuple[float, float]  # wanted centre of the hand box, pixels (before clamping into the frame)


def sample_framing(
    domain: str, rng: np.random.Generator, size: int, hand_fraction: tuple[float, float] | None = None
) -> Framing:
    """Field of view, hand size and hand position for one image of ``domain``.

    ``hand_fraction`` overrides the domain's hand-size range (a hand-centric world a small model can
    learn: the micro benchmark v2 frames wild hands at >= 40 % of the image side).
    """
    if domain == "lab":
        fov = LAB_FOV_DEG
        frac = float(rng.uniform(*(hand_fraction or LAB_HAND_FRACTION)))
        center = tuple(size / 2 + rng.normal(0, 0.03 * size, 2))
    else:
        fov = float(rng.uniform(*WILD_FOV_DEG))
        frac = float(rng.uniform(*(hand_fraction or WILD_HAND_FRACTION)))
        center = tuple(rng.uniform(0, size, 2))
    return Framing(intrinsics(size, size, fov), fov, frac, (float(center[0]), float(center[1])))


# Anatomical arms (WorldConfig.arm_model): how far the palm may turn from facing the body's midline.
# Forearm pronation and supination each reach ~80-90 deg from the thumb-up neutral (textbook ranges); a
# little shoulder rotation adds the rest. With a full circle, a hand's silhouettes are as often seen
# mirrored (from the back) as not, so only chirality shows the side; with the limit they are not.
PALM_TURN_LIMIT_DEG = 100.0
# wild, anatomical: the wrist -> elbow direction leans this far (radians) towards the hand's own side
ARM_SIDE_LEAN = 0.35


def medial_direction(side: str) -> np.ndarray:
    """Camera-frame direction from a hand towards the body's midline, for a person facing the camera:
    their right hand is on the image's left, so its midline lies towards +x (and the left hand's, -x)."""
    return np.array([1.0 if side == "right" else -1.0, 0.0, 0.0])


def sample_arm_direction(domain: str, rng: np.random.Generator, side: str | None = None) -> np.ndarray:
    """Unit direction (camera frame) from the wrist towards the elbow.

    Never much towards the camera (``z >= -0.3``), so the forearm does not cover the hand. In ``wild``
    the arm mostly points down or sideways in the image (a person facing the camera); in ``lab`` any
    image-plane direction is equally likely. With ``side`` (anatomical arms, wild only), the elbow also
    leans out to the hand's own side of the body: the image's left for a right hand.
    """
    if domain == "lab":
        angle = rng.uniform(0, 2 * np.pi)
        z = rng.uniform(-0.3, 0.8)
    else:
        lean = 0.0 if side is None else ARM_SIDE_LEAN * (1.0 if side == "right" else -1.0)
        angle = np.pi / 2 + lean + rng.normal(0, 0.8)  # +y is down in the image; larger angle: -x
        z = rng.uniform(-0.3, 0.4)
    r = np.sqrt(1 - z * z)
    return np.array([r * np.cos(angle), r * np.sin(angle), z])


def roll_towards(normal: np.ndarray, axis: np.ndarray, target: np.ndarray, angle: float) -> float:
    """The roll about unit ``axis`` that leaves ``normal`` at signed ``angle`` (radians, about
    ``axis``) from ``target``, both taken in the plane perpendicular to ``axis``."""

    def flat(v: np.ndarray) -> np.ndarray:
        v = v - (v @ axis) * axis
        return v / (np.linalg.norm(v) + 1e-12)

    n, t = flat(normal), flat(target)
    now = np.arctan2(axis @ np.cross(t, n), t @ n)
    return float(angle - now)


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation (3, 3) taking unit vector ``a`` to unit vector ``b``."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(a @ b)
    if c < -1 + 1e-9:  # opposite: turn half way round any axis perpendicular to a
        axis = np.cross(a, [1.0, 0, 0] if abs(a[0]) < 0.9 else [0, 1.0, 0])
        axis /= np.linalg.norm(axis)
        return 2 * np.outer(axis, axis) - np.eye(3)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1 + c)


def axis_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues: rotation by ``angle`` about unit ``axis``."""
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def place_hand(
    vertices: np.ndarray, framing: Framing, size: int, margin: float = 2.0, iterations: int = 4
) -> np.ndarray:
    """The translation (3,) that puts the posed hand at the wanted size and position, fully in frame.

    ``vertices`` are the hand at ``transl = 0``. Depth sets the size (pinhole: size ∝ 1/z), the ray
    through the wanted centre sets the position; a few fixed-point steps correct for perspective and
    then slide the box inside the image (with ``margin`` pixels to spare).
    """
    v_all = np.asarray(vertices, np.float64)
    v = v_all[:: max(1, len(v_all) // 2000)]  # iterate on a subset; the final check uses every vertex
    K = framing.K
    f = K[0, 0]
    c3 = 0.5 * (v.min(axis=0) + v.max(axis=0))
    extent = float(np.max(v.max(axis=0)[:2] - v.min(axis=0)[:2]))
    want = framing.hand_fraction * size
    z = f * extent / want
    half = want / 2 + margin
    target = np.clip(np.array(framing.center, np.float64), half, size - half)
    aim = target.copy()
    Kinv = np.linalg.inv(K)
    for _ in range(iterations):
        transl = (Kinv @ np.array([aim[0], aim[1], 1.0])) * z - c3
        uv = project(v + transl, K)
        lo, hi = uv.min(axis=0), uv.max(axis=0)
        aim = aim + target - 0.5 * (lo + hi)  # the box centre is not the projection of c3: correct for it
        z *= float(np.max(hi - lo)) / want  # perspective: re-scale the depth to the size obtained
    transl = (Kinv @ np.array([aim[0], aim[1], 1.0])) * z - c3
    uv = project(v_all + transl, K)
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    fix = np.clip(lo, margin, None) - lo + np.clip(hi, None, size - margin) - hi
    if np.any(fix != 0):  # last nudge, sideways at this depth
        transl[:2] += fix * (v_all + transl)[:, 2].max() / f  # far points move least: use them
    return transl
