"""``recon eval``: predict a record dataset with a checkpoint and score it with ``handsynth.eval``'s metrics.

Ground-truth joints are the records' ``joints_3d``; ground-truth vertices come from the records' hand
parameters through the hand model (per side), when every record uses the network's hand model —
otherwise vertex metrics are left out rather than compared across different meshes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from handsynth.data.folder import atomic_write_bytes
from handsynth.recon.predict import ReconEstimator, predict_dataset, write_freihand_pred


def gt_vertices(
    samples: list, hand_models: dict[str, nn.Module], model_name: str
) -> dict[tuple[str, str], np.ndarray] | None:
    """Camera-frame vertices of every hand from its parameters, or None if a record uses another model."""
    if any(h.model != model_name for s in samples for h in s.hands):
        return None
    out = {}
    with torch.no_grad():
        for s in samples:
            for h in s.hands:
                m = hand_models[h.side]
                p = next(iter(m.buffers()), None)
                dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32

                def t(x: list, dtype: torch.dtype = dtype) -> torch.Tensor:
                    return torch.tensor([x], dtype=dtype)

                res = m(
                    global_orient=t(h.global_orient),
                    hand_pose=t(h.hand_pose),
                    betas=t(h.betas),
                    transl=t(h.transl),
                )
                out[(s.id, h.side)] = res.vertices[0].double().numpy()
    return out


def evaluate_checkpoint(
    estimator: ReconEstimator,
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    hand_models: dict[str, nn.Module] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``pred.json`` (FreiHAND layout), ``metrics.json`` and ``report.md`` to ``out_dir``."""
    from handsynth.data.folder import read_dataset
    from handsynth.eval.recon_eval import evaluate_recon
    from handsynth.eval.recon_io import HandEntry, pair_hands
    from handsynth.recon.model import load_hand_model_for

    samples = read_dataset(data)
    keys, pred = predict_dataset(estimator, data, progress=progress)
    if hand_models is None:
        hand_models = {side: load_hand_model_for(estimator.cfg, side) for side in ("right", "left")}
    gverts = gt_vertices(samples, hand_models, estimator.cfg.hand_model)
    gt = [
        HandEntry(s.id, h.side, np.asarray(h.joints_3d), None if gverts is None else gverts[(s.id, h.side)])
        for s in samples
        for h in s.hands
    ]
    pred_entries = [
        HandEntry(sid, side, pred["joints"][i].astype(np.float64), pred["verts"][i].astype(np.float64))
        for i, (sid, side) in enumerate(keys)
    ]
    result = evaluate_recon(pair_hands(pred_entries, gt))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_freihand_pred(out / "pred.json", pred["joints"], pred["verts"])
    metrics = {"summary": result.summary, "extra": result.extra, "data": str(data)}
    atomic_write_bytes(out / "metrics.json", json.dumps(metrics, indent=2).encode())
    rows = "".join(f"\n{json.dumps(r)}" for r in result.per_hand).lstrip("\n") + "\n"
    atomic_write_bytes(out / "per_hand.jsonl", rows.encode())
    lines = [
        "# Reconstruction evaluation",
        "",
        f"data: `{data}`, hands: {len(keys)}",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for k, v in {**result.summary, **result.extra}.items():
        lines.append(f"| {k} | {'n/a' if v is None else (f'{v:.3f}' if isinstance(v, float) else v)} |")
    lines += ["", "Distances in mm (root-relative; PA = Procrustes-aligned); AUC over 0-50 mm; F@5/15 mm."]
    atomic_write_bytes(out / "report.md", ("\n".join(lines) + "\n").encode())
    return metrics
