"""torch CPU threads for the small bases: 1 vs 2 (vs. torch's default) on this machine, side by side.

The demo and ``generate`` on the embedded default model (micro base + AttentionHand, 64x64) and on
the ``tiny`` base (128x128) are small convolution/attention workloads: on a shared CPU extra intra-op
threads mostly spin and wait for cores other processes hold. This measures the generation step of
both, with the thread count switched in one process between cases, each round running every case
once in a rotated order (load drifts hit all alike); the median round is reported. Wall time is the
headline (what a user waits for); process CPU time shows the cost the threads add to a shared machine.

    python benchmarks/threads.py          # writes benchmarks/results/threads.{md,json}

The default ``--threads auto`` of ``handsynth demo`` / ``generate`` (handsynth.runtime) follows this table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def write_report(args, counts, models, wall, cpu, done: int) -> list[str]:
    """Results after ``done`` rounds (written after every round: a long run can be stopped early)."""
    load = list(os.getloadavg())
    rows = []
    for name in models:
        base = (name, counts[0])
        for n in counts:
            key = (name, n)
            rows.append(
                {
                    "model": name,
                    "threads": n,
                    "wall_s": statistics.median(wall[key]),
                    "cpu_s": statistics.median(cpu[key]),
                    "wall_vs_first": statistics.median(a / b for a, b in zip(wall[key], wall[base])),
                }
            )
    cmd = ("python benchmarks/threads.py " + " ".join(sys.argv[1:])).strip()
    result = {
        "command": cmd,
        "config": vars(args),
        "cpu_count": os.cpu_count(),
        "load_average_end": load,
        "platform": platform.platform(),
        "torch": torch.__version__,
        "rows": rows,
        "wall_seconds_per_round": {f"{k[0]} / {k[1]}": v for k, v in wall.items()},
        "cpu_seconds_per_round": {f"{k[0]} / {k[1]}": v for k, v in cpu.items()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(result, indent=2))
    lines = [
        "# torch CPU threads for the small bases",
        "",
        f"`{cmd}` — generation step of `handsynth generate` (DDIM 20 steps, CFG 9.0, fp32, CPU) "
        f"on {os.cpu_count()} cores shared with other jobs (load average at the end "
        f"{[round(x, 2) for x in load]}); {done} of {args.rounds} rounds, every case once per round in rotated "
        "order; medians.",
        "",
        f"| model | torch threads | wall s | process CPU s | wall vs. {counts[0]} thread(s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['threads']} | {row['wall_s']:.2f} | {row['cpu_s']:.2f} "
            f"| {row['wall_vs_first']:.2f}x |"
        )
    verdicts = []
    for name in models:
        best = min((r for r in rows if r["model"] == name), key=lambda r: r["wall_s"])
        verdicts.append(f"{name}: {best['threads']} thread(s)")
    lines += [
        "",
        "Lowest median wall time: " + "; ".join(verdicts) + ". Wall time on a shared machine swings "
        "with the other jobs (compare the per-round values in the .json); process CPU time is the cost "
        "to the machine. `--threads auto` (the default of `demo`, `generate`, `train`, `evaluate "
        "images`) uses 1 thread for small bases on the CPU (`handsynth.runtime`); larger bases keep "
        "torch's default. `--threads N` overrides; the count used is recorded in each generated "
        "record's `source.torch_threads`.",
    ]
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1,2", help="comma list of thread counts to compare")
    ap.add_argument(
        "--images", type=int, default=8, help="images per case (the demo makes 16, in batches of 8)"
    )
    ap.add_argument("--out", default=str(RESULTS / "threads"), help="results path without suffix")
    args = ap.parse_args()
    counts = [int(t) for t in args.threads.split(",")]

    from diffusers import ControlNetModel

    from handsynth.diffusion.base import load_base
    from handsynth.generate.job import JobConfig, run_job
    from handsynth.methods.attentionhand.generator import AttentionHandGenerator
    from handsynth.methods.baselines.generators import ControlNetBaseline
    from handsynth.methods.interface import SamplingConfig
    from handsynth.methods.synthetic import write_synthetic_dataset
    from handsynth.micro.assets import default_model

    torch.manual_seed(0)
    tiny_base = load_base("tiny")
    tiny_cn = ControlNetModel.from_unet(tiny_base.unet).eval()
    work = Path(tempfile.mkdtemp(prefix="handsynth-threads-"))
    default = default_model()
    sampling = SamplingConfig(steps=20, guidance=9.0)
    models = {
        # The demo's generation step: the embedded model, 64x64, batches of 8.
        "micro (demo, 64x64)": (
            AttentionHandGenerator(str(default.checkpoint), base_model=str(default.base), sampling=sampling),
            write_synthetic_dataset(work / "in64", n=args.images, size=64),
            8,
        ),
        # The test/CPU base at the size the generate benchmark uses.
        "tiny (128x128)": (
            ControlNetBaseline(tiny_cn, base_model=tiny_base, sampling=sampling, condition="mesh"),
            write_synthetic_dataset(work / "in128", n=max(2, args.images // 4), size=128),
            2,
        ),
    }

    def case(method, inp, batch, threads):
        def go():  # the job sets torch's thread count itself (JobConfig.threads), as `generate --threads`
            out = work / "job"
            shutil.rmtree(out, ignore_errors=True)
            job = JobConfig(
                str(inp), str(out), batch_size=batch, prompts="records", sheet_rows=0, threads=threads
            )
            run_job(method, job)
            assert torch.get_num_threads() == threads

        return go

    cases = {}
    for name, (method, inp, batch) in models.items():
        method.load(torch.device("cpu"))
        for n in counts:
            cases[(name, n)] = (n, case(method, inp, batch, n))
    torch.set_num_threads(1)
    for (_, n), (_, go) in cases.items():  # warm-up, once per model: first calls allocate and pick kernels
        if n == counts[0]:
            go()
    wall: dict = {k: [] for k in cases}
    cpu: dict = {k: [] for k in cases}
    keys = list(cases)
    lines: list[str] = []
    for r in range(args.rounds):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:
            n, go = cases[key]
            torch.set_num_threads(n)
            t0, c0 = time.perf_counter(), time.process_time()
            go()
            wall[key].append(time.perf_counter() - t0)
            cpu[key].append(time.process_time() - c0)
            print(
                f"  {key[0]}, {n} thread(s): {wall[key][-1]:.1f} s wall, {cpu[key][-1]:.1f} s CPU",
                file=sys.stderr,
                flush=True,
            )
        print(
            f"round {r + 1}/{args.rounds} done (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True
        )
        lines = write_report(args, counts, models, wall, cpu, r + 1)
    shutil.rmtree(work, ignore_errors=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
