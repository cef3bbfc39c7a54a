"""``evaluate images``: Table 1 metrics of generated datasets against a real one.

One pass per dataset decodes each image once and feeds every enabled tool: whole-image features,
hand-crop features (:mod:`handsynth.eval.crops`), the 2D detector, the 3D estimator and CLIP. Labels
(bboxes, ``joints_2d``) are rescaled when an image's size differs from its record's width/height.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from torch import nn

from handsynth.data.records import Sample
from handsynth.errors import UserError
from handsynth.eval.crops import DEFAULT_SCALE, hand_crop
from handsynth.eval.estimator3d import Hand3DEstimator, root_relative_mpjpe, squared_root_relative_error
from handsynth.eval.features import extractor_input_size, extractor_name, to_tensor
from handsynth.eval.fid import fid_from_features, kid_from_features
from handsynth.eval.keypoints2d import HandScore, Keypoint2DDetector, score_hands, summarise
from handsynth.progress import progress

log = logging.getLogger(__name__)

TABLE1_COLUMNS = ["FID", "KID", "FID-H", "KID-H", "Hand Conf.", "MSE-2D", "MSE-3D"]


@dataclass
class ImageTools:
    """The tools an evaluation uses; any may be None (its metrics are then skipped with a note)."""

    extractor: nn.Module | None = None
    detector: Keypoint2DDetector | None = None
    estimator: Hand3DEstimator | None = None
    clip: object | None = None  # ClipScorer-like: .score(images, prompts) -> (N,)
    crop_scale: float = DEFAULT_SCALE
    batch_size: int = 16
    max_dist: float = 0.5
    kid_subsets: int = 100
    kid_subset_size: int = 1000


@dataclass
class DatasetScan:
    """Everything measured on one dataset folder."""

    name: str
    root: Path
    samples: list[Sample]
    feats: np.ndarray | None = None
    crop_feats: np.ndarray | None = None
    hand_scores: list[HandScore] = field(default_factory=list)
    est: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)  # (m², m) per hand
    clip: dict[str, float] = field(default_factory=dict)


class _Batcher:
    """Collects items and runs ``fn`` on full batches (and on flush)."""

    def __init__(self, fn, size: int) -> None:
        self.fn, self.size, self.items = fn, size, []

    def add(self, item) -> None:
        self.items.append(item)
        if len(self.items) >= self.size:
            self.flush()

    def flush(self) -> None:
        if self.items:
            self.fn(self.items)
            self.items = []


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def read_image_dataset(path: str | Path, limit: int | None = None) -> tuple[Path, list[Sample]]:
    """Records with an image, checked to exist before any work starts."""
    from handsynth.data.folder import dataset_root, read_dataset

    root = dataset_root(path)
    samples = [s for s in read_dataset(path) if s.file_name]
    if limit:
        samples = samples[:limit]
    if not samples:
        raise UserError(f"{path}: no record has an image (file_name); pass a dataset folder with images")
    missing = [s.file_name for s in samples if not (root / s.file_name).is_file()]
    if missing:
        raise UserError(
            f"{path}: {len(missing)} images listed in metadata.jsonl are missing (e.g. {missing[0]})"
        )
    return root, samples


def hands_2d_boxes(sample: Sample, scale: np.ndarray) -> list[np.ndarray]:
    """Boxes of the record's 2D-only hands (``hands_2d``, e.g. COCO-WholeBody), rescaled like ``hands``.

    Why: they are labelled hands of the photo; without them a COCO-WholeBody reference set (the paper's
    real set) had no hand crops and FID-H/KID-H were silently left out."""
    return [np.asarray(h["bbox"], np.float64) * scale for h in sample.extra.get("hands_2d") or []]


def scan_dataset(
    path: str | Path, tools: ImageTools, name: str, limit: int | None = None, labels: bool = True
) -> DatasetScan:
    """One pass over a dataset; ``labels=False`` only extracts features (the real reference set)."""
    root, samples = read_image_dataset(path, limit)
    scan = DatasetScan(name=name, root=root, samples=samples)
    feats, crop_feats = [], []
    ext = tools.extractor
    crop_size = extractor_input_size(ext) if ext is not None else 299

    def run_ext(out: list):
        def fn(items):
            import torch

            with torch.no_grad():
                dev = next(iter(ext.parameters()), torch.empty(0)).device
                # Equal sizes are batched; a size change starts a new call.
                start = 0
                while start < len(items):
                    end = start + 1
                    while end < len(items) and items[end].shape == items[start].shape:
                        end += 1
                    y = ext(to_tensor(items[start:end]).to(dev))
                    out.append(y.reshape(end - start, -1).double().cpu().numpy())
                    start = end

        return fn

    whole = _Batcher(run_ext(feats), tools.batch_size) if ext is not None else None
    crops = _Batcher(run_ext(crop_feats), tools.batch_size) if ext is not None else None

    takes_sides = (
        tools.estimator is not None and "sides" in inspect.signature(tools.estimator.predict).parameters
    )

    def run_est(items):
        imgs, boxes = [i[1] for i in items], np.array([i[2] for i in items])
        if takes_sides:  # e.g. handsynth.recon mirrors left hands; the bare protocol has no side
            preds = tools.estimator.predict(imgs, boxes, sides=[i[0][1] for i in items])
        else:
            preds = tools.estimator.predict(imgs, boxes)
        preds = np.asarray(preds)
        gts = np.array([i[3] for i in items])
        sq, mp = squared_root_relative_error(preds, gts), root_relative_mpjpe(preds, gts)
        for (key, *_), a, b in zip(items, sq, mp):
            scan.est[key] = (float(a), float(b))

    def run_clip(items):
        vals = tools.clip.score([i[1] for i in items], [i[2] for i in items])
        for (sid, *_), v in zip(items, vals):
            scan.clip[sid] = float(v)

    est = _Batcher(run_est, tools.batch_size) if labels and tools.estimator is not None else None
    clip = _Batcher(run_clip, tools.batch_size) if labels and tools.clip is not None else None

    for s in progress(samples, desc=f"evaluate {name}", unit="img"):
        img = load_rgb(root / s.file_name)
        h, w = img.shape[:2]
        sx, sy = w / s.width, h / s.height
        scale = np.array([sx, sy, sx, sy])
        bboxes = [np.asarray(hd.bbox) * scale for hd in s.hands]
        if whole is not None:
            whole.add(img)
            for b in bboxes + hands_2d_boxes(s, scale):
                crops.add(hand_crop(img, b, crop_size, tools.crop_scale))
        if not labels:
            continue
        if tools.detector is not None and s.hands:
            kps = [np.asarray(hd.joints_2d) * np.array([sx, sy]) for hd in s.hands]
            dets = tools.detector.detect(img)
            scan.hand_scores += score_hands(
                s.id, dets, [hd.side for hd in s.hands], kps, bboxes, tools.max_dist
            )
        if est is not None:
            for hd, b in zip(s.hands, bboxes):
                est.add(((s.id, hd.side), img, b, np.asarray(hd.joints_3d)))
        if clip is not None and s.prompt:
            clip.add((s.id, img, s.prompt))
    for b in (whole, crops, est, clip):
        if b is not None:
            b.flush()
    if ext is not None:
        scan.feats = np.concatenate(feats) if feats else None
        scan.crop_feats = np.concatenate(crop_feats) if crop_feats else None
    return scan


@dataclass
class ImageEvalResult:
    rows: dict[str, dict[str, float | int | None]]
    tools: dict[str, str]
    notes: list[str]
    per_sample: dict[str, list[dict]]
    scans: dict[str, DatasetScan]
    real: DatasetScan


def _fid_kid(real: np.ndarray | None, fake: np.ndarray | None, tools: ImageTools) -> tuple:
    if real is None or fake is None or len(real) < 2 or len(fake) < 2:
        return None, None, None
    kid, kid_std = kid_from_features(real, fake, tools.kid_subsets, tools.kid_subset_size)
    return fid_from_features(real, fake), kid, kid_std


def evaluate_images(
    real: str | Path,
    fakes: list[str | Path],
    tools: ImageTools,
    names: list[str] | None = None,
    limit: int | None = None,
    score_real: bool = False,
) -> ImageEvalResult:
    """Table 1 rows, one per generated dataset (plus the real set as a reference row if asked)."""
    names = names or [Path(f).name for f in fakes]
    if len(names) != len(fakes) or len(set(names)) != len(names):
        raise UserError("--names must give one distinct name per --fake folder")
    notes = []
    if tools.extractor is None:
        notes.append(
            "FID/KID/FID-H/KID-H skipped: no feature extractor (pass --inception-weights, or --extractor "
            "world for offline numbers from the micro world's extractor)."
        )
    if tools.detector is None:
        notes.append(
            "Hand Conf./MSE-2D skipped: no 2D detector (install the mediapipe extra, or pass --detector "
            "world or --detector import:...)."
        )
    if tools.estimator is None:
        notes.append("MSE-3D skipped: no 3D estimator (pass --estimator).")
    if tools.clip is None:
        notes.append("CLIP score skipped: no local CLIP model (pass --clip DIR).")
    # Validate every input before the long passes start.
    for f in [real, *fakes]:
        read_image_dataset(f, limit)
    real_scan = scan_dataset(real, tools, "real", limit, labels=score_real)
    rows, per_sample, scans = {}, {}, {}
    if score_real:
        rows["Real (reference)"] = _label_metrics(real_scan)
    real_index = {s.id: i for i, s in enumerate(real_scan.samples)}
    for name, fake in zip(names, fakes):
        scan = scan_dataset(fake, tools, name, limit)
        scans[name] = scan
        fid, kid, kid_std = _fid_kid(real_scan.feats, scan.feats, tools)
        fid_h, kid_h, kid_h_std = _fid_kid(real_scan.crop_feats, scan.crop_feats, tools)
        row = {
            "FID": fid,
            "KID": kid,
            "FID-H": fid_h,
            "KID-H": kid_h,
            "KID_std": kid_std,
            "KID-H_std": kid_h_std,
        }
        row.update(_label_metrics(scan))
        row["num_images"] = len(scan.samples)
        row["num_hand_crops"] = 0 if scan.crop_feats is None else len(scan.crop_feats)
        rows[name] = row
        per_sample[name] = _per_sample(scan, real_scan, real_index)
    if real_scan.feats is not None and len(real_scan.feats) < 2:
        notes.append("FID/KID need at least 2 images per set.")
    if tools.extractor is not None:
        few = [
            n
            for n, sc in [("real", real_scan), *scans.items()]
            if sc.crop_feats is None or len(sc.crop_feats) < 2
        ]
        if few:
            notes.append(
                f"FID-H/KID-H skipped: fewer than 2 labelled hands (hand crops) in {', '.join(few)}."
            )
    tool_names = {
        "feature_extractor": extractor_name(tools.extractor) if tools.extractor is not None else None,
        "detector_2d": getattr(tools.detector, "name", type(tools.detector).__name__)
        if tools.detector
        else None,
        "estimator_3d": getattr(tools.estimator, "name", type(tools.estimator).__name__)
        if tools.estimator
        else None,
        "clip": getattr(tools.clip, "name", type(tools.clip).__name__) if tools.clip else None,
        "hand_crop": f"square {tools.crop_scale}x max(w,h) around the bbox centre, zero-padded, "
        f"resized to {extractor_input_size(tools.extractor) if tools.extractor is not None else 299}",
    }
    return ImageEvalResult(rows, tool_names, notes, per_sample, scans, real_scan)


def _label_metrics(scan: DatasetScan) -> dict:
    out: dict = {"Hand Conf.": None, "MSE-2D": None, "MSE-3D": None, "CLIP": None}
    if scan.hand_scores:
        s = summarise(scan.hand_scores)
        out.update(
            {"Hand Conf.": s["hand_conf"], "MSE-2D": s["mse_2d"], "detection_rate": s["detection_rate"]}
        )
    if scan.est:
        vals = np.array(list(scan.est.values()))
        out["MSE-3D"] = float(vals[:, 0].mean() * 1e4)  # m² -> cm²
        out["MPJPE-3D_mm"] = float(vals[:, 1].mean() * 1e3)
    if scan.clip:
        out["CLIP"] = float(np.mean(list(scan.clip.values())))
    return out


def _per_sample(scan: DatasetScan, real: DatasetScan, real_index: dict[str, int]) -> list[dict]:
    by_id: dict[str, list[HandScore]] = {}
    for hs in scan.hand_scores:
        by_id.setdefault(hs.sample_id, []).append(hs)
    rows = []
    for i, s in enumerate(scan.samples):
        row: dict = {"id": s.id, "file_name": s.file_name}
        errs = [h.sq_error for h in by_id.get(s.id, []) if h.sq_error is not None]
        if s.id in by_id:
            row["mse_2d"] = float(np.mean(errs)) if errs else None
            row["hand_conf"] = float(np.mean([h.confidence for h in by_id[s.id]]))
        est = [scan.est[(s.id, h.side)][0] * 1e4 for h in s.hands if (s.id, h.side) in scan.est]
        if est:
            row["mse_3d"] = float(np.mean(est))
        if s.id in scan.clip:
            row["clip"] = scan.clip[s.id]
        if scan.feats is not None and real.feats is not None and s.id in real_index:
            row["feature_distance"] = float(np.linalg.norm(scan.feats[i] - real.feats[real_index[s.id]]))
        rows.append(row)
    return rows
