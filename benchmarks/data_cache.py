"""Training data kept in memory vs rebuilt at every draw: `handsynth recon train` (decoded photos,
``--image-cache-mb``) and `handsynth train --method handbooster` (rendered items, ``data.cache_mb``),
end to end through the command line, side by side.

Both caches only skip repeated work on inputs that do not change (a photo file; a HandBooster item is
a pure function of its record), so a run must end with the same loss either way: the table says so.
Each round runs every case once, in a rotated order, so load drifts on a shared machine hit all alike;
the median round is reported, wall time first.

    python benchmarks/data_cache.py            # writes benchmarks/results/data_cache.{md,json}
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from timing import write_results

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
HB_CONFIG = ROOT / "configs" / "handbooster_tiny.yaml"


def env(threads: int) -> dict:
    e = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        e[var] = str(threads)
    e.update(TQDM_DISABLE="1", HF_HUB_OFFLINE="1", PYOPENGL_PLATFORM=e.get("PYOPENGL_PLATFORM", "egl"))
    return e


def handsynth(*args: object, threads: int = 1) -> str:
    """Run ``handsynth ARGS`` (this checkout's code); its output, or a RuntimeError with the tail."""
    cmd = [sys.executable, "-c", "from handsynth.cli import main; raise SystemExit(main())", *map(str, args)]
    e = env(threads)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), e.get("PYTHONPATH", "")])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=e, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd[3:])} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout + proc.stderr


def recon_case(data: Path, out: Path, steps: int, cache_mb: float, threads: int) -> float:
    """Final training loss of one ``recon train`` run (the micro suite's recon settings)."""
    handsynth(
        "recon", "train", "--in", data, "--out", out, "--steps", steps, "--batch-size", 32, "--width", 0.25,
        "--hidden", 256, "--img-size", 64, "--lr", 1e-3, "--warmup", 50, "--num-workers", 0, "--seed", 0,
        "--save-every", steps, "--log-every", steps, "--keep-last", 1, "--image-cache-mb", cache_mb,
        "--threads", threads,
    )  # fmt: skip
    return final_loss(out / "train_log.jsonl")


def hb_case(data: Path, out: Path, steps: int, cache_mb: float, threads: int, config: Path) -> float:
    """Final training loss of one HandBooster training (the tiny config, the micro suite's batch)."""
    handsynth(
        "train", "--method", "handbooster", "--config", config, "--in", data, "--out", out,
        "--set", f"train.max_steps={steps}", "--set", "train.batch_size=4", "--set", f"train.log_every={steps}",
        "--set", f"train.checkpoint_every={steps}", "--set", "train.validate_every=0",
        "--set", "model.attention=linear", "--set", f"data.cache_mb={cache_mb}", "--threads", threads,
    )  # fmt: skip
    return final_loss(out / "train_log.jsonl")


def final_loss(log: Path) -> float:
    """The loss of the last line of a run's train_log.jsonl."""
    return float([json.loads(x) for x in log.read_text().splitlines() if x.strip()][-1]["loss"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--recon-steps", type=int, default=300)
    ap.add_argument("--hb-steps", type=int, default=300)
    ap.add_argument("--n", type=int, default=960, help="records in the holab world the runs train on")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run (the micro suite's 1)")
    ap.add_argument("--out", default=str(RESULTS / "data_cache"), help="results path without suffix")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="data_cache_"))
    data = work / "holab"
    t0 = time.perf_counter()
    handsynth(
        "world", "render", "--domain", "holab", "--n", args.n, "--out", data, "--size", 64, "--seed", 0,
        "--maps", "normal,texture,seg,depth", "--no-local", "--sequence-length", 4,
    )  # fmt: skip
    print(f"world: {args.n} holab records in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    cfg = yaml.safe_load(HB_CONFIG.read_text())
    cfg["model"]["sample_size"] = 32
    hb_config = work / "hb.yaml"
    hb_config.write_text(yaml.safe_dump(cfg))

    cases = {
        ("recon train", 0.0): lambda o: recon_case(data, o, args.recon_steps, 0, args.threads),
        ("recon train", 1024.0): lambda o: recon_case(data, o, args.recon_steps, 1024, args.threads),
        ("handbooster train", 0.0): lambda o: hb_case(data, o, args.hb_steps, 0, args.threads, hb_config),
        ("handbooster train", 1024.0): lambda o: hb_case(data, o, args.hb_steps, 1024, args.threads, hb_config),
    }  # fmt: skip
    wall: dict = {k: [] for k in cases}
    loss: dict = {k: [] for k in cases}
    keys = list(cases)
    start = time.perf_counter()
    for r in range(args.rounds):
        for k in keys[r % len(keys) :] + keys[: r % len(keys)]:
            out = work / f"run_{k[0].split()[0]}_{k[1]:g}_{r}"
            t = time.perf_counter()
            loss[k].append(cases[k](out))
            wall[k].append(time.perf_counter() - t)
        rate = (r + 1) / (time.perf_counter() - start)
        print(f"round {r + 1}/{args.rounds} ({1 / rate:.0f} s/round, ETA {(args.rounds - r - 1) / rate:.0f} s)",
              file=sys.stderr, flush=True)  # fmt: skip

    rows = []
    for k in keys:
        ref = (k[0], 0.0)
        steps = args.recon_steps if k[0].startswith("recon") else args.hb_steps
        rows.append(
            {
                "command": k[0],
                "cache_mb": k[1],
                "steps": steps,
                "wall_s": statistics.median(wall[k]),
                "steps_per_s": steps / statistics.median(wall[k]),
                "wall_vs_no_cache": statistics.median(a / b for a, b in zip(wall[k], wall[ref])),
                "final_loss": loss[k][0],
                "same_loss_as_no_cache": all(a == b for a, b in zip(loss[k], loss[ref])),
            }
        )
    result = {
        "command": shlex.join(["python", "benchmarks/data_cache.py", *sys.argv[1:]]),
        "config": vars(args),
        "cpu_count": os.cpu_count(),
        "load_average_end": list(os.getloadavg()),
        "platform": platform.platform(),
        "rows": rows,
        "wall_seconds_per_round": {f"{k[0]} / {k[1]:g}": v for k, v in wall.items()},
    }
    lines = [
        "# Training data in memory vs rebuilt at every draw",
        "",
        f"`{result['command']}`: {args.rounds} rounds, every case once per round in a rotated order; "
        f"median round. Data: {args.n} `holab` records at 64² (the HandBooster micro suite's world); "
        f"one process at a time, {args.threads} torch thread(s). Whole command wall time, start-up included.",
        "",
        "| command | cache (MiB) | steps | wall s | steps/s | wall vs no cache | final loss | same loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['command']} | {row['cache_mb']:g} | {row['steps']} | {row['wall_s']:.1f} | "
            f"{row['steps_per_s']:.2f} | {row['wall_vs_no_cache']:.2f}x | {row['final_loss']:.6f} | "
            f"{'yes' if row['same_loss_as_no_cache'] else 'NO'} |"
        )
    lines += [
        "",
        "recon: `--image-cache-mb` keeps decoded photos (augmentation still draws a new crop each time); "
        "handbooster: `data.cache_mb` keeps whole items (photo crop, rendered condition maps, weight map).",
        f"Load average at the end: {', '.join(f'{x:.2f}' for x in result['load_average_end'])}.",
    ]
    write_results(args.out, result, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
