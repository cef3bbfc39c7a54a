"""Yardsticks of the micro benchmark: trivial predictors, PCK, hand presence, and the gates built on them.

Why: a metric only says something about a generator when the tool behind it beats a predictor that
looks at nothing. This module computes those trivial rows (all keypoints at the image centre, every
joint at the wrist, the mean training pose), the world detector's PCK@0.1 and hand-present rate on a
dataset folder, and the gate rules the report prints before any claim is judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from handsynth.data.records import Sample

PCK_THRESHOLD = 0.1  # of the hand box's longer side


def pck(pred: np.ndarray, gt: np.ndarray, bboxes: np.ndarray, threshold: float = PCK_THRESHOLD) -> np.ndarray:
    """Per image (N,): the fraction of the 21 joints within ``threshold`` x the box's longer side."""
    pred, gt, bboxes = (np.asarray(a, np.float64) for a in (pred, gt, bboxes))
    dist = np.linalg.norm(pred - gt, axis=-1)  # (N, 21)
    scale = np.maximum(bboxes[:, 2], bboxes[:, 3])[:, None]
    return (dist <= threshold * scale).mean(-1)


def mse_2d(pred: np.ndarray, gt: np.ndarray) -> float:
    """MSE-2D as the image evaluation defines it: mean over images of the mean squared joint distance."""
    return float((((np.asarray(pred, np.float64) - np.asarray(gt, np.float64)) ** 2).sum(-1)).mean())


def centre_keypoints(gt: np.ndarray, width: float, height: float) -> np.ndarray:
    """The trivial 2D predictor: all 21 keypoints at the image centre, shaped like ``gt``."""
    return np.broadcast_to(np.array([width / 2, height / 2]), np.shape(gt)).copy()


def wrist_mse_3d_cm2(joints_3d: np.ndarray) -> float:
    """MSE-3D (cm², root-relative) of the trivial 3D predictor that puts every joint at the wrist."""
    j = np.asarray(joints_3d, np.float64)
    rel = j - j[:, :1]
    return float((rel**2).sum(-1).mean(-1).mean() * 1e4)


@dataclass
class DetectorScan:
    """The world detector over one dataset folder (first hand per record), in that folder's pixels."""

    keypoints: np.ndarray  # (N, 21, 2) detected
    confidence: np.ndarray  # (N,)
    gt: np.ndarray  # (N, 21, 2) labelled
    bboxes: np.ndarray  # (N, 4)
    size: tuple[int, int]

    @property
    def pck(self) -> float:
        return float(pck(self.keypoints, self.gt, self.bboxes).mean())

    @property
    def mse_2d(self) -> float:
        return mse_2d(self.keypoints, self.gt)

    @property
    def centre_mse_2d(self) -> float:
        return mse_2d(centre_keypoints(self.gt, *self.size), self.gt)


def load_images(folder: str | Path) -> list[np.ndarray]:
    """Every image of a dataset folder as RGB uint8 arrays, in record order."""
    from handsynth.data import read_dataset

    return _images(folder, [s for s in read_dataset(folder) if s.file_name])


def _images(folder: str | Path, samples: list[Sample]) -> list[np.ndarray]:
    from PIL import Image

    from handsynth.data import dataset_root

    root = dataset_root(folder)
    out = []
    for s in samples:
        with Image.open(root / s.file_name) as im:
            out.append(np.asarray(im.convert("RGB")))
    return out


def scan_detector(detector, folder: str | Path, labels_from: str | Path | None = None) -> DetectorScan:
    """Run ``detector`` on every image of ``folder``; labels from ``labels_from`` (default: the same
    records; a generated set keeps its condition's labels in its own records)."""
    from handsynth.data import read_dataset

    samples = [s for s in read_dataset(folder) if s.file_name]
    labels = {s.id: s for s in read_dataset(labels_from)} if labels_from else {s.id: s for s in samples}
    samples = [s for s in samples if labels.get(s.id) is not None and labels[s.id].hands]
    imgs = _images(folder, samples)
    kps, conf, gts, boxes = [], [], [], []
    for s, img, dets in zip(samples, imgs, detector.detect_batch(imgs)):
        lab = labels[s.id]
        h, w = img.shape[:2]
        sx, sy = w / lab.width, h / lab.height
        kps.append(np.asarray(dets[0].keypoints, np.float64))
        conf.append(float(dets[0].confidence))
        gts.append(np.asarray(lab.hands[0].joints_2d, np.float64) * [sx, sy])
        boxes.append(np.asarray(lab.hands[0].bbox, np.float64) * [sx, sy, sx, sy])
    size = imgs[0].shape[1::-1] if imgs else (0, 0)
    return DetectorScan(np.array(kps), np.array(conf), np.array(gts), np.array(boxes), tuple(size))


def confidences(detector, folder: str | Path) -> np.ndarray:
    """The detector's confidence on every image of ``folder`` (hands or not)."""

    return np.array([d[0].confidence for d in detector.detect_batch(load_images(folder))])


def presence_threshold(
    no_hand_conf: np.ndarray, false_positive_rate: float = 0.05, hand_conf: np.ndarray | None = None
) -> float:
    """The confidence above which the detector says "hand", from calibration splits (fresh splits then
    measure its error rates).

    Without ``hand_conf``: the (1 - rate) quantile on no-hand photos. With real hand photos too: the
    middle of the gap between that quantile and the hands' ``rate`` quantile (the widest margin on both
    sides). Why: no-hand confidences sit in a narrow band (0.016-0.025 in the full world), so a threshold
    at their tail flagged generated clean backgrounds (0.03-0.3) as hands while generated hands scored
    0.3-0.5 and real ones ~0.6; a margin threshold tolerates the generator's shift both ways."""
    lo = float(np.quantile(np.asarray(no_hand_conf, np.float64), 1.0 - false_positive_rate))
    if hand_conf is None or not len(hand_conf):
        return lo
    hi = float(np.quantile(np.asarray(hand_conf, np.float64), false_positive_rate))
    return (lo + hi) / 2 if hi > lo else lo


def constant_pose_rows(train: list[Sample], test: list[Sample], hand_models: dict) -> dict[str, dict]:
    """Table 2's trivial rows on ``test``: the mean training pose (per side) and every point at the wrist.

    Returns {row name: the recon evaluation's summary (MPJPE, PA-MPJPE, MPVPE, ...)}.
    """
    from handsynth.eval.recon_eval import evaluate_recon, flat_metrics
    from handsynth.eval.recon_io import HandEntry
    from handsynth.recon.evaluate import gt_vertices

    tv = gt_vertices(train, hand_models, train[0].hands[0].model) if train else None
    gv = gt_vertices(test, hand_models, test[0].hands[0].model) if test else None
    mean: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for side in ("right", "left"):
        hands = [(s.id, h) for s in train for h in s.hands if h.side == side]
        if not hands:
            continue
        j = np.array([np.asarray(h.joints_3d) - np.asarray(h.joints_3d)[:1] for _, h in hands])
        v = None
        if tv is not None:
            v = np.array([tv[(sid, side)] - np.asarray(h.joints_3d)[:1] for sid, h in hands]).mean(0)
        mean[side] = (j.mean(0), v)
    rows: dict[str, dict] = {}
    for name in ("mean training pose", "all points at the wrist"):
        pairs = []
        for s in test:
            for h in s.hands:
                gj = np.asarray(h.joints_3d, np.float64)
                gvert = None if gv is None else gv[(s.id, h.side)]
                if name == "mean training pose":
                    mj, mv = mean.get(h.side) or next(iter(mean.values()))
                    pj, pv = gj[:1] + mj, None if mv is None else gj[:1] + mv
                else:
                    pj = np.repeat(gj[:1], 21, 0)
                    pv = None if gvert is None else np.repeat(gj[:1], len(gvert), 0)
                pairs.append((HandEntry(s.id, h.side, pj, pv), HandEntry(s.id, h.side, gj, gvert)))
        res = evaluate_recon(pairs)
        rows[name] = flat_metrics(res.summary, res.extra)  # + root-relative AUC / F (HandBooster)
    return rows


@dataclass
class Gate:
    """One gate or yardstick requirement: measured value, threshold and whether it passed."""

    name: str
    value: float | None
    threshold: float
    passed: bool | None  # None: not measured
    detail: str = ""

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "value": self.value,
            "threshold": self.threshold,
            "passed": self.passed,
            "detail": self.detail,
        }


def at_least(name: str, value: float | None, threshold: float, detail: str = "") -> Gate:
    """A gate that passes when ``value >= threshold`` (not measured when value is None)."""
    ok = None if value is None or not np.isfinite(value) else bool(value >= threshold)
    return Gate(name, value, threshold, ok, detail)


def at_most(name: str, value: float | None, threshold: float, detail: str = "") -> Gate:
    """A gate that passes when ``value <= threshold``."""
    ok = None if value is None or not np.isfinite(value) else bool(value <= threshold)
    return Gate(name, value, threshold, ok, detail)
