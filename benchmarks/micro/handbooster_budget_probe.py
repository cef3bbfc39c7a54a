"""How much training does the micro HandBooster synthesizer need before the edge-case filter keeps its images?

Why: in the HandBooster suite's first full run (400 steps at batch 4) the filter kept 5-22 of 480 images
per set, too few to train a downstream model, so none of Table 5's claims could be judged. The failing
criterion is the root-relative error of the recon tool on the generated image against the condition's
pose. This probe trains one row's synthesizer from a finished suite's data, and at several step counts
generates one condition set and filters it with the suite's own estimator and held-out thresholds:

    python benchmarks/micro/handbooster_budget_probe.py --work outputs/micro/handbooster_full \
        --config outputs/micro/handbooster_full/configs/f_orientation_seed0.yaml --steps 400 1600 4000 \
        --out probe/

Training resumes from the previous step count (the micro recipe's learning rate is constant, so one long
run is measured at its checkpoints); `--seed-run DIR` starts from an earlier probe's run folder. Every
stage is skipped when its output exists. Prints one row per step count (pass rate, median errors, train
and generation seconds) and writes `probe.json`, `probe.md` and `sheet.png` (conditions | images per
step count, kept images framed green, rejected red) next to it. Sampler settings other than the
suite's (10 steps, eta 1, CFG 3, leading spacing) write their own folders and files (suffix
`_s<steps>_eta<eta>_cfg<cfg>_<spacing>`),
so one trained run is compared across samplers.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image


def _run(cmd: list[str], log: Path) -> float:
    t0 = time.time()
    with open(log, "a") as f:
        f.write("$ " + shlex.join(cmd) + "\n")
        f.flush()
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=True)
    return time.time() - t0


def _tile(path: Path, size: int, frame: tuple[int, int, int] | None = None) -> np.ndarray:
    img = np.asarray(Image.open(path).convert("RGB").resize((size, size), Image.NEAREST)).copy()
    if frame is not None:
        img[:2], img[-2:], img[:, :2], img[:, -2:] = frame, frame, frame, frame
    return img


def _sheet(out: Path, steps: list[int], tag: str, n_rows: int = 8, size: int = 64) -> Path | None:
    """Normal and texture maps, then each step count's first images; kept images framed green, rejected red."""
    gens = [out / f"gen_{n}{tag}" for n in steps]
    first = sorted((gens[0] / "images").glob("*.png"))[:n_rows]
    if not first:
        return None
    names = [p.name for p in first]
    cols = []
    for kind in ("normal", "texture"):
        conds = [gens[0] / "conditions" / kind / name for name in names]
        if all(c.exists() for c in conds):
            cols.append(np.concatenate([_tile(c, size) for c in conds], 0))
    for n, gen in zip(steps, gens):
        kept_dir = out / f"kept_{n}{tag}" / "images"
        kept = {p.name for p in kept_dir.glob("*.png")} if kept_dir.exists() else set()
        tiles = []
        for name in names:
            p = gen / "images" / name
            colour = (0, 200, 0) if name in kept else (220, 0, 0)
            tiles.append(_tile(p, size, colour) if p.exists() else np.zeros((size, size, 3), np.uint8))
        cols.append(np.concatenate(tiles, 0))
    path = out / f"sheet{tag}.png"
    Image.fromarray(np.concatenate(cols, 1)).save(path)
    return path


def _row(images: str, rep: dict, train_s: float = 0.0, gen_s: float = 0.0) -> dict:
    s, e = rep["summary"], rep["error_stats_mm"]
    return {
        "images": images,
        "kept": s["kept"],
        "records": s["records"],
        "pass_rate": s["pass_rate"],
        "hands_over": s["hands_over_threshold"],
        "median_mm": {k: v["p50"] for k, v in e.items()},
        "thresholds_mm": s["thresholds_mm"],
        "train_s": round(train_s, 1),
        "generate_s": round(gen_s, 1),
    }


def _line(r: dict) -> str:
    return (
        f"{r['images']:>32}  kept {r['kept']:>4}/{r['records']} ({100 * r['pass_rate']:.1f} %)  median MPJPE "
        f"{r['median_mm']['mpjpe']:.1f} mm  PA {r['median_mm']['pa_mpjpe']:.1f} mm  over MPJPE "
        f"{r['hands_over']['mpjpe']}  (train {r['train_s']:.0f} s, generate {r['generate_s']:.0f} s)"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, help="a finished HandBooster suite folder (data, conds, tools)")
    p.add_argument("--config", required=True, help="a row's synthesizer config (the suite's configs/*.yaml)")
    p.add_argument("--conds", default="real_seed0", help="condition set under WORK/conds to generate from")
    p.add_argument("--set", action="append", default=[], help="extra `handsynth train --set` overrides")
    p.add_argument("--steps", type=int, nargs="+", default=[400, 1600, 4000])
    p.add_argument("--sample-steps", type=int, default=10)
    p.add_argument("--eta", type=float, default=1.0)
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument(
        "--timestep-spacing",
        default="leading",
        help="DDIM timesteps (the suite's leading; trailing is the released, noisy at 10 steps)",
    )
    p.add_argument("--preset", default="percentile:90", help="`handsynth filter --preset`")
    p.add_argument("--reference", default="holab_oracle", help="threshold reference set under WORK/data")
    p.add_argument(
        "--render", default="gen/b_render/seed0", help="the suite's rendered set under WORK (a filter row)"
    )
    p.add_argument("--seed-run", help="an earlier probe's run folder to resume from (copied, not changed)")
    p.add_argument("--out", required=True, help="probe folder")
    args = p.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # the suite's module, beside this script
    from handbooster_suite import filter_argv, real_crops

    work, out = Path(args.work).resolve(), Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    run, log = out / "run", out / "probe.log"
    if args.seed_run and not run.exists():
        shutil.copytree(args.seed_run, run)
    exe = [sys.executable, "-m", "handsynth.cli"]
    steps = sorted(args.steps)
    cfg = yaml.safe_load(Path(args.config).read_text())
    size, expand = cfg["model"]["sample_size"], cfg.get("data", {}).get("crop_expand", 1.5)

    def filtered(data: Path, kept: Path) -> dict:
        if not (kept / "filter_report.json").exists():
            argv = filter_argv(
                data, kept, work / "tools" / "recon", args.preset, work / "data" / args.reference
            )
            _run([*exe, *argv], log)
        return json.loads((kept / "filter_report.json").read_text())

    # the filter's own yardstick rows: real photos in the generator's framing (its ceiling) and the
    # suite's renders (exact labels, another look)
    real = out / "real_crops"
    if not (real / "metadata.jsonl").exists():
        real_crops(work / "data" / args.reference, real, size, expand)
    refs = {"real photos, generator framing": filtered(real, out / "real_crops_kept")}
    if (work / args.render / "metadata.jsonl").exists():
        refs["rendered (row b)"] = filtered(work / args.render, out / "render_kept")
    # the suite's sampler settings keep the plain folder names; others get their own folders and labels
    suite = (args.sample_steps, args.eta, args.guidance, args.timestep_spacing) == (10, 1.0, 3.0, "leading")
    tag = (
        "" if suite else f"_s{args.sample_steps}_eta{args.eta:g}_cfg{args.guidance:g}_{args.timestep_spacing}"
    )
    rows = []
    for n in steps:
        model = out / f"model_{n}"
        train_s = 0.0
        if not model.exists():
            done = (
                yaml.safe_load((run / "handsynth_config.yaml").read_text()) if (run / "unet").exists() else {}
            )
            if done and int(done["train"]["max_steps"]) > n:
                raise SystemExit(f"{run} is already trained past {n} steps; probe {n} in a new --out folder")
            # a checkpoint at the end of every leg, so the next step count resumes from it
            train_s = _run(
                [*exe, "train", "--method", "handbooster", "--config", args.config, "--in",
                 str(work / "data" / "holab_train"), "--out", str(run), "--max-steps", str(n),
                 "--set", f"train.checkpoint_every={n}", *sum((["--set", s] for s in args.set), [])],
                log,
            )  # fmt: skip
            # the generator reads the folder the trainer wrote last; keep a copy per step count
            shutil.copytree(run, model, ignore=shutil.ignore_patterns("checkpoints", "logs", "validation*"))
        gen, kept = out / f"gen_{n}{tag}", out / f"kept_{n}{tag}"
        gen_s = 0.0
        if not (gen / "metadata.jsonl").exists():
            gen_s = _run(
                [*exe, "generate", "--method", "handbooster", "--checkpoint", str(model), "--in",
                 str(work / "conds" / args.conds), "--out", str(gen), "--steps", str(args.sample_steps),
                 "--eta", str(args.eta), "--guidance", str(args.guidance), "--seed", "0", "--batch-size", "16",
                 "--timestep-spacing", args.timestep_spacing],
                log,
            )  # fmt: skip
        rows.append(_row(f"{n} steps{tag.replace('_', ' ')}", filtered(gen, kept), train_s, gen_s))
        print(_line(rows[-1]), flush=True)
    ref_rows = [_row(name, rep) for name, rep in refs.items()]
    for r in ref_rows:
        print(_line(r), flush=True)
    (out / f"probe{tag}.json").write_text(
        json.dumps({"rows": rows, "references": ref_rows, "argv": argv or sys.argv[1:]}, indent=1)
    )
    th = rows[0]["thresholds_mm"]
    lines = [
        "# HandBooster training-budget probe",
        "",
        f"`python benchmarks/micro/handbooster_budget_probe.py {shlex.join(argv or sys.argv[1:])}`",
        "",
        f"Filter `{args.preset}` on `{args.reference}`: thresholds MPJPE {th['mpjpe']:.1f} mm, PA-MPJPE "
        f"{th['pa_mpjpe']:.1f} mm. Rows after the line are the filter's own yardsticks: the reference set's "
        "real photos cropped as the generator frames its images (the ceiling) and the suite's rendered set. "
        "Train/generate seconds are this run's (0 = reused from a previous run).",
        "",
        "| images | kept | pass rate | median MPJPE (mm) | median PA-MPJPE (mm) | over MPJPE | over PA-MPJPE "
        "| train s | generate s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in [*rows, None, *ref_rows]:
        if r is None:
            lines.append("| | | | | | | | | |")
            continue
        lines.append(
            f"| {r['images']} | {r['kept']}/{r['records']} | {100 * r['pass_rate']:.1f} % | "
            f"{r['median_mm']['mpjpe']:.1f} | {r['median_mm']['pa_mpjpe']:.1f} | {r['hands_over']['mpjpe']} | "
            f"{r['hands_over']['pa_mpjpe']} | {r['train_s']:.0f} | {r['generate_s']:.0f} |"
        )
    sheet = _sheet(out, steps, tag)
    if sheet:
        lines += ["", f"![conditions, then images per step count (green: kept)]({sheet.name})"]
    (out / f"probe{tag}.md").write_text("\n".join(lines) + "\n")
    print(f"{out / f'probe{tag}.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
