"""Per-hand training samples from dataset records: square crop, mirror left to right, labels in the crop.

Coordinates. ``n`` = normalised crop coordinates: the crop square maps to [-1, 1]^2, x right, y down.
A global pixel ``p`` (OpenCV convention, pixel centres at integers, as ``joints_2d`` and ``bbox`` are)
maps to ``n = F · Rot(θ) · (p − c) / (S/2)`` where ``c`` is the crop centre, ``S`` its side in global
pixels, ``θ`` an augmentation rotation and ``F = diag(-1, 1)`` for left hands (mirroring), identity for
right ones. The same map on camera-frame 3D points is ``P' = M · Rz(θ) · P`` with ``M = diag(-1,1,1)``,
and on the hand's global orientation ``R' = M · Rz(θ) · R · M`` (the mirror of a left hand's mesh is
the right hand model with per-joint axis-angles (x, −y, −z)).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from handsynth.data.memory_cache import MemoryCache
from handsynth.data.records import Sample
from handsynth.errors import UserError
from handsynth.poses.quaternions import axis_angle_to_matrix
from handsynth.recon.config import Augment
from handsynth.recon.rotation import mirror_axis_angle

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
MIRROR = np.diag([-1.0, 1.0, 1.0])


@dataclass
class Crop:
    """Where a network crop came from: centre (cx, cy) and side in global pixels, rotation, mirror."""

    center: tuple[float, float]
    side: float
    size: int
    rot: float = 0.0  # radians, content rotated by Rot(rot)
    mirror: bool = False

    def _lin(self) -> np.ndarray:
        """The 2x2 linear part of global pixel offset -> n."""
        c, s = math.cos(self.rot), math.sin(self.rot)
        a = np.array([[c, -s], [s, c]]) / (self.side / 2.0)
        return np.diag([-1.0, 1.0]) @ a if self.mirror else a

    def to_norm(self, xy: Any) -> np.ndarray:
        """Global pixels (..., 2) -> normalised crop coordinates (..., 2)."""
        xy = np.asarray(xy, dtype=np.float64)
        return (xy - np.asarray(self.center)) @ self._lin().T

    def to_global(self, n: Any) -> np.ndarray:
        """Normalised crop coordinates (..., 2) -> global pixels (..., 2)."""
        n = np.asarray(n, dtype=np.float64)
        return n @ np.linalg.inv(self._lin()).T + np.asarray(self.center)

    def rot3(self) -> np.ndarray:
        """The 3x3 map applied to camera-frame 3D points: M · Rz(rot)."""
        c, s = math.cos(self.rot), math.sin(self.rot)
        rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return MIRROR @ rz if self.mirror else rz

    def image(self, img: Image.Image) -> Image.Image:
        """Sample the crop from ``img`` (bilinear, black outside the image)."""
        inv = np.linalg.inv(self._lin())  # n -> global offset
        # output edge coords u_e -> n = 2 u_e / size - 1 -> global cv coords -> PIL edge coords (+0.5)
        a = inv * (2.0 / self.size)
        off = np.asarray(self.center) + 0.5 - inv @ np.array([1.0, 1.0])
        data = (a[0, 0], a[0, 1], off[0], a[1, 0], a[1, 1], off[1])
        rgb = img if img.mode == "RGB" else img.convert("RGB")  # convert() copies even an RGB image
        return rgb.transform(
            (self.size, self.size), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR
        )


def square_crop(bbox: Sequence[float], expand: float, size: int, mirror: bool = False) -> Crop:
    """The square crop around an [x, y, w, h] box, side = ``expand`` · max(w, h)."""
    x, y, w, h = (float(v) for v in bbox)
    return Crop(center=(x + w / 2.0, y + h / 2.0), side=expand * max(w, h), size=size, mirror=mirror)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL crop -> (3, H, W) float tensor, ImageNet-normalised."""
    arr = (np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file as RGB, with a clear error when it is missing."""
    if not Path(path).exists():
        raise UserError(f"image {path} does not exist: check the dataset folder and the record's file_name")
    with Image.open(path) as im:
        return im.convert("RGB")


def _rgb_bytes(img: Image.Image) -> int:
    return img.width * img.height * 3


class HandCrops(torch.utils.data.Dataset):
    """One item per hand of every record: the cropped image and its labels, mirrored to a right hand.

    ``items`` indexes are plain ints; a ``(index, seed)`` tuple also works and seeds the augmentation,
    so a run draws the same jitter for the same draw whatever the worker layout (resume-safe).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        root: str | os.PathLike,
        size: int,
        expand: float = 1.5,
        hand_model: str | None = None,
        augment: Augment | None = None,
        image_cache_mb: float = 0.0,
        hand_mean: np.ndarray | None = None,
    ) -> None:
        """``hand_mean``: the right hand model's mean pose (45,), to make an absolute ``hand_pose``
        (``source.flat_hand_mean``, e.g. HO3D) relative to it, as the network predicts poses; without
        it such hands' parameters are not supervised (``has_params`` 0; joints still are)."""
        self.hand_mean = None if hand_mean is None else torch.as_tensor(hand_mean, dtype=torch.float64)
        self.samples = list(samples)
        self.root = Path(root)
        self.size, self.expand, self.hand_model, self.augment = size, expand, hand_model, augment
        # decoded photos, so a run decodes each file once, not once per draw (benchmarks/results/
        # data_cache.md: 3 % of a micro recon run's wall time on 64² PNGs)
        self.images = MemoryCache(image_cache_mb)
        self.items = [(i, j) for i, s in enumerate(self.samples) for j in range(len(s.hands))]
        missing = [s.id for s in self.samples if s.file_name is None and s.hands]
        if missing:
            raise UserError(
                f"{self.root}: records {missing[:3]} have no file_name (no image); "
                "train and predict need datasets with images"
            )

    def __len__(self) -> int:
        return len(self.items)

    def crop_for(self, index: int, rng: np.random.Generator | None = None) -> Crop:
        """The crop of item ``index``; jittered when ``rng`` is given and augmentation is on."""
        si, hi = self.items[index]
        hand = self.samples[si].hands[hi]
        crop = square_crop(hand.bbox, self.expand, self.size, mirror=hand.side == "left")
        if rng is not None and self.augment is not None:
            a = self.augment
            side = crop.side * (1.0 + rng.uniform(-a.scale, a.scale))
            cx = crop.center[0] + rng.uniform(-a.shift, a.shift) * crop.side
            cy = crop.center[1] + rng.uniform(-a.shift, a.shift) * crop.side
            rot = math.radians(rng.uniform(-a.rot_deg, a.rot_deg))
            crop = Crop((cx, cy), side, crop.size, rot, crop.mirror)
        return crop

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        rng = np.random.default_rng(seed) if seed is not None else None
        si, hi = self.items[index]
        sample = self.samples[si]
        hand = sample.hands[hi]
        crop = self.crop_for(index, rng)
        img = crop.image(self.images.get(self.root / sample.file_name, load_image, _rgb_bytes))
        if rng is not None and self.augment is not None and self.augment.color > 0:
            gain = 1.0 + rng.uniform(-self.augment.color, self.augment.color, size=3)
            img = Image.fromarray(np.clip(np.asarray(img, dtype=np.float32) * gain, 0, 255).astype(np.uint8))
        t = crop.rot3()
        joints = np.asarray(hand.joints_3d)
        joints_rel = (joints - joints[:1]) @ t.T
        go = axis_angle_to_matrix(hand.global_orient)  # numpy: per item, torch's overhead cost 0.4 ms
        go = t @ go @ MIRROR if crop.mirror else t @ go
        pose = torch.tensor(hand.hand_pose, dtype=torch.float64)
        if crop.mirror:
            pose = mirror_axis_angle(pose)
        has_params = self.hand_model is None or hand.model == self.hand_model
        if has_params and sample.flat_hand_mean:
            # mirrored (left) poses subtract the right mean: a left model's mean mirrors the right's
            if self.hand_mean is None:
                has_params = False
            else:
                pose = pose - self.hand_mean
        return {
            "image": to_tensor(img),
            "joints3d": torch.tensor(joints_rel, dtype=torch.float32),
            "joints2d": torch.tensor(crop.to_norm(hand.joints_2d), dtype=torch.float32),
            "rotmat": torch.tensor(go, dtype=torch.float32),
            "hand_pose": pose.float(),
            "betas": torch.tensor(hand.betas, dtype=torch.float32),
            "has_params": torch.tensor(float(has_params)),
            "index": torch.tensor(index),
        }


class MixedCrops(torch.utils.data.Dataset):
    """Several :class:`HandCrops` behind one flat index, fed by :class:`~handsynth.recon.sampler.RatioSampler`."""

    def __init__(self, parts: Sequence[HandCrops]) -> None:
        self.parts = list(parts)
        self.offsets = np.concatenate([[0], np.cumsum([len(p) for p in self.parts])])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        d = int(np.searchsorted(self.offsets, index, side="right") - 1)
        local = index - int(self.offsets[d])
        item = self.parts[d][(local, seed) if seed is not None else local]
        item["dataset"] = torch.tensor(d)
        return item
