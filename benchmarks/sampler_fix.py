"""Before/after of the sampler fix, on the embedded default model (micro base + AttentionHand).

Until the fix, our ControlNet loop built DDIM from a scheduler config without a ``clip_sample`` key and
so clipped the predicted latent x0 to [-1, 1] at every step; the ``sd`` baseline ran diffusers' own
pipeline, which turns clipping off. This script generates the same held-out `lab` poses with the
world-style `wild` prompts (as the micro benchmark does) four ways and scores them against real `wild`
photos with the micro world's tools, next to a trivial row (blank images) and two real rows:

    python benchmarks/sampler_fix.py [--n 64] [--reference 256] [--threads 1]

Writes ``benchmarks/results/sampler_fix.md/json`` and ``sampler_fix_sheet.png`` (first images of every
row, to look at).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def _old_sampling_scheduler(scheduler_config: dict, name: str = "ddim", latent: bool = True):
    """What the code did before the fix: the sampler straight from a config that lacks clip_sample."""
    import diffusers

    from handsynth.diffusion.schedulers import SAMPLERS

    config = {
        k: v for k, v in dict(scheduler_config).items() if k not in ("clip_sample", "_use_default_values")
    }
    return getattr(diffusers, SAMPLERS[name]).from_config(config)


def _generate(method, inp: Path, out: Path, prompt_file: Path, seed: int) -> Path:
    from handsynth.generate.job import Dist, JobConfig, run_job

    job = JobConfig(
        inp=str(inp), out=str(out), prompts="file", prompt_file=str(prompt_file), seed=seed, batch_size=16
    )
    run_job(method, job, Dist())
    return out


def _blank(inp: Path, out: Path) -> Path:
    """The trivial row: every image mid-grey, the records (and labels) of the inputs."""
    from PIL import Image

    from handsynth.data import read_dataset, write_metadata

    out.mkdir(parents=True, exist_ok=True)
    samples = read_dataset(inp)
    for s in samples:
        s.file_name = f"{s.id}.png"
        s.conditions, s.local = {}, None
        Image.new("RGB", (s.width, s.height), (128, 128, 128)).save(out / s.file_name)
    write_metadata(out / "metadata.jsonl", samples)
    return out


def _sheet(rows: dict[str, Path], path: Path, k: int = 8) -> None:
    from PIL import Image, ImageDraw

    from handsynth.data import read_dataset

    cell, label = 64, 190
    sheet = Image.new("RGB", (label + k * cell, len(rows) * cell), (20, 20, 20))
    draw = ImageDraw.Draw(sheet)
    for r, (name, folder) in enumerate(rows.items()):
        draw.text((4, r * cell + cell // 2 - 6), name, fill=(230, 230, 230))
        for c, s in enumerate(read_dataset(folder)[:k]):
            with Image.open(folder / s.file_name) as im:
                sheet.paste(im.convert("RGB").resize((cell, cell)), (label + c * cell, r * cell))
    sheet.save(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=64, help="held-out lab poses generated per row")
    p.add_argument("--reference", type=int, default=256, help="real wild photos FID is measured against")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for this model)")
    p.add_argument("--work", default=str(REPO / "outputs" / "sampler_fix"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    import handsynth.methods.interface as interface
    from handsynth.data import read_dataset
    from handsynth.demo import demo_prompts
    from handsynth.eval.image_eval import ImageTools, evaluate_images
    from handsynth.methods.attentionhand.generator import AttentionHandGenerator
    from handsynth.methods.baselines.generators import SDBaseline
    from handsynth.methods.interface import SamplingConfig
    from handsynth.micro.assets import default_model
    from handsynth.micro.detector import WorldHandDetector
    from handsynth.micro.features import WorldFeatureExtractor
    from handsynth.world.config import WorldConfig
    from handsynth.world.dataset import render_world

    t0 = time.time()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model = default_model()
    size = int(model.info.get("size", 64))
    # World seeds far from the micro benchmark's training splits: held-out poses and photos.
    lab = work / "lab_poses"
    render_world(WorldConfig(domain="lab", size=size, seed=9101, maps=("mesh",), local=True), args.n, lab)
    wild = work / "wild_reference"
    render_world(WorldConfig(domain="wild", size=size, seed=9102, maps=(), local=False), args.reference, wild)
    wild2 = work / "wild_other"
    render_world(WorldConfig(domain="wild", size=size, seed=9103, maps=(), local=False), args.n, wild2)
    prompts = work / "prompts.txt"
    if not prompts.exists():
        prompts.write_text("\n".join(demo_prompts(read_dataset(lab), args.seed)) + "\n")

    sampling = SamplingConfig(steps=20, guidance=9.0).check()  # the released code's inference
    ckpt, base = str(model.checkpoint), str(model.base)
    rows: dict[str, Path] = {"blank (trivial)": _blank(lab, work / "blank")}
    rows["real wild, other photos (oracle)"] = wild2
    rows["real lab, same poses"] = lab
    rows["sd (diffusers pipeline)"] = _generate(
        SDBaseline(base_model=base, sampling=sampling), lab, work / "sd", prompts, args.seed
    )
    # The old set-up, swapped in where the generators build their sampler (make_scheduler's module).
    calls = []

    def old_setup(*a, **k):
        calls.append(1)
        return _old_sampling_scheduler(*a, **k)

    before = work / "ah_before"
    fresh = not (before / "metadata.jsonl").exists()
    real_fn = interface.sampling_scheduler
    interface.sampling_scheduler = old_setup
    try:
        rows["attentionhand, before fix (clip_sample)"] = _generate(
            AttentionHandGenerator(ckpt, base_model=base, sampling=sampling), lab, before, prompts, 0
        )
    finally:
        interface.sampling_scheduler = real_fn
    if fresh and not calls:
        raise SystemExit("the old sampler set-up was never used: make_scheduler no longer calls it here")
    rows["attentionhand, fixed"] = _generate(
        AttentionHandGenerator(ckpt, base_model=base, sampling=sampling), lab, work / "ah_fixed", prompts, 0
    )
    rows["attentionhand, fixed, scale 0"] = _generate(
        AttentionHandGenerator(ckpt, base_model=base, sampling=sampling, conditioning_scale=0.0),
        lab,
        work / "ah_scale0",
        prompts,
        0,
    )

    tools = ImageTools(
        extractor=WorldFeatureExtractor.load(model.tool("features")),
        detector=WorldHandDetector.load(model.tool("detector")),
    )
    result = evaluate_images(wild, list(rows.values()), tools, names=list(rows))
    # MSE-2D scores matched detections only; the constant prediction (all 21 joints at the image
    # centre) scores every hand, so it is the bar a detector-based number has to clear.
    import numpy as np

    errs = []
    for s in read_dataset(lab):
        for h in s.hands:
            j = np.asarray(h.joints_2d, np.float64)
            errs.append(float(np.sum((j - [s.width / 2, s.height / 2]) ** 2, axis=-1).mean()))
    centre_mse = float(np.mean(errs))

    RESULTS.mkdir(parents=True, exist_ok=True)
    _sheet(rows, RESULTS / "sampler_fix_sheet.png")
    keys = ("FID", "KID", "FID-H", "KID-H", "Hand Conf.", "MSE-2D", "detection_rate")
    lines = [
        "# Sampler fix: before / after (embedded default model)",
        "",
        f"`python benchmarks/sampler_fix.py --n {args.n} --reference {args.reference}` "
        f"(this invocation {time.time() - t0:.0f} s, torch threads {args.threads}; finished folders are reused). {args.n} held-out `lab` poses, wild-style "
        "prompts, DDIM 20 steps, CFG 9, same seeds in every row; FID/KID against "
        f"{args.reference} real `wild` photos with the world feature extractor; Hand Conf. / MSE-2D (px², matched "
        "detections only) / detection rate with the world keypoint detector against the poses' joints.",
        "",
        "| row | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for name, row in result.rows.items():
        vals = []
        for k in keys:
            v = row.get(k)
            vals.append("–" if v is None else f"{v:.3g}" if abs(v) < 100 else f"{v:.1f}")
        lines.append(f"| {name} | " + " | ".join(vals) + " |")
    lines += [
        f"| constant keypoints at the image centre (trivial, MSE-2D) | | | | | | {centre_mse:.1f} | 1 |",
        "",
        "Pictures: `sampler_fix_sheet.png` (first 8 images of every row).",
        "",
    ]
    (RESULTS / "sampler_fix.md").write_text("\n".join(lines))
    (RESULTS / "sampler_fix.json").write_text(
        json.dumps(
            {"rows": result.rows, "centre_mse_2d": centre_mse, "args": vars(args)}, indent=2, default=str
        )
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    sys.exit(main())
