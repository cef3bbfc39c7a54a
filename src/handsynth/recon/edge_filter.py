"""HandBooster's edge-case filter: score every hand of a generated set with a reconstruction model
trained on real data and keep only the records whose labels the image supports.

A hand whose prediction is far from its label is either an image the generator got wrong (the label no
longer matches the pixels) or a pose the estimator cannot read; either way it teaches a downstream
model the wrong thing. Errors per hand: root-relative MPJPE / MPVPE and Procrustes-aligned PA-MPJPE /
PA-MPVPE (mm). A record is rejected when any error of any of its hands exceeds its threshold.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from handsynth.data import DatasetWriter, dataset_root, read_dataset
from handsynth.data.carry import carry_record
from handsynth.data.images import load_rgb
from handsynth.data.records import Sample
from handsynth.errors import UserError
from handsynth.eval.plots import grid, histogram_plot, skeleton_tile
from handsynth.eval.recon_metrics import hand_errors
from handsynth.eval.report import atomic_write, md_table, save_png, write_json
from handsynth.pinhole import project
from handsynth.progress import progress
from handsynth.recon.evaluate import gt_vertices
from handsynth.recon.model import load_hand_model_for
from handsynth.recon.predict import ReconEstimator, predict_dataset

METRICS = ("mpjpe", "mpvpe", "pa_mpjpe", "pa_mpvpe")
VERTEX_METRICS = ("mpvpe", "pa_mpvpe")
LABELS = {"mpjpe": "MPJPE", "mpvpe": "MPVPE", "pa_mpjpe": "PA-MPJPE", "pa_mpvpe": "PA-MPVPE"}
# Thresholds (mm) of the paper's two settings, in METRICS order.
PRESETS = {"dexycb": (25.0, 25.0, 10.0, 10.0), "ho3d": (50.0, 50.0, 20.0, 20.0)}
PERCENTILE = "percentile:"
REPORT_WORST = 8  # rejected hands shown in the contact sheet


def parse_preset(text: str) -> str | float:
    """``dexycb`` | ``ho3d`` | ``percentile:Q`` (0 < Q <= 100, returned as the float Q)."""
    if text in PRESETS:
        return text
    if text.startswith(PERCENTILE):
        try:
            q = float(text[len(PERCENTILE) :])
        except ValueError:
            q = math.nan
        if 0 < q <= 100:
            return q
    raise UserError(
        f"--preset {text!r} is unknown; use {', '.join(PRESETS)} or percentile:Q with 0 < Q <= 100 "
        "(e.g. percentile:95)"
    )


@dataclass
class HandScores:
    """Errors (mm) of every scored hand, in record order then hand order."""

    keys: list[tuple[str, str]]  # (record id, side)
    errors: dict[str, np.ndarray]  # metric -> (N,) mm; vertex metrics absent when skipped
    pred_joints: np.ndarray  # (N, 21, 3) camera frame, metres
    gt_joints: np.ndarray
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def score_hands(
    estimator: ReconEstimator,
    data: str | os.PathLike,
    hand_models: dict[str, Any] | None = None,
    show_progress: bool = True,
) -> HandScores:
    """Predict every labelled hand of ``data`` and measure it against the record's labels.

    Vertex metrics need the records' hand model to be the estimator's (its vertices are compared one
    to one); otherwise they are skipped with a note. ``hand_models`` (side -> model) overrides the
    models the ground-truth vertices are posed with.
    """
    samples = read_dataset(data)
    if not samples:
        raise UserError(f"{data} holds no records to filter")
    bare = next((s for s in samples if not s.hands), None)
    if bare is not None:
        raise UserError(
            f"record {bare.id} of {data} has no 3D hand labels to score: the filter compares a prediction "
            "with each hand's joints_3d, so pass generated records (every one has hands)"
        )
    start = time.perf_counter()
    keys, pred = predict_dataset(estimator, data, progress=show_progress)
    seconds = time.perf_counter() - start
    gt = {(s.id, h.side): h for s in samples for h in s.hands}
    rows = [i for i, k in enumerate(keys) if k in gt]  # unlabelled hands are predicted, not scored
    keys = [keys[i] for i in rows]
    pj = pred["joints"][rows].astype(np.float64)
    gj = np.stack([np.asarray(gt[k].joints_3d, np.float64) for k in keys])
    notes: list[str] = []
    if hand_models is None:
        hand_models = {
            "right": estimator.model.hand_model,
            "left": load_hand_model_for(estimator.cfg, "left"),
        }
    gverts = gt_vertices(samples, hand_models, estimator.cfg.hand_model)
    if gverts is None:
        notes.append(
            f"vertex metrics skipped: the records' hand model differs from the estimator's "
            f"({estimator.cfg.hand_model}), so their vertices do not correspond; MPVPE/PA-MPVPE thresholds "
            "are not applied"
        )
        err = hand_errors(pj, gj)
    else:
        gv = np.stack([gverts[k] for k in keys])
        err = hand_errors(pj, gj, pred["verts"][rows].astype(np.float64), gv)
    errors = {"mpjpe": err.mpjpe * 1000.0, "pa_mpjpe": err.pa_mpjpe * 1000.0}
    if err.mpvpe is not None:
        errors["mpvpe"] = err.mpvpe * 1000.0
        errors["pa_mpvpe"] = err.pa_mpvpe * 1000.0
    broken_rows = np.flatnonzero(~np.isfinite(pj).all(axis=(1, 2)))
    for v in errors.values():  # NaN, not an infinite MPJPE: rejected by decide, left out of percentiles
        v[broken_rows] = np.nan
    broken = [keys[i] for i in broken_rows]
    if broken:  # their errors are NaN: rejected by decide, left out of percentiles and histograms
        notes.append(
            f"{len(broken)} hands got a NaN or infinite prediction from the estimator (first: record "
            f"{broken[0][0]}, {broken[0][1]}): they are rejected and left out of the error statistics"
        )
    return HandScores(keys, errors, pj, gj, notes, seconds)


def resolve_thresholds(
    preset: str | float | None,
    explicit: dict[str, float | None],
    reference: HandScores | None = None,
    given: tuple[dict[str, float], str] | None = None,
) -> tuple[dict[str, float], str]:
    """Thresholds (mm) per metric and a words description of where they came from.

    A preset sets all four (``percentile:Q``: the Q-th percentile of the estimator's errors on the
    reference set, for data whose scale differs from DexYCB's), or ``given`` (``load_thresholds``) sets
    those an earlier run used; explicit ``--max-*`` values override single metrics. Metrics without a
    threshold are not checked.
    """
    out: dict[str, float] = dict(given[0]) if given else {}
    source = [given[1]] if given else []
    if isinstance(preset, str):
        out.update(zip(METRICS, PRESETS[preset]))
        source.append(f"preset {preset}")
    elif preset is not None:
        if reference is None:
            raise UserError(
                f"--preset percentile:{preset:g} needs --reference REAL_DIR: the thresholds are that "
                "percentile of the estimator's errors on real data"
            )
        for m, v in reference.errors.items():
            if not np.isfinite(v).any():
                raise UserError(
                    f"the estimator predicted no finite hand on the reference set, so there is no {m} "
                    f"percentile to use as a threshold; check the estimator on real data (or pass --max-* values)"
                )
            out[m] = float(np.nanpercentile(v, preset))
        source.append(f"{preset:g}th percentile of the estimator's errors on the reference set")
    overrides = {m: float(v) for m, v in explicit.items() if v is not None}
    out.update(overrides)
    if overrides:
        source.append(
            "explicit " + ", ".join(f"--max-{m.replace('_', '-')} {v:g}" for m, v in overrides.items())
        )
    if not out:
        raise UserError(
            "no threshold given: pass --preset dexycb|ho3d|percentile:Q or at least one of "
            "--max-mpjpe, --max-mpvpe, --max-pa-mpjpe, --max-pa-mpvpe (mm)"
        )
    return out, "; ".join(source)


def load_thresholds(path: str | os.PathLike) -> tuple[dict[str, float], str]:
    """Thresholds (mm) and their source from an earlier ``filter_report.json`` (or any JSON with a
    ``thresholds_mm`` mapping): many generated sets filtered against one reference score it once."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"--thresholds {path}: cannot read it as JSON ({e})") from None
    block = data.get("summary", data) if isinstance(data, dict) else None
    values = block.get("thresholds_mm") if isinstance(block, dict) else None
    if not isinstance(values, dict) or not values:
        raise UserError(
            f"--thresholds {path}: no thresholds_mm mapping in it; pass a filter_report.json written by "
            '`handsynth filter` or a JSON {"thresholds_mm": {"mpjpe": 25, ...}}'
        )
    bad = [k for k, v in values.items() if k not in METRICS or not isinstance(v, (int, float)) or v < 0]
    if bad:
        raise UserError(
            f"--thresholds {path}: thresholds_mm entries {bad} are not non-negative numbers for "
            f"{', '.join(METRICS)}"
        )
    source = block.get("thresholds_from") or "given"
    return {k: float(v) for k, v in values.items()}, f"{path} ({source})"


def resumed_thresholds(out: str | os.PathLike, thresholds: dict[str, float]) -> dict[str, float]:
    """The thresholds a killed run into ``out`` started with, when ``thresholds`` match them up to float
    noise; else ``thresholds`` unchanged.

    Why: percentile thresholds are recomputed from the reference set on every run, and its errors move
    in the last digits with ``--batch-size`` or ``--threads`` (1e-6 mm at batch 1 vs 3). Compared
    exactly, such a rerun was refused as "different settings (thresholds_mm...)" though nothing was
    changed; reusing the stored values also keeps one set of thresholds for every record of the folder.
    """
    stored = Path(out) / "handsynth_run.json"
    try:
        old = json.loads(stored.read_text()).get("thresholds_mm")
    except (OSError, ValueError, AttributeError):
        return thresholds
    if not isinstance(old, dict) or old.keys() != thresholds.keys():
        return thresholds
    if not all(isinstance(old[m], (int, float)) for m in old):
        return thresholds
    if all(math.isclose(old[m], v, rel_tol=1e-6, abs_tol=1e-9) for m, v in thresholds.items()):
        return {m: float(old[m]) for m in thresholds}
    return thresholds


@dataclass
class Decision:
    """Per record: kept or not, and which (side, metric) exceeded its threshold."""

    kept: dict[str, bool]
    failures: dict[str, list[tuple[str, str]]]
    applied: dict[str, float]  # the thresholds actually checked (vertex ones dropped when skipped)


def decide(scores: HandScores, thresholds: dict[str, float]) -> Decision:
    """Reject a record when any of its hands has any error strictly above its threshold (or NaN: a
    prediction that is not a hand cannot vouch for its image)."""
    applied = {m: t for m, t in thresholds.items() if m in scores.errors}
    kept: dict[str, bool] = {}
    failures: dict[str, list[tuple[str, str]]] = {}
    for i, (rid, side) in enumerate(scores.keys):
        bad = [(side, m) for m, t in applied.items() if not scores.errors[m][i] <= t]
        failures.setdefault(rid, []).extend(bad)
        kept[rid] = kept.get(rid, True) and not bad
    return Decision(kept, failures, applied)


def filter_dataset(
    estimator: ReconEstimator,
    data: str | os.PathLike,
    out: str | os.PathLike,
    thresholds: dict[str, float],
    threshold_source: str,
    config: dict[str, Any],
    scores: HandScores | None = None,
    overwrite: bool = False,
    command: str = "",
    hand_models: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score ``data``, write the kept records to ``out`` (images linked, not copied) with
    ``filter_report.md/json``, the error histograms and a contact sheet of the worst rejects."""
    samples = read_dataset(data)
    if scores is None:
        scores = score_hands(estimator, data, hand_models)
    decision = decide(scores, thresholds)
    src_root = dataset_root(data)
    writer = DatasetWriter(Path(out), config=config, overwrite=overwrite, lock=True)
    kept_samples = [s for s in samples if decision.kept.get(s.id, False)]
    for s in progress(kept_samples, desc="filter: write kept", unit="record"):
        if not writer.has(s.id):
            writer.write(*carry_record(s, src_root, writer.root))
    writer.meta.touch()  # nothing kept is still a dataset: the next step says "no records", not "no such file"
    return write_filter_report(
        Path(out), samples, src_root, scores, decision, threshold_source, command, config
    )


def _worst_rejects(scores: HandScores, decision: Decision, k: int) -> list[int]:
    """Rejected hands with a finite prediction, worst first by their largest error/threshold ratio."""
    ratios = []
    for i, (rid, _) in enumerate(scores.keys):
        if decision.kept[rid] or not np.isfinite(scores.pred_joints[i]).all():
            continue
        r = max(scores.errors[m][i] / max(t, 1e-9) for m, t in decision.applied.items())
        ratios.append((r, i))
    return [i for _, i in sorted(ratios, reverse=True)[:k]]


def _reject_sheet(
    scores: HandScores, decision: Decision, samples: dict[str, Sample], root: Path
) -> Image.Image | None:
    picks = _worst_rejects(scores, decision, REPORT_WORST)
    if not picks:
        return None
    rows, labels = [], []
    for i in picks:
        rid, side = scores.keys[i]
        s = samples[rid]
        K = np.asarray(s.K, np.float64)
        gt, pred = scores.gt_joints[i], scores.pred_joints[i]
        pred = pred - pred[:1] + gt[:1]  # root-aligned, as MPJPE measures it
        image = root / s.file_name if s.file_name else None
        if image is not None and image.is_file():
            tile = skeleton_tile(
                project(pred, K), project(gt, K), background=load_rgb(image, f"record {rid}")
            )
        else:
            tile = skeleton_tile(pred[:, :2], gt[:, :2])
        rows.append([tile])
        errs = ", ".join(f"{LABELS[m]} {scores.errors[m][i]:.1f}" for m in METRICS if m in scores.errors)
        labels.append(f"{rid} {side}: {errs} mm")
    return grid(rows, labels, title="worst rejected hands (green = label, red = estimator)")


def write_filter_report(
    out: Path,
    samples: list[Sample],
    root: Path,
    scores: HandScores,
    decision: Decision,
    threshold_source: str,
    command: str,
    config: dict[str, Any],
) -> dict[str, Any]:
    """``filter_report.json`` (every number), ``filter_report.md`` and its figures in ``out``."""
    n_rec = len(decision.kept)
    n_kept = sum(decision.kept.values())
    per_metric = {
        m: int(sum(1 for rid in decision.failures for _, mm in decision.failures[rid] if mm == m))
        for m in decision.applied
    }
    figures = []
    for m, values in scores.errors.items():
        name = f"filter_hist_{m}.png"
        save_png(histogram_plot(values, f"{LABELS[m]} per hand", "mm", decision.applied.get(m)), out / name)
        figures.append(name)
    sheet = _reject_sheet(scores, decision, {s.id: s for s in samples}, root)
    if sheet is not None:
        save_png(sheet, out / "filter_rejects.png")
    rate = scores.seconds and len(scores.keys) / scores.seconds
    summary = {
        "records": n_rec,
        "kept": n_kept,
        "rejected": n_rec - n_kept,
        "pass_rate": n_kept / n_rec if n_rec else None,
        "hands": len(scores.keys),
        "thresholds_mm": decision.applied,
        "thresholds_from": threshold_source,
        "hands_over_threshold": per_metric,
        "images_per_second": rate,
    }
    report = {
        "kind": "edge_filter",
        "command": command,
        "config": config,
        "summary": summary,
        "notes": scores.notes,
        "error_stats_mm": {
            m: {
                q: float(np.nanpercentile(v, p))
                for q, p in (("p50", 50), ("p90", 90), ("p95", 95), ("max", 100))
            }
            for m, v in scores.errors.items()
        },
        "records": [
            {
                "id": rid,
                "kept": decision.kept[rid],
                "over": [f"{side}:{m}" for side, m in decision.failures[rid]],
            }
            for rid in decision.kept
        ],
        "hands": [
            {"id": rid, "side": side, **{f"{m}_mm": float(scores.errors[m][i]) for m in scores.errors}}
            for i, (rid, side) in enumerate(scores.keys)
        ],
    }
    write_json(out / "filter_report.json", report)
    stats = report["error_stats_mm"]
    md = [
        "# Edge-case filter",
        "",
        f"`{command}`" if command else "",
        "",
        f"Kept **{n_kept} of {n_rec}** records (pass rate {100 * summary['pass_rate']:.1f} %), "
        f"{len(scores.keys)} hands scored at {rate:.1f} images/s. A record is rejected when any error of "
        "any of its hands exceeds its threshold.",
        "",
        f"Thresholds from: {threshold_source}.",
        "",
        md_table(
            ["metric", "threshold (mm)", "hands over", "median (mm)", "p95 (mm)", "max (mm)"],
            [
                [
                    LABELS[m],
                    f"{decision.applied[m]:.1f}" if m in decision.applied else "not checked",
                    str(per_metric.get(m, "–")),
                    f"{stats[m]['p50']:.1f}",
                    f"{stats[m]['p95']:.1f}",
                    f"{stats[m]['max']:.1f}",
                ]
                for m in METRICS
                if m in scores.errors
            ],
        ),
        "",
        *[f"- Note: {n}" for n in scores.notes],
        "",
        *[f"![{f}]({f})" for f in figures],
        "",
        "![worst rejected hands](filter_rejects.png)" if sheet is not None else "No record was rejected.",
        "",
    ]
    atomic_write(out / "filter_report.md", "\n".join(md).encode())
    return report
