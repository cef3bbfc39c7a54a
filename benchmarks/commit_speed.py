"""Is the code slower, or the machine? The HandBooster micro suite's two training commands (`handsynth
train --method handbooster` at its 32² model, `handsynth recon train` at its recon settings) run by this
checkout and by an older commit (``--old``, checked out in a temporary git worktree), side by side.

On this shared 2-core machine the same job can take 1.6x longer on another day; only a ratio measured in
one run says whether a change made it slower. Each round runs every case once, in a rotated order, so
load drifts hit all alike; the median round is reported, wall time first.

    python benchmarks/commit_speed.py --old 26b5527   # writes benchmarks/results/commit_speed.{md,json}
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import write_results

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def handsynth(src: Path, *args: object, threads: int = 1) -> None:
    """Run ``handsynth ARGS`` with the code under ``src`` (a checkout's src/), one torch thread."""
    cmd = [sys.executable, "-c", "from handsynth.cli import main; raise SystemExit(main())", *map(str, args)]
    e = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), TQDM_DISABLE="1")
    e.update(HF_HUB_OFFLINE="1", PYOPENGL_PLATFORM=e.get("PYOPENGL_PLATFORM", "egl"), PYTHONPATH=str(src))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=e, cwd=src.parent)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd[3:])} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")


def hb_case(src: Path, data: Path, out: Path, steps: int) -> None:
    """The micro suite's HandBooster model (tiny config at 32², linear attention, batch 4)."""
    handsynth(
        src, "train", "--method", "handbooster", "--config", src.parent / "configs" / "handbooster_tiny.yaml",
        "--in", data, "--out", out, "--set", "model.sample_size=32", "--set", "model.attention=linear",
        "--set", f"train.max_steps={steps}", "--set", "train.batch_size=4", "--set", f"train.log_every={steps}",
        "--set", f"train.checkpoint_every={steps}", "--set", "train.validate_every=0", "--threads", 1,
    )  # fmt: skip


def recon_case(src: Path, data: Path, out: Path, steps: int) -> None:
    """The micro suite's recon settings (its downstream runs and the filter's estimator)."""
    handsynth(
        src, "recon", "train", "--in", data, "--out", out, "--steps", steps, "--batch-size", 32, "--width", 0.25,
        "--hidden", 256, "--img-size", 64, "--lr", 1e-3, "--warmup", 50, "--num-workers", 0, "--seed", 0,
        "--save-every", steps, "--log-every", steps, "--keep-last", 1, "--threads", 1,
    )  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="the older commit (any git revision)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--hb-steps", type=int, default=300)
    ap.add_argument("--recon-steps", type=int, default=300)
    ap.add_argument("--n", type=int, default=240, help="holab records the runs train on")
    ap.add_argument("--out", default=str(RESULTS / "commit_speed"), help="results path without suffix")
    args = ap.parse_args()

    old_rev = git("rev-parse", "--short", args.old)
    new_rev = git("rev-parse", "--short", "HEAD") + (
        "+changes" if git("status", "--porcelain", "src") else ""
    )
    work = Path(tempfile.mkdtemp(prefix="commit_speed_"))
    old_tree = work / "old"
    git("worktree", "add", "--detach", str(old_tree), args.old)
    try:
        data = work / "holab"
        handsynth(
            ROOT / "src", "world", "render", "--domain", "holab", "--n", args.n, "--out", data, "--size", 64,
            "--seed", 0, "--maps", "normal,texture,seg,depth", "--no-local", "--sequence-length", 4,
        )  # fmt: skip
        sides = {new_rev: ROOT / "src", old_rev: old_tree / "src"}
        cases = [(cmd, rev) for cmd in ("handbooster train", "recon train") for rev in sides]
        wall: dict = {c: [] for c in cases}
        start = time.perf_counter()
        for r in range(args.rounds):
            for cmd, rev in cases[r % len(cases) :] + cases[: r % len(cases)]:
                out = work / f"run_{cmd.split()[0]}_{rev}_{r}"
                t = time.perf_counter()
                if cmd.startswith("handbooster"):
                    hb_case(sides[rev], data, out, args.hb_steps)
                else:
                    recon_case(sides[rev], data, out, args.recon_steps)
                wall[(cmd, rev)].append(time.perf_counter() - t)
                shutil.rmtree(out, ignore_errors=True)
            rate = (r + 1) / (time.perf_counter() - start)
            print(f"round {r + 1}/{args.rounds} ({1 / rate:.0f} s/round, ETA {(args.rounds - r - 1) / rate:.0f} s)",
                  file=sys.stderr, flush=True)  # fmt: skip
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    rows = []
    for cmd, rev in cases:
        steps = args.hb_steps if cmd.startswith("handbooster") else args.recon_steps
        old = wall[(cmd, old_rev)]
        rows.append(
            {
                "command": cmd,
                "commit": rev,
                "steps": steps,
                "wall_s": statistics.median(wall[(cmd, rev)]),
                "steps_per_s": steps / statistics.median(wall[(cmd, rev)]),
                "wall_vs_old": statistics.median(a / b for a, b in zip(wall[(cmd, rev)], old)),
            }
        )
    result = {
        "command": shlex.join(["python", "benchmarks/commit_speed.py", *sys.argv[1:]]),
        "new": new_rev,
        "old": old_rev,
        "config": vars(args),
        "cpu_count": os.cpu_count(),
        "load_average_end": list(os.getloadavg()),
        "platform": platform.platform(),
        "rows": rows,
        "wall_seconds_per_round": {f"{c} / {rev}": v for (c, rev), v in wall.items()},
    }
    lines = [
        f"# Training speed: this checkout ({new_rev}) vs {old_rev}, side by side",
        "",
        f"`{result['command']}`: {args.rounds} rounds, every case once per round in a rotated order; median "
        f"round. Data: {args.n} `holab` records at 64²; one process at a time, one torch thread; whole command "
        "wall time, start-up included. The HandBooster micro suite's settings (its 32² model; its recon).",
        "",
        "| command | commit | steps | wall s | steps/s | wall vs old |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['command']} | {row['commit']} | {row['steps']} | {row['wall_s']:.1f} | "
            f"{row['steps_per_s']:.2f} | {row['wall_vs_old']:.2f}x |"
        )
    lines += ["", f"Load average at the end: {', '.join(f'{x:.2f}' for x in result['load_average_end'])}."]
    write_results(args.out, result, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
