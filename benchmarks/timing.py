"""Side-by-side timing for the cost benchmarks: every setting runs once per round, interleaved, so load
on a shared machine hits them alike; medians and ratios to a reference setting are what they report."""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch


def sync(device: str) -> None:
    """Wait for queued CUDA work, so a wall-clock interval covers it (a no-op on the CPU)."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def run_facts(args: argparse.Namespace, script: str) -> dict:
    """What every cost table records about its run: device, threads, torch, CPU, rounds, load, command."""
    return {
        "device": args.device,
        "threads": args.threads,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "repeats": args.repeats,
        "warmup": args.warmup,
        "load": list(os.getloadavg()),
        "command": shlex.join(["python", f"benchmarks/{script}", *sys.argv[1:]]),
    }


def interleaved(
    passes: dict[str, Callable[[object], None]],
    settings: Iterable[object],
    warmup: int,
    repeats: int,
    device: str = "cpu",
) -> dict[str, dict[object, list[float]]]:
    """Wall seconds of ``fn(setting)`` per pass and setting over ``repeats`` rounds after ``warmup``;
    prints rounds/s and an ETA to stderr."""
    settings = list(settings)
    times: dict[str, dict[object, list[float]]] = {p: {s: [] for s in settings} for p in passes}
    total = warmup + repeats
    start = time.perf_counter()
    for r in range(total):
        for pname, fn in passes.items():
            for s in settings:
                sync(device)
                t0 = time.perf_counter()
                fn(s)
                sync(device)
                if r >= warmup:
                    times[pname][s].append(time.perf_counter() - t0)
        rate = (r + 1) / (time.perf_counter() - start)
        print(
            f"round {r + 1}/{total} ({rate:.2f} rounds/s, ETA {(total - r - 1) / rate:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    return times


def medians(times: dict[str, dict[object, list[float]]], reference: object) -> dict[str, dict[str, dict]]:
    """{pass: {str(setting): {"median_ms", "ratio" (to ``reference``'s median)}}}."""
    rows = {}
    for pname, per in times.items():
        ref = statistics.median(per[reference])
        rows[pname] = {
            str(s): {"median_ms": 1000 * statistics.median(v), "ratio": statistics.median(v) / ref}
            for s, v in per.items()
        }
    return rows


def write_results(out: str | Path, result: dict, lines: list[str]) -> None:
    """``out``.json (the figures) and ``out``.md (the table, also printed): what every benchmark leaves."""
    import json

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
