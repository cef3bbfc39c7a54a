"""3D hand reconstruction metrics (AttentionHand Table 2, FreiHAND, InterWild), vectorised numpy.

Conventions (docs/eval.md): inputs in metres, outputs in millimetres; the root is joint 0 (the wrist,
OpenPose-21 order). "Root-relative" subtracts each hand's own root joint (vertices too, using the
same hand's root joint). "PA" is a similarity Procrustes alignment (rotation with det +1, isotropic
scale, translation) fitted separately for joints and for vertices, as FreiHAND's evaluation does.
PCK-AUC and F-scores use the PA-aligned errors (FreiHAND convention); the root-relative AUCs and
F-scores (root-relative vertices, HandBooster's Tables 1-5) are reported beside them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

ROOT = 0  # wrist
PCK_MAX_M = 0.05  # AUC of PCK over 0-50 mm
PCK_STEPS = 100
F_THRESHOLDS_M = (0.005, 0.015)


def _nan_for_nonfinite_items(
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray], pred: np.ndarray, gt: np.ndarray, shape: tuple
) -> np.ndarray | None:
    """``fn`` over the batch items (B, N, 3) where both sides are finite and NaN for the others, or None
    when every item is finite (the caller computes directly): one NaN hand must not stop a batch's SVD
    or k-d trees."""
    finite = np.isfinite(pred).all(axis=(1, 2)) & np.isfinite(gt).all(axis=(1, 2))
    if finite.all():
        return None
    out = np.full(shape, np.nan)
    if finite.any():
        out[finite] = fn(pred[finite], gt[finite])
    return out


def similarity_procrustes(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Align ``pred`` (B, N, 3) to ``gt`` with the best similarity transform (Umeyama, no reflection).

    Returns the aligned prediction. Minimises ||s R x + t - y||² per batch item. An item holding NaN or
    infinity comes back all NaN (its error is NaN) instead of stopping the batch's SVD.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    out = _nan_for_nonfinite_items(similarity_procrustes, pred, gt, np.broadcast_shapes(pred.shape, gt.shape))
    if out is not None:
        return out
    mu_p = pred.mean(axis=1, keepdims=True)
    mu_g = gt.mean(axis=1, keepdims=True)
    x = pred - mu_p
    y = gt - mu_g
    h = np.einsum("bni,bnj->bij", x, y)  # (B, 3, 3) = X^T Y
    u, s, vt = np.linalg.svd(h)
    # Reflection fix: flip the last singular direction where det(U V^T) < 0.
    d = np.sign(np.linalg.det(u @ vt))
    d[d == 0] = 1.0
    u = u.copy()
    u[:, :, -1] *= d[:, None]
    s = s.copy()
    s[:, -1] *= d
    r = u @ vt  # x @ r ≈ y
    var_x = (x**2).sum(axis=(1, 2))
    scale = s.sum(axis=1) / np.maximum(var_x, 1e-12)
    return scale[:, None, None] * (x @ r) + mu_g


def root_relative(points: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Subtract each hand's root joint: points (B, N, 3), joints (B, 21, 3)."""
    return points - joints[:, ROOT : ROOT + 1]


def per_point_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean distance per point (B, N)."""
    return np.linalg.norm(np.asarray(pred, np.float64) - np.asarray(gt, np.float64), axis=-1)


def pck_curve(
    errors: np.ndarray, max_m: float = PCK_MAX_M, steps: int = PCK_STEPS
) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds (steps,) in metres over [0, max_m] and the fraction of points within each."""
    thresholds = np.linspace(0.0, max_m, steps)
    flat = np.asarray(errors).reshape(-1)
    pck = (flat[None, :] <= thresholds[:, None]).mean(axis=1)
    return thresholds, pck


def auc(thresholds: np.ndarray, pck: np.ndarray) -> float:
    """Area under the PCK curve normalised to [0, 1] (trapezoid rule)."""
    y = np.asarray(pck, np.float64)
    x = np.asarray(thresholds, np.float64)
    area = float(((y[1:] + y[:-1]) * np.diff(x)).sum() / 2.0)
    return area / float(x[-1] - x[0])


def nearest_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each point of ``a`` (B, N, 3), the distance to its nearest point of ``b`` (B, M, 3).

    A k-d tree per sample keeps dense meshes (OpenHand's 15k vertices) fast and small in memory.
    """
    from scipy.spatial import cKDTree

    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return np.stack([cKDTree(b[k]).query(a[k], k=1)[0] for k in range(a.shape[0])])


def f_score(pred: np.ndarray, gt: np.ndarray, threshold: float) -> np.ndarray:
    """Per-sample F-score at ``threshold`` metres between point sets (B, N, 3) and (B, M, 3); NaN for a
    sample holding NaN or infinity (as its Procrustes errors), instead of stopping the batch's k-d trees."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    out = _nan_for_nonfinite_items(lambda p, g: f_score(p, g, threshold), pred, gt, (len(pred),))
    if out is not None:
        return out
    precision = (nearest_distances(pred, gt) < threshold).mean(axis=1)
    recall = (nearest_distances(gt, pred) < threshold).mean(axis=1)
    denom = precision + recall
    return np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1.0), 0.0)


@dataclass
class HandErrors:
    """Per-hand errors (metres) for one set of matched hands; vertex fields are None without vertices."""

    mpjpe: np.ndarray  # (B,)
    pa_mpjpe: np.ndarray
    joint_err: np.ndarray  # (B, 21) root-relative
    pa_joint_err: np.ndarray
    mpvpe: np.ndarray | None = None
    pa_mpvpe: np.ndarray | None = None
    vert_err: np.ndarray | None = None  # (B, V) root-relative
    pa_vert_err: np.ndarray | None = None
    f_scores: dict[float, np.ndarray] = field(default_factory=dict)  # threshold -> (B,), after PA
    rr_f_scores: dict[float, np.ndarray] = field(default_factory=dict)  # threshold -> (B,), root-relative


def hand_errors(
    pred_joints: np.ndarray,
    gt_joints: np.ndarray,
    pred_verts: np.ndarray | None = None,
    gt_verts: np.ndarray | None = None,
) -> HandErrors:
    """Root-relative and Procrustes-aligned errors of matched hands (B, 21, 3) [+ (B, V, 3)]."""
    pj = np.asarray(pred_joints, np.float64)
    gj = np.asarray(gt_joints, np.float64)
    if pj.shape != gj.shape or pj.ndim != 3 or pj.shape[-1] != 3:
        raise ValueError(f"joint arrays must both be (B, 21, 3); got {pj.shape} and {gj.shape}")
    je = per_point_error(root_relative(pj, pj), root_relative(gj, gj))
    pa_je = per_point_error(similarity_procrustes(pj, gj), gj)
    out = HandErrors(mpjpe=je.mean(1), pa_mpjpe=pa_je.mean(1), joint_err=je, pa_joint_err=pa_je)
    if pred_verts is not None and gt_verts is not None:
        pv = np.asarray(pred_verts, np.float64)
        gv = np.asarray(gt_verts, np.float64)
        if pv.shape != gv.shape or pv.shape[0] != pj.shape[0]:
            raise ValueError(f"vertex arrays disagree: {pv.shape} vs {gv.shape}")
        ve = per_point_error(root_relative(pv, pj), root_relative(gv, gj))
        pa_v = similarity_procrustes(pv, gv)
        pa_ve = per_point_error(pa_v, gv)
        out.mpvpe, out.pa_mpvpe, out.vert_err, out.pa_vert_err = ve.mean(1), pa_ve.mean(1), ve, pa_ve
        out.f_scores = {t: f_score(pa_v, gv, t) for t in F_THRESHOLDS_M}
        rr_pv, rr_gv = root_relative(pv, pj), root_relative(gv, gj)
        out.rr_f_scores = {t: f_score(rr_pv, rr_gv, t) for t in F_THRESHOLDS_M}
    return out


def mrrpe(
    pred_right: np.ndarray, pred_left: np.ndarray, gt_right: np.ndarray, gt_left: np.ndarray
) -> np.ndarray:
    """Mean relative-root position error per two-hand sample (metres): ‖(pL−pR) − (gL−gR)‖ on the roots.

    Inputs are absolute (camera-frame) joints (B, 21, 3) of each side.
    """
    p = pred_left[:, ROOT] - pred_right[:, ROOT]
    g = gt_left[:, ROOT] - gt_right[:, ROOT]
    return np.linalg.norm(p - g, axis=-1)


def right_relative_error(
    pred_right_joints: np.ndarray,
    gt_right_joints: np.ndarray,
    pred_points: np.ndarray,
    gt_points: np.ndarray,
) -> np.ndarray:
    """RRVE per sample (metres): mean point error after moving both hands by the right-hand root.

    ``pred_points``/``gt_points`` (B, N, 3) hold both hands' points (vertices for RRVE, joints for the
    joint variant RRJE), absolute; each set is translated by its own right-hand root joint.
    """
    p = pred_points - pred_right_joints[:, ROOT : ROOT + 1]
    g = gt_points - gt_right_joints[:, ROOT : ROOT + 1]
    return per_point_error(p, g).mean(axis=1)
