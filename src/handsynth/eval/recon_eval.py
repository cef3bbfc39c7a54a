"""Evaluate paired hands into the Table 2 numbers (mm) plus per-hand errors and PCK curves."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from handsynth.eval.recon_io import HandEntry
from handsynth.eval.recon_metrics import (
    F_THRESHOLDS_M,
    HandErrors,
    auc,
    hand_errors,
    mrrpe,
    pck_curve,
    right_relative_error,
)

TABLE2_COLUMNS = ["MPJPE", "PA-MPJPE", "MPVPE", "PA-MPVPE", "AUC_J", "AUC_V", "F@5", "F@15", "MRRPE", "RRVE"]
# HandBooster's 12-column layout (its Tables 1-5): Procrustes-aligned, then root-relative, each
# J-PE, J-AUC, V-PE, V-AUC, F@5, F@15 -> the key holding it in ``flat_metrics``.
HANDBOOSTER_COLUMNS = {
    "PA J-PE": "PA-MPJPE",
    "PA J-AUC": "AUC_J",
    "PA V-PE": "PA-MPVPE",
    "PA V-AUC": "AUC_V",
    "PA F@5": "F@5",
    "PA F@15": "F@15",
    "RR J-PE": "MPJPE",
    "RR J-AUC": "AUC_J_root_relative",
    "RR V-PE": "MPVPE",
    "RR V-AUC": "AUC_V_root_relative",
    "RR F@5": "F@5_root_relative",
    "RR F@15": "F@15_root_relative",
}
LAYOUTS = {"table2": TABLE2_COLUMNS, "handbooster": list(HANDBOOSTER_COLUMNS)}


@dataclass
class ReconResult:
    """Aggregates (``summary``: Table 2 keys, mm / fractions), curves and per-hand rows."""

    summary: dict[str, float | None]
    extra: dict
    curves: dict[str, tuple[list[float], list[float]]]  # name -> (thresholds mm, pck)
    per_hand: list[dict] = field(default_factory=list)


def _mm(x: np.ndarray | None) -> float | None:
    return None if x is None or len(x) == 0 else float(np.mean(x) * 1000.0)


def _stack(pairs: list[tuple[HandEntry, HandEntry]]) -> tuple:
    pj = np.stack([p.joints for p, _ in pairs])
    gj = np.stack([g.joints for _, g in pairs])
    have_v = all(p.verts is not None and g.verts is not None for p, g in pairs)
    have_v = have_v and len({p.verts.shape for p, _ in pairs} | {g.verts.shape for _, g in pairs}) == 1
    pv = np.stack([p.verts for p, _ in pairs]) if have_v else None
    gv = np.stack([g.verts for _, g in pairs]) if have_v else None
    return pj, gj, pv, gv


def evaluate_recon(pairs: list[tuple[HandEntry, HandEntry]]) -> ReconResult:
    """All Table 2 metrics for matched (pred, gt) hands; two-hand metrics over samples with both sides."""
    pj, gj, pv, gv = _stack(pairs)
    notes = []
    if pv is None:
        if not all(p.verts is not None for p, _ in pairs) or not all(g.verts is not None for _, g in pairs):
            notes.append("vertex metrics skipped: vertices are missing on one side (pred or gt)")
        else:
            notes.append("vertex metrics skipped: predicted and ground-truth meshes differ in vertex count")
    err: HandErrors = hand_errors(pj, gj, pv, gv)
    curves: dict[str, tuple[list[float], list[float]]] = {}
    aucs: dict[str, float | None] = {}
    for name, e in [
        ("joints_pa", err.pa_joint_err),
        ("joints", err.joint_err),
        ("vertices_pa", err.pa_vert_err),
        ("vertices", err.vert_err),
    ]:
        if e is None:
            aucs[name] = None
            continue
        t, p = pck_curve(e)
        curves[name] = ((t * 1000).tolist(), p.tolist())
        aucs[name] = auc(t, p)

    # Two-hand samples: both sides present in the ground truth (keyed inputs only).
    by_id: dict[str, dict[str, int]] = {}
    for i, (_, g) in enumerate(pairs):
        if g.keyed:
            by_id.setdefault(g.sample_id, {})[g.side] = i
    two = [d for d in by_id.values() if "right" in d and "left" in d]
    mrrpe_v = rrve_v = rrje_v = None
    if two:
        r = np.array([d["right"] for d in two])
        l = np.array([d["left"] for d in two])
        mrrpe_v = mrrpe(pj[r], pj[l], gj[r], gj[l])
        rrje_v = right_relative_error(
            pj[r], gj[r], np.concatenate([pj[r], pj[l]], 1), np.concatenate([gj[r], gj[l]], 1)
        )
        if pv is not None:
            rrve_v = right_relative_error(
                pj[r], gj[r], np.concatenate([pv[r], pv[l]], 1), np.concatenate([gv[r], gv[l]], 1)
            )

    f = {t: float(np.mean(v)) for t, v in err.f_scores.items()}
    rr_f = {t: float(np.mean(v)) for t, v in err.rr_f_scores.items()}
    summary = {
        "MPJPE": _mm(err.mpjpe),
        "PA-MPJPE": _mm(err.pa_mpjpe),
        "MPVPE": _mm(err.mpvpe),
        "PA-MPVPE": _mm(err.pa_mpvpe),
        "AUC_J": aucs["joints_pa"],
        "AUC_V": aucs["vertices_pa"],
        "F@5": f.get(F_THRESHOLDS_M[0]),
        "F@15": f.get(F_THRESHOLDS_M[1]),
        "MRRPE": _mm(mrrpe_v),
        "RRVE": _mm(rrve_v),
    }
    extra = {
        "AUC_J_root_relative": aucs["joints"],
        "AUC_V_root_relative": aucs["vertices"],
        "F@5_root_relative": rr_f.get(F_THRESHOLDS_M[0]),
        "F@15_root_relative": rr_f.get(F_THRESHOLDS_M[1]),
        "RRJE": _mm(rrje_v),
        "num_hands": len(pairs),
        "num_two_hand_samples": len(two),
        "has_vertices": pv is not None,
        "notes": notes,
    }
    per_hand = []
    for i, (_, g) in enumerate(pairs):
        row = {
            "id": g.sample_id,
            "side": g.side,
            "mpjpe_mm": float(err.mpjpe[i] * 1000),
            "pa_mpjpe_mm": float(err.pa_mpjpe[i] * 1000),
        }
        if err.mpvpe is not None:
            row["mpvpe_mm"] = float(err.mpvpe[i] * 1000)
            row["pa_mpvpe_mm"] = float(err.pa_mpvpe[i] * 1000)
        per_hand.append(row)
    return ReconResult(summary=summary, extra=extra, curves=curves, per_hand=per_hand)


def flat_metrics(summary: dict, extra: dict) -> dict[str, float | None]:
    """Table 2's summary plus the root-relative AUCs and F-scores (one dict: any layout reads from it)."""
    rr = ("AUC_J_root_relative", "AUC_V_root_relative", "F@5_root_relative", "F@15_root_relative")
    return {**summary, **{k: extra.get(k) for k in rr}}


def layout_row(metrics: dict, layout: str = "table2") -> dict[str, float | None]:
    """The columns of ``layout`` (table2 | handbooster) from ``flat_metrics`` output, in order."""
    if layout == "handbooster":
        return {col: metrics.get(key) for col, key in HANDBOOSTER_COLUMNS.items()}
    return {col: metrics.get(col) for col in TABLE2_COLUMNS}
