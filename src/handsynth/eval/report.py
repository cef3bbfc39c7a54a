"""Reports of ``evaluate``: metrics.json, report.md (the papers' table layouts), PCK PNGs, sample grids.

Every file is written atomically (temp + rename), so an interrupted run never leaves half a report.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from handsynth.atomic import atomic_write_bytes
from handsynth.eval.image_eval import TABLE1_COLUMNS, ImageEvalResult, load_rgb
from handsynth.eval.plots import grid, line_plot, skeleton_tile
from handsynth.eval.recon_eval import ReconResult, flat_metrics, layout_row
from handsynth.eval.recon_io import HandEntry

FORMATS = {"FID": ".2f", "FID-H": ".2f", "KID": ".5f", "KID-H": ".5f", "Hand Conf.": ".3f", "MSE-2D": ".3f",
           "MSE-3D": ".3f", "CLIP": ".2f", "AUC_J": ".3f", "AUC_V": ".3f", "F@5": ".3f", "F@15": ".3f",
           "PA J-AUC": ".3f", "PA V-AUC": ".3f", "PA F@5": ".3f", "PA F@15": ".3f",
           "RR J-AUC": ".3f", "RR V-AUC": ".3f", "RR F@5": ".3f", "RR F@15": ".3f"}  # fmt: skip


def atomic_write(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data)


def save_png(img: Image.Image, path: Path) -> None:
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write(path, buf.getvalue())


def _clean(x):
    """JSON-safe values: numpy scalars to Python, NaN/inf to None."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_json(path: Path, obj: dict) -> None:
    atomic_write(path, (json.dumps(_clean(obj), indent=2) + "\n").encode())


def fmt(key: str, v: object) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        out = format(v, FORMATS.get(key, ".2f"))
        # Keep small non-zero values readable instead of printing 0.00.
        return format(v, ".3g") if v != 0 and float(out) == 0 else out
    return str(v)


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- images


def _rank(rows: list[dict]) -> tuple[str | None, list[dict], bool]:
    """Pick the per-sample key to rank by; returns (key, ordered rows best-first, higher_is_better)."""
    for key, higher in (("mse_2d", False), ("mse_3d", False), ("clip", True), ("feature_distance", False)):
        if any(key in r for r in rows):
            worst = -math.inf if higher else math.inf

            def val(r, key=key, worst=worst):
                v = r.get(key)
                return worst if v is None else v

            return key, sorted(rows, key=val, reverse=higher), higher
    return None, list(rows), False


def image_grid(result: ImageEvalResult, method: str, k: int = 4) -> tuple[Image.Image, str | None]:
    scan = result.scans[method]
    key, ordered, _ = _rank(result.per_sample[method])
    picks = ordered[:k] + [r for r in ordered[-k:] if r not in ordered[:k]]
    by_id = {s.id: s for s in scan.samples}
    real_by_id = {s.id: s for s in result.real.samples}
    dets = {(h.sample_id, h.side): h for h in scan.hand_scores}
    rows, labels = [], []
    for rank, r in enumerate(picks):
        s = by_id[r["id"]]
        fake = Image.fromarray(load_rgb(scan.root / s.file_name))
        sx, sy = fake.width / s.width, fake.height / s.height
        for hd in s.hands:
            det = dets.get((s.id, hd.side))
            gt = np.asarray(hd.joints_2d) * np.array([sx, sy])
            if det is not None and det.detected is not None:
                fake = skeleton_tile(det.detected, gt, background=fake)
        tiles = [fake]
        if s.id in real_by_id:
            rs = real_by_id[s.id]
            tiles.insert(0, Image.fromarray(load_rgb(result.real.root / rs.file_name)))
        group = "best" if rank < min(k, len(ordered)) else "worst"
        v = r.get(key) if key else None
        labels.append(
            f"{group}: {s.id} {key}={format(v, '.4g') if v is not None else 'none'} | {s.prompt[:80]}"
        )
        rows.append(tiles)
    title = f"{method}: best/worst by {key} (left: real, right: generated; green = label, red = detection)"
    return grid(rows, labels, title=title), key


def write_image_report(result: ImageEvalResult, out: Path, command: str = "") -> dict:
    out.mkdir(parents=True, exist_ok=True)
    metrics = {
        "kind": "images",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "tools": result.tools,
        "notes": result.notes,
        "units": {
            "MSE-2D": "px^2 (mean squared 2D joint distance)",
            "MSE-3D": "cm^2 (root-relative)",
            "CLIP": "100 x cosine",
            "KID": "unbiased MMD^2, polynomial kernel",
        },  # fmt: skip
        "rows": result.rows,
        "per_sample": result.per_sample,
    }
    write_json(out / "metrics.json", metrics)
    grids = []
    for method in result.scans:
        img, key = image_grid(result, method)
        name = f"grid_{_safe(method)}.png"
        save_png(img, out / name)
        grids.append((method, name, key))
    header = ["Method", *TABLE1_COLUMNS]
    extra_cols = ["CLIP", "detection_rate", "MPJPE-3D_mm", "num_images", "num_hand_crops"]
    md = [
        "# Image evaluation",
        "",
        "Table 1 layout (AttentionHand): FID/KID on whole images, FID-H/KID-H on hand crops, Hand Conf. and "
        "MSE-2D from the 2D detector, MSE-3D from the 3D estimator.",
        "",
        md_table(header, [[m, *(fmt(c, r.get(c)) for c in TABLE1_COLUMNS)] for m, r in result.rows.items()]),
        "",
        "Units: MSE-2D px² at the image's resolution; MSE-3D cm², root-relative (wrist); KID is the mean over "
        "subsets (std in metrics.json).",
        "",
        "## More",
        "",
        md_table(
            ["Method", *extra_cols],
            [[m, *(fmt(c, r.get(c)) for c in extra_cols)] for m, r in result.rows.items()],
        ),
        "",
        "## Tools",
        "",
        *[f"- {k}: {v if v else 'not used'}" for k, v in result.tools.items()],
        "",
    ]
    if result.notes:
        md += ["## Notes", "", *[f"- {n}" for n in result.notes], ""]
    md += ["## Samples", ""]
    for method, name, key in grids:
        md += [f"### {method} (ranked by {key or 'order'})", "", f"![{method}]({name})", ""]
    atomic_write(out / "report.md", "\n".join(md).encode())
    return metrics


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# ------------------------------------------------------------------------------------------ recon


def _project(K: np.ndarray, pts: np.ndarray) -> np.ndarray:
    z = np.maximum(pts[:, 2:3], 1e-6)
    return (pts[:, :2] / z) * np.array([K[0, 0], K[1, 1]]) + np.array([K[0, 2], K[1, 2]])


def recon_grid(result: ReconResult, pairs: list[tuple[HandEntry, HandEntry]], k: int = 4) -> Image.Image:
    order = np.argsort([r["mpjpe_mm"] for r in result.per_hand])
    picks = list(order[:k]) + [i for i in order[-k:] if i not in order[:k]]
    rows, labels = [], []
    for rank, i in enumerate(picks):
        p, g = pairs[i]
        pred_rel = p.joints - p.joints[:1] + g.joints[:1]  # root-aligned, as MPJPE measures it
        if g.image is not None and g.K is not None and g.image.is_file():
            bg = Image.fromarray(load_rgb(g.image))
            tile = skeleton_tile(_project(g.K, pred_rel), _project(g.K, g.joints), background=bg)
        else:
            flip = np.array([1.0, 1.0])  # camera frame: x right, y down, as in an image
            tile = skeleton_tile(pred_rel[:, :2] * flip, g.joints[:, :2] * flip)
        row = result.per_hand[i]
        group = "best" if rank < min(k, len(order)) else "worst"
        labels.append(
            f"{group}: {row['id']} {row['side']} MPJPE {row['mpjpe_mm']:.1f} mm PA {row['pa_mpjpe_mm']:.1f}"
        )
        rows.append([tile])
    return grid(rows, labels, title="best/worst hands by MPJPE (green = ground truth, red = prediction)")


def write_recon_report(
    result: ReconResult,
    pairs: list,
    out: Path,
    command: str = "",
    method: str = "pred",
    layout: str = "table2",
) -> dict:
    """``metrics.json`` (every number, whatever the layout), PCK plots, a sample grid and ``report.md``
    with the columns of ``layout``: table2 (AttentionHand) or handbooster (PA, then root-relative)."""
    out.mkdir(parents=True, exist_ok=True)
    metrics = {
        "kind": "recon",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "units": "mm for errors; AUC and F-scores in [0, 1]",
        "summary": result.summary,
        "extra": result.extra,
        "pck_curves": {k: {"thresholds_mm": t, "pck": p} for k, (t, p) in result.curves.items()},
        "per_hand": result.per_hand,
    }
    write_json(out / "metrics.json", metrics)
    joint_curves = {k: v for k, v in result.curves.items() if k.startswith("joints")}
    vert_curves = {k: v for k, v in result.curves.items() if k.startswith("vertices")}
    save_png(
        line_plot(joint_curves, "3D PCK, joints", "threshold (mm)", "PCK", x_range=(0, 50)),
        out / "pck_joints.png",
    )
    figs = ["pck_joints.png"]
    if vert_curves:
        save_png(
            line_plot(vert_curves, "3D PCK, vertices", "threshold (mm)", "PCK", x_range=(0, 50)),
            out / "pck_vertices.png",
        )
        figs.append("pck_vertices.png")
    save_png(recon_grid(result, pairs), out / "grid.png")
    row = layout_row(flat_metrics(result.summary, result.extra), layout)
    intro = (
        "Table 2 layout; errors in mm (root-relative; PA = similarity Procrustes), AUC of PCK over 0–50 mm "
        "(100 thresholds) and F-scores on Procrustes-aligned points."
        if layout == "table2"
        else "HandBooster layout: Procrustes-aligned (PA) then root-relative (RR) J-PE, J-AUC, V-PE, V-AUC "
        "(mm; AUC of PCK over 0–50 mm, 100 thresholds), F@5 and F@15 (vertex F-scores at 5 and 15 mm)."
    )
    md = [
        "# Reconstruction evaluation",
        "",
        intro,
        "",
        md_table(["Method", *row], [[method, *(fmt(c, v) for c, v in row.items())]]),
        "",
        f"Hands: {result.extra['num_hands']}; two-hand samples: {result.extra['num_two_hand_samples']}; "
        f"vertices: {'yes' if result.extra['has_vertices'] else 'no (joint metrics only)'}.",
        f"Root-relative AUC_J: {fmt('AUC_J', result.extra['AUC_J_root_relative'])}; "
        f"RRJE (RRVE on joints): {fmt('x', result.extra['RRJE'])} mm.",
        "",
        *[f"- Note: {n}" for n in result.extra.get("notes", [])],
        "",
        *[f"![{f}]({f})" for f in figs],
        "",
        "![samples](grid.png)",
        "",
    ]
    atomic_write(out / "report.md", "\n".join(md).encode())
    return metrics
