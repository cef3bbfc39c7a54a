"""Can anything tell left from right in the world's photos? Free vs anatomical arms, side by side.

Why: the caption classifier probe (micro_caption_classifier.md) found that the micro base does not know
the side word (true caption wins 51 %, like the null control), and the world feature extractor reads
side at chance on real photos. If a network trained to read side (among the world's other facts)
cannot read it from the photos either, the world hides it and no base can learn it. For each arm
model, the probe renders a wild world (same seeds, sizes and backgrounds as the full profile), trains
the world feature extractor on its training photos (side is one of its heads; flips swap the side
label, valid because both arm models are mirror-symmetric as a whole), and scores side on held-out
photos from other seeds: accuracy, kappa over the majority rate (gate (b3)'s measure) and Cohen's
kappa, next to the trivial row (always the majority side) and a shuffled-label control.
The extractor's other heads (background, gesture, skin tone, object) are scored too: they show whether
the net learns what the photos do show.

    python benchmarks/micro/side_visibility_probe.py --work /tmp/side_probe \
        --out benchmarks/results/micro_side_visibility.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def cohen_kappa(truth: np.ndarray, pred: np.ndarray) -> float:
    """Cohen's kappa of two label arrays (agreement over what the two label rates give by chance)."""
    labels = np.union1d(truth, pred)
    po = float(np.mean(truth == pred))
    pe = float(sum(np.mean(truth == k) * np.mean(pred == k) for k in labels))
    return (po - pe) / (1 - pe) if pe < 1 else 0.0


def render(out: Path, arm_model: str, n: int, seed: int, size: int, palm_contrast: str = "subtle") -> None:
    """One wild world as the full profile's wild_train (hand 50-75 % of the side, 4 fixed backgrounds,
    objects in 30 % of hands)."""
    if (out / "metadata.jsonl").exists():
        return
    cmd = [
        str(Path(sys.executable).parent / "handsynth"),
        "world",
        "render",
        "--domain",
        "wild",
        "--n",
        str(n),
    ]
    cmd += ["--out", str(out), "--size", str(size), "--seed", str(seed), "--maps", "mesh", "--no-local"]
    cmd += [
        "--hand-fraction",
        "0.5,0.75",
        "--backgrounds",
        "4",
        "--object-prob",
        "0.3",
        "--arm-model",
        arm_model,
        "--palm-contrast",
        palm_contrast,
    ]
    subprocess.run(cmd, check=True, env={**os.environ, "TQDM_DISABLE": "1"})


def main(argv: list[str] | None = None) -> int:
    import torch
    from gates import majority_kappa

    from handsynth.micro.data import load_world
    from handsynth.micro.features import train_feature_extractor
    from handsynth.world.config import ARM_MODELS
    from handsynth.world.skin import PALM_CONTRASTS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, type=Path, help="folder for the rendered worlds")
    p.add_argument("--train", type=int, default=2000, help="training photos per world (default 2000)")
    p.add_argument("--test", type=int, default=400, help="held-out photos per world (default 400)")
    p.add_argument("--steps", type=int, default=1500, help="feature-extractor steps (default 1500)")
    p.add_argument("--size", type=int, default=64, help="photo side (default 64, the full profile's)")
    p.add_argument("--arm-models", nargs="+", default=["free", "anatomical"], choices=ARM_MODELS)
    p.add_argument(
        "--palm-contrast",
        choices=PALM_CONTRASTS,
        default="subtle",
        help="the world's palm against back (skin.PALM_CONTRASTS; default subtle, the full profile's)",
    )
    p.add_argument(
        "--controls",
        nargs="+",
        default=["true", "shuffled"],
        choices=["true", "shuffled"],
        help="side labels to train on (default both: the true ones and the shuffled control)",
    )
    p.add_argument("--out", type=Path, default=None, help="markdown table (and .json beside it)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    rows, result = [], {}
    for arm in a.arm_models:
        t0 = time.time()
        world = a.work / (f"{arm}_{a.size}" + ("" if a.palm_contrast == "subtle" else f"_{a.palm_contrast}"))
        render(world / "train", arm, a.train, 21, a.size, a.palm_contrast)
        render(world / "test", arm, a.test, 22, a.size, a.palm_contrast)
        train = load_world([world / "train"], a.size)
        test = load_world([world / "test"], a.size)
        truth = np.array([lab["side"] for lab in test.labels])
        majority = max(set(truth), key=list(truth).count)
        tones = np.array([int(t) if (t := lab["skin_tone"]).isdigit() else 0 for lab in test.labels])
        for control in (f"{c} labels" for c in a.controls):
            labels = [dict(lab) for lab in train.labels]
            if control == "shuffled labels":
                sides = np.random.default_rng(0).permutation([lab["side"] for lab in labels])
                for lab, s in zip(labels, sides):
                    lab["side"] = str(s)
            arrays = type(train)(train.images, train.keypoints, train.bboxes, labels, train.ids)
            net, _ = train_feature_extractor(arrays, steps=a.steps, seed=0, holdout=0.0, augment=True)
            with torch.no_grad():
                x = torch.from_numpy(test.images).permute(0, 3, 1, 2).float()
                heads = [net.logits(x[i : i + 128]) for i in range(0, len(x), 128)]
            preds = {  # every head: the others show whether the net learns what the photos do show
                head: np.array([names[k] for k in torch.cat([h[head] for h in heads]).argmax(1).tolist()])
                for head, names in net.vocab.items()
            }
            read = {
                head: cohen_kappa(np.array([lab[head] for lab in test.labels]), preds[head]) for head in preds
            }
            acc = float(np.mean(preds["side"] == truth))
            over_majority = majority_kappa(acc, list(truth))[1]  # gate (b3)'s measure
            # palm and back differ little on light skin (MST 1-4) and much on dark (5-10): split by tone
            by_tone = {
                name: float(np.mean(preds["side"][m] == truth[m]))
                for name, m in (("MST 1-4", (tones >= 1) & (tones <= 4)), ("MST 5-10", tones >= 5))
                if m.any()
            }
            result[f"{arm} / {control}"] = {
                "accuracy": acc,
                "kappa_over_majority": over_majority,
                "kappa": read["side"],
                "n_test": len(truth),
                "heads": read,
                "accuracy_by_tone": by_tone,
            }
            others = ", ".join(f"{h} {k:+.2f}" for h, k in read.items() if h not in ("side", "domain"))
            tone_acc = ", ".join(f"{k} {v:.0%}" for k, v in by_tone.items())
            rows.append(
                f"| {arm} | {control} | {acc:.0%} | {over_majority:+.2f} | {read['side']:+.2f} | {tone_acc} "
                f"| {others} |"
            )
            print(rows[-1], flush=True)
        acc = float(np.mean(truth == majority))
        result[f"{arm} / always {majority}"] = {
            "accuracy": acc,
            "kappa_over_majority": 0.0,
            "kappa": 0.0,
            "n_test": len(truth),
        }
        rows.append(f"| {arm} | trivial: always {majority} | {acc:.0%} | +0.00 | +0.00 | | |")
        print(f"  {arm}: {time.time() - t0:.0f} s", flush=True)
    table = [
        f"Wild worlds at {a.size} px, palm contrast {a.palm_contrast}: {a.train} training photos (seed 21), {a.test} held-out photos (seed 22), "
        f"world feature extractor {a.steps} steps with flips.",
        "",
        "| arm model | side labels trained on | held-out side accuracy | side kappa over the majority "
        "((b3)'s measure) | side Cohen's kappa | side accuracy by skin tone | other heads' Cohen's kappa |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    print("\n".join(table))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        intro = (__doc__ or "").split("\n\n")[1]
        a.out.write_text("# Side visibility probe\n\n" + intro + "\n\n" + "\n".join(table) + "\n")
        a.out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
