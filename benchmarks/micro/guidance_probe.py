"""Does a micro guidance module follow the mesh, and after how much training? Gate (c) along a run.

Why: gate (c) failed on the full profile (detector PCK@0.1 against the condition's joints 0.04-0.08,
text-only SD 0.04, real photos of the same poses 0.67): the guided images put a skin-coloured blob
near the mesh and no fingers. This probe trains one guidance module from a finished micro run's base
and data, and measures gate (c) at several step counts, CFG scales and conditioning scales, so
budgets and recipes can be compared before a full run spends them:

    python benchmarks/micro/guidance_probe.py --work outputs/micro/full --config \
        outputs/micro/full/configs/controlnet_seed0.yaml --steps 800 2400 4800 --cfg 9 3 --out probe/

Training resumes from the previous step count (constant learning rate, so one long run is measured
at its checkpoints); every stage is skipped when its output exists (its row then shows train 0 s).
Prints one table row per (steps, CFG, conditioning scale) and writes `probe.json` and a sheet (mesh |
generated per step count, at the first --cfg and the last --scale) next to it.
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
from PIL import Image


def _run(cmd: list[str], log: Path) -> None:
    with open(log, "a") as f:
        f.write("$ " + shlex.join(cmd) + "\n")
        f.flush()
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, help="a finished micro run folder (base, data, tools, prompts)")
    p.add_argument("--config", required=True, help="a guidance config (e.g. the run's configs/*.yaml)")
    p.add_argument("--method", default="attentionhand", help="the `handsynth train --method`")
    p.add_argument("--generate", default="controlnet", help="the `handsynth generate --method`")
    p.add_argument("--set", action="append", default=[], help="extra `handsynth train --set` overrides")
    p.add_argument("--steps", type=int, nargs="+", default=[800, 2400, 4800])
    p.add_argument("--cfg", type=float, nargs="+", default=[9.0, 3.0])
    p.add_argument(
        "--scale", type=float, nargs="+", default=[1.0], help="ControlNet conditioning scales to sample at"
    )
    p.add_argument("--sample-steps", type=int, default=20)
    p.add_argument("--out", required=True, help="probe folder")
    args = p.parse_args(argv)

    from handsynth.micro.detector import WorldHandDetector
    from handsynth.micro.yardsticks import scan_detector

    work, out = Path(args.work).resolve(), Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    exe = [sys.executable, "-m", "handsynth.cli"]
    det = WorldHandDetector.load(work / "tools" / "detector")
    oracle = scan_detector(det, work / "data" / "wild_gen").pck
    log = out / "probe.log"
    rows = []
    for n in sorted(args.steps):
        run = out / "run"
        t0 = time.time()
        if not (out / f"weights_{n}").exists():
            _run(
                [
                    *exe,
                    "train",
                    "--method",
                    args.method,
                    "--config",
                    args.config,
                    "--in",
                    str(work / "data" / "wild_train"),
                    "--out",
                    str(run),
                    "--base-model",
                    str(work / "base"),
                    "--max-steps",
                    str(n),
                    *sum((["--set", s] for s in args.set), []),
                ],
                log,
            )
            (out / f"weights_{n}").write_text(str(run))
        train_s = time.time() - t0
        # the generator reads the module folder the trainer wrote last; copy it per step count
        ckpt = out / f"module_{n}"
        if not ckpt.exists():
            shutil.copytree(run, ckpt, ignore=shutil.ignore_patterns("checkpoints", "logs", "validation*"))
        for cfg, scale in [(c, s) for c in args.cfg for s in args.scale]:
            gen = out / (f"gen_{n}_cfg{cfg:g}" + (f"_cs{scale:g}" if scale != 1 else ""))
            if not (gen / "metadata.jsonl").exists():
                cmd = [
                    *exe,
                    "generate",
                    "--method",
                    args.generate,
                    "--base-model",
                    str(work / "base"),
                    "--in",
                    str(work / "data" / "lab_gen" / "gen_poses.jsonl"),
                    "--out",
                    str(gen),
                    "--prompts",
                    "file",
                    "--prompt-file",
                    str(work / "prompts" / "lab_gen_wild.txt"),
                    "--steps",
                    str(args.sample_steps),
                    "--guidance",
                    str(cfg),
                    "--seed",
                    "0",
                    "--batch-size",
                    "16",
                    "--sheet-rows",
                    "8",
                    "--checkpoint",
                    str(ckpt / "controlnet" if args.generate == "controlnet" else ckpt),
                    "--conditioning-scale",
                    str(scale),
                ]
                _run(cmd, log)
            scan = scan_detector(det, gen)
            row = {
                "steps": n,
                "cfg": cfg,
                "conditioning_scale": scale,
                "pck": scan.pck,
                "ratio": scan.pck / oracle,
                "mse_2d": scan.mse_2d,
                "train_s": round(train_s, 1),
            }
            rows.append(row)
            print(
                f"steps {n:>6}  CFG {cfg:>4g}  scale {scale:g}  PCK@0.1 {scan.pck:.3f}  ratio to oracle {scan.pck / oracle:.3f}  "
                f"MSE-2D {scan.mse_2d:.1f}  (train {train_s:.0f} s)",
                flush=True,
            )
    (out / "probe.json").write_text(
        json.dumps({"oracle_pck": oracle, "rows": rows, "argv": argv or sys.argv[1:]}, indent=1)
    )
    # sheet: mesh, then the images per step count (first 8 poses) at the first CFG and the last scale
    cfg0, tag = args.cfg[0], (f"_cs{args.scale[-1]:g}" if args.scale[-1] != 1 else "")
    cols = []
    gen0 = out / f"gen_{sorted(args.steps)[0]}_cfg{cfg0:g}{tag}"
    cond = sorted((gen0 / "conditions").rglob("*.png"))[:8] if (gen0 / "conditions").exists() else []
    if cond:
        cols.append(
            np.concatenate([np.asarray(Image.open(c).convert("RGB").resize((64, 64))) for c in cond], 0)
        )
    for n in sorted(args.steps):
        imgs = sorted((out / f"gen_{n}_cfg{cfg0:g}{tag}" / "images").glob("*.png"))[:8]
        if imgs:
            cols.append(
                np.concatenate([np.asarray(Image.open(i).convert("RGB").resize((64, 64))) for i in imgs], 0)
            )
    if cols:
        Image.fromarray(np.concatenate(cols, 1)).resize((64 * len(cols) * 2, 64 * 8 * 2), Image.NEAREST).save(
            out / "sheet.png"
        )
    print(f"oracle PCK@0.1 {oracle:.3f}; {out / 'probe.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
