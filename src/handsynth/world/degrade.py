"""Camera and file degradations of world photographs: defocus blur, sensor noise, JPEG artefacts.

Applied after compositing, to the whole picture, so hand and background are degraded alike (as a real
camera would). ``lab`` images get only faint noise and a high JPEG quality; ``wild`` ones a random mix.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter


@dataclass
class Degradation:
    """What happens to the image between the scene and the file."""

    blur_sigma: float = 0.0  # Gaussian blur of the whole image, pixels
    noise_sigma: float = 0.0  # additive Gaussian noise, 0-255 units
    jpeg_quality: int = 95
    exposure: float = 1.0  # global gain
    background_blur: float = 0.0  # depth-of-field blur of the background only, pixels

    def to_dict(self) -> dict:
        return {k: round(float(v), 4) if isinstance(v, float) else v for k, v in self.__dict__.items()}


def sample_degradation(domain: str, rng: np.random.Generator, size: int = 128) -> Degradation:
    """Degradation parameters for one image (scaled so a 256² image looks like a 128² one blurred alike)."""
    px = size / 128.0
    if domain == "lab":
        return Degradation(noise_sigma=float(rng.uniform(0.5, 1.5)), jpeg_quality=95)
    return Degradation(
        blur_sigma=float(rng.uniform(0.0, 0.9) * px) if rng.random() < 0.4 else 0.0,
        noise_sigma=float(rng.uniform(0.0, 6.0)),
        jpeg_quality=int(rng.integers(35, 91)),
        exposure=float(rng.uniform(0.8, 1.15)),
        background_blur=float(rng.uniform(0.0, 2.0) * px) if rng.random() < 0.6 else 0.0,
    )


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a uint8 image (PIL's, fast); sigma <= 0.05 returns the image unchanged."""
    if sigma <= 0.05:
        return image
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius=sigma)))


def apply_degradation(image: np.ndarray, deg: Degradation, rng: np.random.Generator) -> np.ndarray:
    """Exposure, blur and noise (JPEG happens when encoding, see :func:`encode_jpeg`)."""
    img = image.astype(np.float32) * deg.exposure
    img = np.clip(img, 0, 255).astype(np.uint8)
    img = gaussian_blur(img, deg.blur_sigma)
    if deg.noise_sigma > 0:
        img = np.clip(img + rng.normal(0, deg.noise_sigma, img.shape), 0, 255).astype(np.uint8)
    return img


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """JPEG bytes at ``quality`` (4:2:0 chroma subsampling, like most cameras and the web)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=int(quality), subsampling=2)
    return buf.getvalue()
