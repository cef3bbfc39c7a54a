"""Skin albedo for the micro world: published skin tones plus procedural texture on the hand mesh.

Base tones are the ten sRGB swatches of the Monk Skin Tone (MST) scale (Monk, 2019; published by Google
at skintone.google, CC-BY-4.0), which spans light to deep skin more evenly than the Fitzpatrick types.
On top of the base tone each vertex gets: lighter, pinker palms (palms carry less melanin), redder
knuckles and finger tips, pale nails, low-frequency blotches (random smooth 3D fields over the vertex
positions, ~2-6 cm wavelength) and a little per-vertex noise, so no two hands are flat-coloured alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handsynth.render.scene import vertex_normals

# Monk Skin Tone scale, MST-1 (lightest) .. MST-10 (deepest), sRGB hex as published.
MONK_SKIN_TONES: tuple[str, ...] = (
    "#f6ede4",
    "#f3e7db",
    "#f7ead0",
    "#eadaba",
    "#d7bd96",
    "#a07e56",
    "#825c43",
    "#604134",
    "#3a312a",
    "#292420",
)

# Words a caption may use for each MST tone (VLM captions rarely name skin; used only sometimes).
TONE_WORDS: tuple[str, ...] = (
    "pale",
    "fair",
    "fair",
    "light",
    "medium",
    "tan",
    "brown",
    "brown",
    "dark",
    "dark",
)

# OpenPose-21 joint indices used here.
WRIST, INDEX_MCP, MIDDLE_MCP, PINKY_MCP = 0, 5, 9, 17
TIPS = (4, 8, 12, 16, 20)
KNUCKLES = (2, 3, 6, 7, 10, 11, 14, 15, 18, 19)


def hex_to_rgb(code: str) -> np.ndarray:
    """'#rrggbb' -> (3,) float sRGB in [0, 1]."""
    code = code.lstrip("#")
    return np.array([int(code[i : i + 2], 16) / 255.0 for i in (0, 2, 4)])


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB decoding (shading is done on linear light)."""
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB encoding, clipped to [0, 1] (keeps float32 input float32)."""
    c = np.asarray(c)
    c = np.clip(c if c.dtype == np.float32 else c.astype(np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def tone_rgb(tone: int) -> np.ndarray:
    """Base sRGB colour of MST tone 1..10."""
    if not 1 <= tone <= len(MONK_SKIN_TONES):
        raise ValueError(f"skin tone must be 1..{len(MONK_SKIN_TONES)}, got {tone}")
    return hex_to_rgb(MONK_SKIN_TONES[tone - 1])


def smooth_field(
    points: np.ndarray,
    rng: np.random.Generator,
    waves: int = 6,
    wavelength: tuple[float, float] = (0.02, 0.06),
) -> np.ndarray:
    """A smooth random scalar field in about [-1, 1] over 3D points (sum of random plane waves)."""
    dirs = rng.normal(size=(waves, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    k = 2 * np.pi / rng.uniform(*wavelength, size=waves)
    phase = rng.uniform(0, 2 * np.pi, size=waves)
    arg = np.asarray(points, np.float32) @ (dirs * k[:, None]).T.astype(np.float32) + phase.astype(np.float32)
    return np.sin(arg).sum(axis=1).astype(np.float64) / np.sqrt(waves / 2)


def palm_normal(joints: np.ndarray, side: str) -> np.ndarray:
    """Unit normal of the palm plane pointing out of the palm (away from the back of the hand)."""
    j = np.asarray(joints, dtype=np.float64)
    n = np.cross(j[INDEX_MCP] - j[WRIST], j[PINKY_MCP] - j[WRIST])
    n /= np.linalg.norm(n) + 1e-12
    return n if side == "right" else -n  # the left hand is the mirror image, which flips the cross product


@dataclass
class SkinLayout:
    """Per-vertex skin features of a hand model's rest mesh: where the palm, knuckles and nails are.

    Computed once per hand model on the rest (flat, mean-shape) mesh: the features are properties of
    surface points, which skinning carries along, so they hold for every pose.
    """

    rest_vertices: np.ndarray  # (V, 3)
    palm: np.ndarray  # (V,) 0..1, 1 on the palm side
    red: np.ndarray  # (V,) 0..~1.5, knuckles and finger tips
    nail: np.ndarray  # (V,) 0..1


def skin_layout(
    rest_vertices: np.ndarray, faces: np.ndarray, rest_joints: np.ndarray, side: str
) -> SkinLayout:
    """Compute :class:`SkinLayout` from a rest mesh and its OpenPose-21 joints."""
    v = np.asarray(rest_vertices, dtype=np.float64)
    j = np.asarray(rest_joints, dtype=np.float64)
    n = vertex_normals(v, faces).astype(np.float64)
    out_of_palm = n @ palm_normal(j, side)

    def near(idx: tuple[int, ...], radius: float) -> np.ndarray:
        d = np.linalg.norm(v[:, None, :] - j[None, list(idx), :], axis=2).min(axis=1)
        return np.clip(1.0 - d / radius, 0.0, 1.0)

    palm = np.clip(out_of_palm * 1.5, 0.0, 1.0)
    red = 0.5 * near(KNUCKLES, 0.012) + near(TIPS, 0.014)
    nail = np.clip(near(TIPS, 0.011) * 2.2 - 1.0, 0.0, 1.0) * (-out_of_palm > 0.35)
    return SkinLayout(v, palm, red, nail)


# How palm and back differ (WorldConfig.palm_contrast). "subtle": the palm is the base tone blended 60 %
# towards the tone three steps lighter (for the lightest tones almost no change). "strong": the palm is
# blended 90 % towards the tone four steps lighter, tinted pink, and the back is 15 % darker (palms carry
# less melanin and show blood; backs are tanned): a left hand's photo is a right hand's mirrored, so
# palm against back, with the thumb's place, is what tells the side (micro_side_visibility.md).
_PALM = {  # tone steps lighter, blend weight, pink tint (linear RGB), darkening of the back
    "subtle": (3, 0.6, (1.03, 0.95, 0.93), 0.0),
    "strong": (4, 0.9, (1.06, 0.86, 0.84), 0.15),
}
PALM_CONTRASTS: tuple[str, ...] = tuple(_PALM)


def skin_albedo(
    layout: SkinLayout, tone: int, rng: np.random.Generator, palm_contrast: str = "subtle"
) -> np.ndarray:
    """Per-vertex *linear* RGB albedo (V, 3) of a hand of MST ``tone`` (any pose of that mesh)."""
    if palm_contrast not in _PALM:
        raise ValueError(f"palm contrast must be one of {PALM_CONTRASTS}, got {palm_contrast!r}")
    steps, weight, tint, back = _PALM[palm_contrast]
    v = layout.rest_vertices
    base = srgb_to_linear(tone_rgb(tone))
    # Small per-person hue shift (warmer / cooler undertone).
    base = base * np.array([1.0 + rng.normal(0, 0.03), 1.0, 1.0 + rng.normal(0, 0.04)])
    # Palms: less melanin -> lighter and pinker, strongest on dark tones.
    palm_tone = srgb_to_linear(tone_rgb(max(1, tone - steps))) * np.array(tint)
    p = weight * layout.palm[:, None]
    lin = base[None] * (1 - back * (1 - layout.palm[:, None])) * (1 - p) + palm_tone[None] * p
    # Knuckles and finger tips: a little redder (blood closer to the surface).
    lin = lin * (1 + 0.18 * layout.red[:, None] * np.array([0.6, -0.5, -0.5]))
    # Nails: a pale pink patch on the back of each finger tip.
    m = 0.55 * layout.nail[:, None]
    lin = lin * (1 - m) + srgb_to_linear(np.array([0.93, 0.78, 0.74]))[None] * m
    # Low-frequency blotches (brightness and redness) + per-vertex noise.
    bright = 1.0 + 0.07 * smooth_field(v, rng)
    redness = 0.04 * smooth_field(v, rng)
    lin = lin * bright[:, None] * (1 + redness[:, None] * np.array([1.0, -0.6, -0.6]))
    lin = lin * (1.0 + rng.normal(0, 0.02, size=(len(v), 1)))
    return np.clip(lin, 0.0, 1.0)


def arm_albedo(vertices: np.ndarray, tone: int, rng: np.random.Generator) -> np.ndarray:
    """Per-vertex linear RGB albedo (V, 3) of forearm skin: the base tone with the same kind of blotches."""
    v = np.asarray(vertices, dtype=np.float64)
    lin = np.repeat(srgb_to_linear(tone_rgb(tone))[None], len(v), axis=0)
    lin = lin * (1.0 + 0.06 * smooth_field(v, rng, wavelength=(0.04, 0.12)))[:, None]
    lin = lin * (1.0 + rng.normal(0, 0.02, size=(len(v), 1)))
    return np.clip(lin, 0.0, 1.0)
