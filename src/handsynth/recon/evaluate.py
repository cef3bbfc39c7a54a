"""``recon eval``: predict a record dataset with a checkpoint; score and report it with ``handsynth.eval``.

Ground-truth joints are the records' ``joints_3d``; ground-truth vertices come from the records' hand
parameters through the hand model (per side), when every record uses the network's hand model —
otherwise vertex metrics are left out rather than compared across different meshes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from handsynth.data.folder import dataset_root, read_dataset
from handsynth.eval.recon_eval import evaluate_recon
from handsynth.eval.recon_io import HandEntry, pair_hands
from handsynth.eval.report import write_recon_report
from handsynth.recon.model import load_hand_model_for
from handsynth.recon.predict import ReconEstimator, predict_dataset, write_freihand_pred


def gt_vertices(
    samples: list, hand_models: dict[str, nn.Module], model_name: str, batch_size: int = 64
) -> dict[tuple[str, str], np.ndarray] | None:
    """Camera-frame vertices of every hand from its parameters, or None if a record uses another model.

    ``hand_models`` add their mean pose (``flat_hand_mean`` False): a record's absolute ``hand_pose``
    (``source.flat_hand_mean``, e.g. HO3D) has it subtracted first, so its mean is not added twice.
    """
    if any(h.model != model_name for s in samples for h in s.hands):
        return None
    out = {}
    flat = {s.id for s in samples if s.flat_hand_mean}
    for side, m in hand_models.items():
        hands = [(s.id, h) for s in samples for h in s.hands if h.side == side]
        buf = next(iter(m.buffers()), None)
        device = buf.device if buf is not None else torch.device("cpu")
        for i in range(0, len(hands), batch_size):
            chunk = hands[i : i + batch_size]

            def t(name: str, chunk: list = chunk, device: torch.device = device) -> torch.Tensor:
                return torch.tensor([getattr(h, name) for _, h in chunk], dtype=torch.float32, device=device)

            pose = t("hand_pose")
            absolute = torch.tensor([sid in flat for sid, _ in chunk], device=device)
            mean = getattr(m, "hand_mean", None)
            if mean is not None and absolute.any():
                pose = torch.where(absolute[:, None], pose - mean.to(pose), pose)
            with torch.no_grad():
                res = m(
                    global_orient=t("global_orient"),
                    hand_pose=pose,
                    betas=t("betas"),
                    transl=t("transl"),
                )
            for (sid, _), v in zip(chunk, res.vertices.double().cpu().numpy()):
                out[(sid, side)] = v
    return out


def evaluate_checkpoint(
    estimator: ReconEstimator,
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    hand_models: dict[str, nn.Module] | None = None,
    progress: bool = True,
    command: str = "",
) -> dict[str, Any]:
    """Write ``pred.json`` (FreiHAND layout) and the evaluation stage's report (``metrics.json``,
    ``report.md``, PCK plots, best/worst grid) to ``out_dir``; returns the metrics dict."""
    samples = read_dataset(data)
    root = dataset_root(data)
    keys, pred = predict_dataset(estimator, data, progress=progress)
    if hand_models is None:
        hand_models = {
            "right": estimator.model.hand_model,
            "left": load_hand_model_for(estimator.cfg, "left"),
        }
    gverts = gt_vertices(samples, hand_models, estimator.cfg.hand_model)
    gt = [
        HandEntry(
            s.id,
            h.side,
            np.asarray(h.joints_3d, np.float64),
            None if gverts is None else gverts[(s.id, h.side)],
            image=root / s.file_name if s.file_name else None,
            K=np.asarray(s.K, np.float64),
        )
        for s in samples
        for h in s.hands
    ]
    pred_entries = [
        HandEntry(sid, side, pred["joints"][i].astype(np.float64), pred["verts"][i].astype(np.float64))
        for i, (sid, side) in enumerate(keys)
    ]
    pairs = pair_hands(pred_entries, gt)
    result = evaluate_recon(pairs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_freihand_pred(out / "pred.json", pred["joints"], pred["verts"])
    return write_recon_report(result, pairs, out, command, method="recon")
