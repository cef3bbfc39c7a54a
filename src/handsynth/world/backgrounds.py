"""Backgrounds of the micro world: dark studio backdrops (lab) and cluttered scenes (wild).

``wild`` draws from two pools: procedural textures (brick, wood, tiles, clouds, stripes, checks, plain
walls, gradients) and the natural photographs that scikit-image ships inside its wheel (no download),
randomly cropped, flipped and colour-jittered. Each background carries a caption phrase ("in front of a
brick wall") so captions describe what is actually behind the hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

# Named colours for walls, fabrics and objects (sRGB 0-255); the name is what captions say.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (200, 40, 40),
    "orange": (235, 130, 30),
    "yellow": (235, 205, 50),
    "green": (60, 160, 70),
    "blue": (45, 90, 200),
    "purple": (120, 60, 160),
    "pink": (235, 130, 170),
    "white": (235, 235, 230),
    "black": (25, 25, 28),
    "grey": (128, 128, 128),
    "brown": (120, 75, 40),
}


@dataclass
class Background:
    """An RGB image (H, W, 3) uint8 plus what a caption would call it."""

    image: np.ndarray
    name: str
    phrase: str
    kind: str  # "lab" | "procedural" | "natural"


def value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a ``cells x cells`` random grid upsampled bicubically to ``size``."""
    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    img = Image.fromarray(grid, mode="F").resize((size, size), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(img), 0.0, 1.0)


def fractal_noise(rng: np.random.Generator, size: int, octaves: int = 4, base: int = 3) -> np.ndarray:
    """Sum of value-noise octaves (1/f), normalised to [0, 1]."""
    total = np.zeros((size, size), np.float32)
    for o in range(octaves):
        total += value_noise(rng, size, base * 2**o) / 2**o
    total -= total.min()
    return total / max(float(total.max()), 1e-6)


def _jitter_color(
    rgb: tuple[int, int, int] | np.ndarray, rng: np.random.Generator, amount: float = 0.12
) -> np.ndarray:
    return np.clip(np.asarray(rgb, np.float32) * (1 + rng.normal(0, amount, 3)), 0, 255)


def _finish(img: np.ndarray, rng: np.random.Generator, grain: float = 4.0) -> np.ndarray:
    img = img + rng.normal(0, grain, img.shape[:2])[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _pick_color(rng: np.random.Generator, names: tuple[str, ...] | None = None) -> tuple[str, np.ndarray]:
    names = names or tuple(COLORS)
    name = names[rng.integers(len(names))]
    return name, _jitter_color(COLORS[name], rng)


# ---- procedural textures -------------------------------------------------------------------------


def brick_wall(rng: np.random.Generator, size: int) -> Background:
    bh = int(rng.integers(size // 12, size // 6 + 1))
    bw = bh * rng.uniform(1.8, 2.6)
    mortar = max(1, bh // 7)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    row = (y // bh).astype(int)
    xs = x + (row % 2) * bw / 2
    col = (xs // bw).astype(int)
    base = _jitter_color((150, 65, 45), rng, 0.15)
    per_brick = 1 + rng.normal(0, 0.1, (row.max() + 2, col.max() + 2))
    img = base[None, None] * per_brick[row, col][..., None]
    img = img * (0.85 + 0.3 * fractal_noise(rng, size, 3, 6))[..., None]
    is_mortar = ((y % bh) < mortar) | ((xs % bw) < mortar)
    img[is_mortar] = _jitter_color((185, 180, 170), rng, 0.08)
    return Background(_finish(img, rng), "brick", "in front of a brick wall", "procedural")


def wood(rng: np.random.Generator, size: int) -> Background:
    """Planks: per-plank tone, fine wavy grain along the plank, dark gaps between planks."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    vertical = rng.random() < 0.5
    across, along = (x, y) if vertical else (y, x)
    plank = size / rng.uniform(3.0, 6.0)
    idx = (across // plank).astype(int)
    warp = fractal_noise(rng, size, 3, 3) * rng.uniform(4, 10)
    grain = 0.5 + 0.5 * np.sin((across + warp + idx * 17.0) * 2 * np.pi / rng.uniform(2.5, 5.0))
    streak = fractal_noise(rng, size, 2, 2)
    light = _jitter_color((185, 135, 85), rng, 0.15)
    per_plank = 1 + rng.normal(0, 0.08, idx.max() + 2)
    img = light[None, None] * (0.75 + 0.2 * grain + 0.1 * streak)[..., None] * per_plank[idx][..., None]
    img[(across % plank) < max(1.0, size / 128)] *= 0.45
    del along
    phrase = ("on a wooden table", "above a wooden table", "in front of a wooden wall")[rng.integers(3)]
    return Background(_finish(img, rng, 3.0), "wood", phrase, "procedural")


def tiles(rng: np.random.Generator, size: int) -> Background:
    t = int(rng.integers(size // 8, size // 3))
    grout = max(1, t // 12)
    y, x = np.mgrid[0:size, 0:size]
    name, color = _pick_color(rng, ("white", "blue", "green", "grey", "yellow", "black"))
    var = 1 + rng.normal(0, 0.05, (size // t + 2, size // t + 2))
    img = color[None, None] * var[y // t, x // t][..., None]
    img[((y % t) < grout) | ((x % t) < grout)] = _jitter_color((200, 200, 195), rng, 0.1)
    phrase = (f"in front of a {name} tiled wall", f"over a {name} tiled floor")[rng.integers(2)]
    return Background(_finish(img, rng, 3.0), "tiles", phrase, "procedural")


def clouds(rng: np.random.Generator, size: int) -> Background:
    n = fractal_noise(rng, size, 5, 2)[..., None]
    a, b = _jitter_color(rng.integers(0, 256, 3), rng), _jitter_color(rng.integers(0, 256, 3), rng)
    img = a[None, None] * (1 - n) + b[None, None] * n
    return Background(_finish(img, rng), "clouds", "against a blurry background", "procedural")


def stripes(rng: np.random.Generator, size: int) -> Background:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    period = rng.uniform(size / 16, size / 5)
    vertical = rng.random() < 0.6
    s = (x if vertical else y) + 3 * fractal_noise(rng, size, 2, 3) * period / 4
    name, c1 = _pick_color(rng)
    c2 = _jitter_color(COLORS["white"], rng) if rng.random() < 0.5 else _pick_color(rng)[1]
    on = ((s // period) % 2 == 0)[..., None]
    img = (
        np.where(on, c1[None, None], c2[None, None])
        * (0.8 + 0.25 * fractal_noise(rng, size, 3, 2))[..., None]
    )
    phrase = f"in front of {name} striped curtains" if vertical else "in front of a striped shirt"
    return Background(_finish(img, rng), "stripes", phrase, "procedural")


def checks(rng: np.random.Generator, size: int) -> Background:
    y, x = np.mgrid[0:size, 0:size]
    t = int(rng.integers(size // 12, size // 5))
    name, c1 = _pick_color(rng, ("red", "blue", "green", "black", "yellow"))
    c2 = _jitter_color(COLORS["white"], rng)
    on = (((y // t) + (x // t)) % 2 == 0)[..., None]
    img = (
        np.where(on, c1[None, None], c2[None, None])
        * (0.85 + 0.2 * fractal_noise(rng, size, 3, 2))[..., None]
    )
    return Background(_finish(img, rng), "checks", f"over a {name} checkered tablecloth", "procedural")


def plain_wall(rng: np.random.Generator, size: int) -> Background:
    name, c = _pick_color(rng)
    shade = 0.8 + 0.35 * fractal_noise(rng, size, 3, 2)
    img = c[None, None] * shade[..., None]
    return Background(_finish(img, rng, 3.0), "wall", f"in front of a {name} wall", "procedural")


def gradient(rng: np.random.Generator, size: int) -> Background:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = rng.uniform(0, 2 * np.pi)
    t = np.clip((x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle) + 0.5, 0, 1)[..., None]
    a, b = _pick_color(rng)[1], _pick_color(rng)[1]
    img = a[None, None] * (1 - t) + b[None, None] * t
    return Background(_finish(img, rng), "gradient", "against a plain backdrop", "procedural")


PROCEDURAL: dict[str, Callable[[np.random.Generator, int], Background]] = {
    "brick": brick_wall,
    "wood": wood,
    "tiles": tiles,
    "clouds": clouds,
    "stripes": stripes,
    "checks": checks,
    "wall": plain_wall,
    "gradient": gradient,
}

# ---- natural photographs shipped with scikit-image -----------------------------------------------

# skimage.data function -> caption phrase. Only images inside the wheel (no pooch download).
NATURAL: dict[str, str] = {
    "astronaut": "in front of a poster of an astronaut",
    "coffee": "next to a cup of coffee on a table",
    "chelsea": "next to a cat",
    "rocket": "outdoors near a rocket",
    "grass": "over the grass",
    "gravel": "over gravel",
    "brick": "in front of a brick wall",
    "camera": "outdoors in a park",
    "hubble_deep_field": "in front of a starry sky",
    "moon": "in front of a picture of the moon",
    "page": "over a printed page",
    "text": "over a printed page",
    "coins": "over coins on a table",
    "clock": "next to a clock",
    "stereo_motorcycle": "in a garage next to a motorcycle",
}


@cache
def natural_image(name: str) -> np.ndarray | None:
    """A scikit-image sample photo as (H, W, 3) uint8, or None if this install lacks it."""
    import skimage.data

    try:
        img = getattr(skimage.data, name)()
    except Exception:  # missing optional data (pooch) or a removed image: skip it
        return None
    if isinstance(img, tuple):
        img = img[0]
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3].astype(np.uint8))


def available_natural() -> list[str]:
    """Names of the natural images this scikit-image install actually ships."""
    return [n for n in NATURAL if natural_image(n) is not None]


def natural(rng: np.random.Generator, size: int, name: str) -> Background:
    """A random crop of a scikit-image photo, resized, flipped and colour-jittered."""
    src = natural_image(name)
    h, w = src.shape[:2]
    side = int(min(h, w) * rng.uniform(0.35, 1.0))
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = Image.fromarray(src[y0 : y0 + side, x0 : x0 + side]).resize(
        (size, size), Image.Resampling.BILINEAR
    )
    img = np.asarray(crop, np.float32)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    gray = src.ndim == 3 and bool(np.all(src[..., 0] == src[..., 1]))
    if gray:  # tint grey photos with a random colour cast so they are not all monochrome
        img = img * _jitter_color((255, 255, 255), rng, 0.15)[None, None] / 255.0
    mean = img.mean(axis=(0, 1), keepdims=True)
    img = (img - mean) * rng.uniform(0.7, 1.2) + mean * rng.uniform(0.75, 1.2)
    return Background(_finish(img, rng, 2.0), name, NATURAL[name], "natural")


# ---- the two domains -----------------------------------------------------------------------------


def lab_background(rng: np.random.Generator, size: int) -> Background:
    """Near-uniform dark backdrop with a faint vignette, like a capture-dome image (InterHand2.6M)."""
    level = rng.uniform(8, 30)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    vignette = 1.0 - 0.35 * ((x - 0.5) ** 2 + (y - 0.5) ** 2)
    img = np.full((size, size, 3), level, np.float32) * vignette[..., None] * np.array([1.0, 1.0, 1.05])
    return Background(_finish(img, rng, 1.5), "dark", "in front of a dark background", "lab")


def wild_background(rng: np.random.Generator, size: int, natural_fraction: float = 0.5) -> Background:
    """Half natural photos, half procedural textures (when scikit-image ships no photo: all textures)."""
    names = available_natural()
    if names and rng.random() < natural_fraction:
        return natural(rng, size, names[rng.integers(len(names))])
    keys = list(PROCEDURAL)
    return PROCEDURAL[keys[rng.integers(len(keys))]](rng, size)


def sample_background(domain: str, rng: np.random.Generator, size: int) -> Background:
    """The background of one world image of ``domain`` ("lab" | "wild")."""
    return lab_background(rng, size) if domain == "lab" else wild_background(rng, size)


FIXED_BACKGROUND_SEED = 20261129  # the fixed set is the same for every world seed and split


def fixed_background(domain: str, index: int, size: int) -> Background:
    """Background ``index`` of the domain's fixed set (``world render --backgrounds K``).

    Why: with a new background per image the micro base spends its budget on background texture and
    never learns the hand; a handful of backgrounds, shared by training and test splits, leaves the
    hand as the thing to learn. Each one depends only on (domain, index, size).
    """
    rng = np.random.default_rng([FIXED_BACKGROUND_SEED, int(index), 0 if domain == "lab" else 1])
    return sample_background(domain, rng, size)
