"""3D hand estimators for MSE-3D: protocol, the lazy loader of the built-in one, and the metric.

Protocol: ``predict(images: list[uint8 HxWx3], bboxes: (N, 4) xywh px) -> (N, 21, 3)`` metres,
OpenPose-21 order; image i and bbox i describe one hand. MSE-3D compares root-relative joints
(wrist subtracted from both) with the record's ``joints_3d``: per hand, the mean over the 21 joints of
the squared Euclidean distance, reported in cm² (MPJPE in mm is given beside it).
"""

from __future__ import annotations

import importlib
from typing import Protocol, runtime_checkable

import numpy as np

from handsynth.errors import UserError


@runtime_checkable
class Hand3DEstimator(Protocol):
    def predict(self, images: list[np.ndarray], bboxes: np.ndarray) -> np.ndarray: ...


def load_estimator(spec: str, device: str = "cpu") -> Hand3DEstimator:
    """``import:pkg.mod:factory`` (called with no arguments), or a checkpoint of ``handsynth.recon``.

    For a checkpoint, ``handsynth.recon.load_estimator(path, device=...)`` is used (imported lazily).
    """
    if spec.startswith("import:"):
        mod_name, _, attr = spec[len("import:") :].partition(":")
        try:
            est = getattr(importlib.import_module(mod_name), attr)()
        except (ImportError, AttributeError, ValueError) as err:
            raise UserError(
                f"--estimator {spec}: cannot import it ({err}); write import:package.module:factory"
            ) from err
    else:
        try:
            recon = importlib.import_module("handsynth.recon")
            loader = recon.load_estimator
        except (ImportError, AttributeError) as err:
            raise UserError(
                f"--estimator {spec}: this install has no handsynth.recon.load_estimator to read a reconstruction "
                "checkpoint; pass import:module:factory for another 3D estimator"
            ) from err
        est = loader(spec, device=device)
    if not hasattr(est, "predict"):
        raise UserError(f"--estimator {spec}: the object has no predict(images, bboxes) method")
    return est


def squared_root_relative_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per hand (N,): mean over joints of squared distance (m²) after subtracting each wrist."""
    p = np.asarray(pred, np.float64)
    g = np.asarray(gt, np.float64)
    p = p - p[:, :1]
    g = g - g[:, :1]
    return ((p - g) ** 2).sum(-1).mean(-1)


def root_relative_mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per hand (N,): mean root-relative joint distance (m)."""
    p = np.asarray(pred, np.float64)
    g = np.asarray(gt, np.float64)
    return np.linalg.norm((p - p[:, :1]) - (g - g[:, :1]), axis=-1).mean(-1)
