"""Metrics a suite adds to the Table 1 rows (config ``extra_metrics``): text alignment and FID-H by
hand-size tercile. Run inside ``run.py --job metrics`` after ``evaluate_images``.

- *Text align.*: the micro world's CLIP-score stand-in. The world feature extractor's side, gesture and
  object heads classify each generated image; the score is the share of heads that name the facts the
  image's prompt was made from (the held-out record's side, gesture and object), averaged over the heads.
- *FID-H small / mid / large*: FID-H on the hand crops of one hand-size tercile (box side; cut points
  from the reference set's hands), the paper's stated limitation being small hands.
"""

from __future__ import annotations

import numpy as np
import torch

TEXT_HEADS = ("side", "gesture", "object")
TERCILES = ("small", "mid", "large")


def _facts(r) -> dict[str, dict[str, str]]:
    """Held-out record id -> its world facts (what every prompt style was made from)."""
    from handsynth.data import read_dataset
    from handsynth.micro.data import attribute_values

    return {s.id: attribute_values(s) for s in read_dataset(r.gen_poses)}


def text_alignment(extractor, scan, facts: dict[str, dict[str, str]]) -> dict[str, float | None]:
    """Per-head and mean accuracy of ``extractor``'s heads on ``scan``'s images against ``facts``."""
    from handsynth.micro.yardsticks import load_images

    samples = [s for s in scan.samples if s.file_name]
    ordered = list(facts.values())
    images = np.stack(load_images(scan.root)) if samples else None
    hits: dict[str, list[bool]] = {k: [] for k in TEXT_HEADS if k in extractor.vocab}
    if images is None or len(images) != len(samples):
        return {"Text align.": None}
    with torch.no_grad():
        logits = extractor.logits(torch.from_numpy(images).permute(0, 3, 1, 2))
    for i, s in enumerate(samples):
        want = facts.get(s.id) or (ordered[i] if i < len(ordered) else None)
        if want is None:
            continue
        for k in hits:
            vocab = extractor.vocab[k]
            if want[k] in vocab:  # a fact the head never saw cannot be read back
                hits[k].append(int(logits[k][i].argmax()) == vocab.index(want[k]))
    out: dict[str, float | None] = {
        f"Text align. {k}": float(np.mean(v)) if v else None for k, v in hits.items()
    }
    per_head = [v for v in out.values() if v is not None]
    out["Text align."] = float(np.mean(per_head)) if per_head else None
    return out


def _sizes(scan) -> np.ndarray:
    return np.array([max(s.hands[0].bbox[2], s.hands[0].bbox[3]) / s.width for s in scan.samples if s.hands])


def fid_h_terciles(real, scan) -> dict[str, float | None]:
    """FID-H per hand-size tercile of ``scan`` against the same tercile of the reference ``real``."""
    from handsynth.eval.fid import fid_from_features

    out: dict[str, float | None] = {f"FID-H {t}": None for t in TERCILES}
    rs, fs = _sizes(real), _sizes(scan)
    if real.crop_feats is None or scan.crop_feats is None:
        return out
    if len(rs) != len(real.crop_feats) or len(fs) != len(scan.crop_feats) or len(rs) < 3:
        return out  # one crop per one-hand record is what the world writes; anything else is not scored
    cuts = np.quantile(rs, [1 / 3, 2 / 3])
    for t, (lo, hi) in zip(TERCILES, [(-np.inf, cuts[0]), (cuts[0], cuts[1]), (cuts[1], np.inf)]):
        r_sel = (rs > lo) & (rs <= hi)
        f_sel = (fs > lo) & (fs <= hi)
        if r_sel.sum() >= 2 and f_sel.sum() >= 2:
            out[f"FID-H {t}"] = float(fid_from_features(real.crop_feats[r_sel], scan.crop_feats[f_sel]))
    return out


def add_suite_metrics(r, result, extractor, rows: dict[str, dict]) -> None:
    """Add text alignment and FID-H terciles to every scored set's row (in place)."""
    facts = _facts(r)
    for name, scan in result.scans.items():
        row = rows.setdefault(name, {})
        row.update(text_alignment(extractor, scan, facts))
        row.update(fid_h_terciles(result.real, scan))
