"""World records as arrays for the micro tools: photos, hand crops, attribute labels, 2D keypoints.

The feature extractor (FID/KID) and the 2D keypoint detector are trained on these; hand crops use the
evaluation's own crop rule (:func:`handsynth.eval.crops.hand_crop`), so the extractor sees crops the
way FID-H will show them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from handsynth.errors import UserError

if TYPE_CHECKING:
    from handsynth.data.records import Sample

# Attributes the feature extractor learns to tell apart (classification heads).
ATTRIBUTES = ("domain", "background", "gesture", "skin_tone", "side", "object")


def attribute_values(sample: Sample) -> dict[str, str]:
    """The world facts of a record as strings (``none`` where a fact is absent)."""
    src = sample.source or {}
    attrs = src.get("attributes", {}) or {}
    bg = attrs.get("background") or {}
    obj = sample.extra.get("object") if hasattr(sample, "extra") else None
    obj = obj or src.get("object") or {}
    return {
        "domain": str(src.get("domain", "none")),
        "background": str(bg.get("name", "none")) if isinstance(bg, dict) else str(bg),
        "gesture": str(attrs.get("gesture", "none")),
        "skin_tone": str(attrs.get("skin_tone_mst", "none")),
        "side": sample.hands[0].side if sample.hands else "none",
        "object": str(obj.get("name", "none")) if isinstance(obj, dict) else "none",
    }


@dataclass
class WorldArrays:
    """Photos (N, S, S, 3) uint8 at ``size``, keypoints (N, 21, 2) in those pixels, bboxes, labels."""

    images: np.ndarray
    keypoints: np.ndarray
    bboxes: np.ndarray
    labels: list[dict[str, str]]
    ids: list[str]


def load_world(paths: list[str | Path], size: int, limit: int | None = None) -> WorldArrays:
    """Load one-hand world records (first hand of each) from dataset folders, resized to size^2."""
    from handsynth.data import dataset_root, read_dataset

    imgs, kps, boxes, labels, ids = [], [], [], [], []
    for path in paths:
        root = dataset_root(path)
        samples = [s for s in read_dataset(path) if s.file_name and s.hands]
        if limit:
            samples = samples[:limit]
        for s in samples:
            with Image.open(root / s.file_name) as im:
                im = im.convert("RGB")
                sx, sy = size / s.width, size / s.height
                if im.size != (size, size):
                    im = im.resize((size, size), Image.BICUBIC)
                imgs.append(np.asarray(im))
            h = s.hands[0]
            kps.append(np.asarray(h.joints_2d, np.float32) * np.array([sx, sy], np.float32))
            b = np.asarray(h.bbox, np.float32)
            boxes.append(b * np.array([sx, sy, sx, sy], np.float32))
            labels.append(attribute_values(s))
            ids.append(s.id)
    if not imgs:
        raise UserError(f"no labelled images in {', '.join(map(str, paths))}; pass world dataset folders")
    return WorldArrays(np.stack(imgs), np.stack(kps), np.stack(boxes), labels, ids)


def hand_crops(arrays: WorldArrays, size: int, scale: float | None = None) -> np.ndarray:
    """The FID-H crop of each image's hand, (N, size, size, 3) uint8."""
    from handsynth.eval.crops import DEFAULT_SCALE, hand_crop

    s = DEFAULT_SCALE if scale is None else scale
    return np.stack([hand_crop(img, box, size, s) for img, box in zip(arrays.images, arrays.bboxes)])


def local_as_global(samples: list[Sample]) -> list[Sample]:
    """Each record's local crop as a record of its own: the local condition maps become the (global)
    maps, and the camera and 2D labels move into crop pixels (global = box_xy + local * side / size).

    Why: Table 4's "local only" model is trained on crops; it must generate from the crop it knows.
    Records without a local crop are left out. The image and the crop's RGB file are not carried over.
    """
    import copy

    out = []
    for s in samples:
        if s.local is None or not s.local.conditions:
            continue
        x, y, side = (float(v) for v in s.local.box)
        k = s.local.size / side
        t = copy.deepcopy(s)
        t.width = t.height = int(s.local.size)
        K = np.asarray(s.K, np.float64).copy()
        K[0, 0] *= k
        K[1, 1] *= k
        K[0, 2] = (K[0, 2] - x) * k
        K[1, 2] = (K[1, 2] - y) * k
        t.K = K.tolist()
        for h in t.hands:
            h.joints_2d = ((np.asarray(h.joints_2d, np.float64) - [x, y]) * k).tolist()
            bx, by, bw, bh = h.bbox
            h.bbox = [(bx - x) * k, (by - y) * k, bw * k, bh * k]
        t.conditions = dict(s.local.conditions)
        t.local = None
        t.file_name = None
        out.append(t)
    return out
