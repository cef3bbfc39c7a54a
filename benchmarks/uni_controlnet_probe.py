"""Uni-ControlNet vs ControlNet at an equal, small budget on the embedded micro base (a probe, not the
micro benchmark): does the local adapter learn to follow the maps, and how fast?

    python benchmarks/uni_controlnet_probe.py [--work outputs/uni_probe] [--steps 300]

Renders micro-world data (wild 200 for training, wild 64 as the real reference, lab 64 poses with mesh
and seg maps to generate from), trains with the micro benchmark's guidance settings (batch 4, lr 3e-4)
Uni-ControlNet with the released recipe's text/condition dropout, Uni-ControlNet without dropout, and
the ControlNet row (AttentionHand's loop, global branch, no TAS); generates 64 images each with the
released inference (DDIM 20, CFG 9, seed 0) and the text-only base; scores them with the world's
feature extractor and hand detector shipped with the default model. Resumable: each step skips when
its output exists. Writes ``benchmarks/results/uni_controlnet_probe.md`` + ``.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def handsynth(*args: object) -> None:
    subprocess.run([sys.executable, "-m", "handsynth.cli", *map(str, args)], check=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default=str(REPO / "outputs" / "uni_probe"))
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args(argv)
    from handsynth.micro.assets import default_model

    work, model = Path(args.work), default_model()
    t0 = time.time()
    for name, domain, n, seed, maps in (
        ("wild", "wild", 200, 0, "mesh,seg"),
        ("wild_test", "wild", 64, 1, "mesh"),
        ("lab64", "lab", 64, 2, "mesh,seg"),
    ):
        if not (work / name / "metadata.jsonl").exists():
            out = ["--out", work / name, "--size", 64, "--seed", seed, "--maps", maps]
            handsynth("world", "render", "--domain", domain, "--n", n, *out)
    common = ["--in", work / "wild", "--base-model", model.base, "--set", "model.resolution=64"]
    budget = [
        *("--set", f"train.max_steps={args.steps}", "--set", "train.batch_size=4"),
        *("--set", "train.learning_rate=3e-4", "--set", "train.checkpoint_every=0"),
        *("--set", "train.validate_every=0", "--set", "train.log_every=10"),
    ]
    uni = [
        "--method",
        "uni-controlnet",
        "--set",
        "model.maps=[mesh, seg]",
        "--set",
        "model.stem_channels=[16,32,32]",
    ]
    nodrop = ["--set", "data.drop_text_prob=0", "--set", "data.keep_all_maps_prob=1"]
    nodrop += ["--set", "data.drop_all_maps_prob=0"]
    runs = {
        "micro_uni": uni,
        "micro_uni_nodrop": [*uni, *nodrop],
        "micro_cn": [
            *("--method", "attentionhand", "--set", "model.branches=[global]", "--set", "tas.enabled=false"),
            *("--set", "model.conditioning_embedding_out_channels=[16,32,32]"),
        ],
    }
    for name, extra in runs.items():
        if not (work / name / "handsynth_config.yaml").exists() or not any(
            (work / name / d / "config.json").exists() for d in ("uni_controlnet", "controlnet")
        ):
            handsynth("train", *extra, *common, *budget, "--out", work / name)
    gen = ["--in", work / "lab64", "--steps", 20, "--guidance", 9, "--seed", 0, "--batch-size", 16]
    sets = {
        "gen_sd": ["--method", "sd", "--base-model", model.base],
        "gen_cn": [
            "--method",
            "controlnet",
            "--checkpoint",
            work / "micro_cn" / "controlnet",
            "--base-model",
            model.base,
        ],
        "gen_uni": ["--method", "uni-controlnet", "--checkpoint", work / "micro_uni"],
        "gen_uni_nodrop": ["--method", "uni-controlnet", "--checkpoint", work / "micro_uni_nodrop"],
    }
    for name, method in sets.items():
        if not (work / name / "metadata.jsonl").exists():
            handsynth("generate", *method, *gen, "--out", work / name)

    from PIL import Image

    from handsynth.data import read_dataset
    from handsynth.eval.image_eval import ImageTools, evaluate_images
    from handsynth.micro.detector import WorldHandDetector
    from handsynth.micro.features import WorldFeatureExtractor

    tools = ImageTools(
        extractor=WorldFeatureExtractor.load(model.tool("features")),
        detector=WorldHandDetector.load(model.tool("detector")),
        kid_subset_size=64,
    )
    names = {
        "gen_sd": "SD (text only)",
        "gen_cn": "ControlNet",
        "gen_uni": "Uni-ControlNet (released recipe)",
    }
    names["gen_uni_nodrop"] = "Uni-ControlNet, no dropout"
    res = evaluate_images(work / "wild_test", [work / k for k in names], tools, names=list(names.values()))

    def pixels(folder: Path) -> np.ndarray:
        return np.stack(
            [
                np.asarray(Image.open(folder / r.file_name).convert("RGB"), np.float32)
                for r in read_dataset(folder)
            ]
        )

    sd = pixels(work / "gen_sd")
    rows = {}
    for key, label in names.items():
        row = {k: float(v) for k, v in res.rows[label].items() if isinstance(v, (int, float))}
        row["change vs SD (mean abs. difference per pixel, of 255)"] = float(
            np.abs(pixels(work / key) - sd).mean()
        )
        rows[label] = row
    cols = [
        "FID",
        "FID-H",
        "Hand Conf.",
        "detection_rate",
        "MSE-2D",
        "change vs SD (mean abs. difference per pixel, of 255)",
    ]
    lines = [
        "# Uni-ControlNet probe: equal small budget on the micro base",
        "",
        f"`python benchmarks/uni_controlnet_probe.py --steps {args.steps}` ({time.strftime('%Y-%m-%d')}, "
        f"{time.time() - t0:.0f} s this invocation). One seed, 64 images per row, 64 real wild photos: "
        "a probe of learning speed, not evidence for the paper's table.",
        "",
        "| row | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for label, row in rows.items():
        lines.append(f"| {label} | " + " | ".join(f"{row.get(c, float('nan')):.3f}" for c in cols) + " |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "uni_controlnet_probe.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "uni_controlnet_probe.json").write_text(
        json.dumps({"steps": args.steps, "rows": rows}, indent=2)
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
