"""Lights of the micro world, applied by shading vertex colours before rendering.

The renderer's `texture` pass has one fixed light at the camera; the world needs coloured lights from
any direction. So the world shades each vertex itself (ambient + Lambert + a little Blinn-Phong sheen,
computed in linear light from the mesh normals) and renders the result with a renderer whose own
lighting is neutral (ambient 1, diffuse 0). Shading is per vertex (Gouraud), which is plenty at 128².
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from handsynth.world.skin import linear_to_srgb, srgb_to_linear


@dataclass
class Light:
    """A directional light. ``direction`` points from the light into the scene (camera frame, OpenCV)."""

    direction: np.ndarray
    color: np.ndarray  # linear RGB, ~[0, 1.5]
    intensity: float


@dataclass
class Lighting:
    """Ambient term plus directional lights; ``specular`` is the sheen strength of skin and objects."""

    ambient: np.ndarray
    lights: list[Light] = field(default_factory=list)
    specular: float = 0.0
    shininess: float = 16.0
    words: str = ""  # what a caption may say about the light ("in warm light"), "" when unremarkable

    def to_dict(self) -> dict:
        return {
            "ambient": [round(float(x), 4) for x in self.ambient],
            "lights": [
                {
                    "direction": [round(float(x), 4) for x in li.direction],
                    "color": [round(float(x), 4) for x in li.color],
                    "intensity": round(float(li.intensity), 4),
                }
                for li in self.lights
            ],
            "specular": round(self.specular, 4),
        }


def kelvin_rgb(kelvin: float) -> np.ndarray:
    """Approximate linear RGB of a black body at ``kelvin`` (2000-10000 K), normalised to max 1.

    Tanner Helland's fit of Mitchell Charity's black-body table, decoded from sRGB to linear.
    """
    t = kelvin / 100.0
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = 99.4708025861 * np.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * np.log(t - 10) - 305.0447927307)
    rgb = srgb_to_linear(np.clip(np.array([r, g, b]) / 255.0, 0, 1))
    return rgb / rgb.max()


def lab_lighting() -> Lighting:
    """Fixed, frontal, neutral studio light (the same for every lab image)."""
    key = np.array([0.0, 0.25, 1.0])
    return Lighting(
        ambient=np.full(3, 0.2),
        lights=[Light(key / np.linalg.norm(key), np.ones(3), 0.7)],
        specular=0.04,
    )


def wild_lighting(rng: np.random.Generator, environment: np.ndarray | None = None) -> Lighting:
    """1-3 coloured lights from random directions on the camera's side, tinted ambient, random sheen.

    ``environment``: mean linear RGB of the background; the ambient light takes some of its colour
    (light bouncing off the surroundings), which ties the hand's look to its scene.
    """
    n = int(rng.integers(1, 4))
    kelvin = float(rng.uniform(2500, 9000))
    lights = []
    for i in range(n):
        d = rng.normal(size=3)
        d[2] = abs(d[2]) + 0.3  # from the camera's hemisphere, so the visible side is lit
        d /= np.linalg.norm(d)
        color = kelvin_rgb(kelvin if i == 0 else float(rng.uniform(2500, 9000)))
        lights.append(Light(d, color, float(rng.uniform(0.45, 0.95) if i == 0 else rng.uniform(0.1, 0.4))))
    ambient = np.full(3, rng.uniform(0.1, 0.4))
    if environment is not None:
        env = np.asarray(environment, dtype=np.float64)
        env = env / max(float(env.mean()), 1e-3)
        ambient = ambient * (0.6 + 0.4 * np.clip(env, 0.3, 2.0))
    words = ""
    if kelvin < 3500:
        words = "in warm light"
    elif kelvin > 7500:
        words = "in cool light"
    elif lights[0].intensity + ambient.mean() < 0.7:
        words = "in dim light"
    return Lighting(ambient=ambient, lights=lights, specular=float(rng.uniform(0.0, 0.15)), words=words)


def sample_lighting(domain: str, rng: np.random.Generator, environment: np.ndarray | None = None) -> Lighting:
    """Lighting of one world image: fixed for ``lab``, random for ``wild``."""
    return lab_lighting() if domain == "lab" else wild_lighting(rng, environment)


# Wrapped-diffuse amounts per channel for skin: light scattered under the skin reaches past the
# terminator, most in red (a cheap stand-in for subsurface scattering; Green, GPU Gems 1, ch. 16).
SKIN_WRAP = (0.45, 0.25, 0.2)


def shade(
    albedo_linear: np.ndarray,
    vertices: np.ndarray,
    normals: np.ndarray,
    lighting: Lighting,
    wrap: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """Shaded sRGB vertex colours (V, 3) in [0, 1]: albedo * (ambient + Σ Lambert) + sheen.

    ``albedo_linear`` is linear RGB (see :func:`handsynth.world.skin.srgb_to_linear`); shading happens
    in linear light. ``wrap`` > 0 per channel lets light wrap past the terminator
    ((n.l + w) / (1 + w)), for skin.
    """
    f32 = np.float32
    albedo = np.asarray(albedo_linear, dtype=f32)
    n = np.asarray(normals, dtype=f32)
    v = np.asarray(vertices, dtype=f32)
    irradiance = np.empty((len(n), 3), f32)
    irradiance[:] = np.asarray(lighting.ambient, dtype=f32)
    highlight = np.zeros_like(irradiance) if lighting.specular > 0 else None
    if highlight is not None:
        view = -v / (np.linalg.norm(v, axis=1, keepdims=True) + f32(1e-12))  # surface -> camera
    w = np.asarray(wrap, dtype=f32)[None]
    for light in lighting.lights:
        to_light = -np.asarray(light.direction, dtype=f32)
        cos = n @ to_light
        wrapped = np.clip((cos[:, None] + w) / (1.0 + w), 0.0, None)
        irradiance += wrapped * (light.intensity * np.asarray(light.color, dtype=f32))[None]
        if highlight is not None:
            h = view + to_light[None]
            h /= np.linalg.norm(h, axis=1, keepdims=True) + f32(1e-12)
            spec = np.clip(np.sum(n * h, axis=1), 0.0, None) ** f32(lighting.shininess) * (cos > 0)
            highlight += (
                spec[:, None]
                * (lighting.specular * light.intensity * np.asarray(light.color, dtype=f32))[None]
            )
    lin = albedo * irradiance if highlight is None else albedo * irradiance + highlight
    return linear_to_srgb(lin)
