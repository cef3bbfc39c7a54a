"""HandBooster sampling speed: images/s for DDPM-1000, DDIM-250 (released) and DDIM-50, side by side.

Why derived figures: DDPM-1000 at the paper's size takes tens of minutes per image on a CPU, so the
script times what a sampler is made of -- one guided model step (orientation CFG: one forward over a
doubled batch) and the per-image scheduler update -- per config and batch size, with every setting
measured interleaved in the same run, and derives images/s = B / (steps x (t_model + t_scheduler)).
One real DDIM run of the tiny config checks the derivation against a measured wall time.

    python benchmarks/handbooster_sampling.py                       # tiny + paper config, CPU
    python benchmarks/handbooster_sampling.py --device cuda --paper-batches 1,16,64   # on a GPU

Writes benchmarks/results/handbooster_sampling.md and .json (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from timing import sync  # benchmarks/timing.py: CUDA-aware timing barrier

ROOT = Path(__file__).resolve().parents[1]
SAMPLERS = {"DDPM-1000": ("ddpm", 1000), "DDIM-250 (released)": ("ddim", 250), "DDIM-50": ("ddim", 50)}


def build(config: Path, device: str):
    from handsynth.config import load_config
    from handsynth.methods.handbooster.config import HandBoosterConfig
    from handsynth.methods.handbooster.model import HandBoosterModel

    cfg = load_config(HandBoosterConfig, config)
    torch.manual_seed(0)
    model = HandBoosterModel(cfg).to(device).eval()
    return cfg, model


def inputs(cfg, model, batch: int, device: str):
    size = model.unet.config.sample_size
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=g).to(device)
    cond = torch.randn(batch, cfg.in_channels() - 3, size, size, generator=g).to(device)
    q = torch.nn.functional.normalize(torch.randn(batch, 4, generator=g), dim=-1).abs().to(device)
    return x, cond, q


@torch.no_grad()
def time_model_step(cfg, model, batch: int, device: str, repeats: int) -> list[float]:
    """Seconds of one guided x0 prediction (CFG 3 on the orientation) for ``batch`` images."""
    from handsynth.methods.handbooster.generator import guided_x0

    x, cond, q = inputs(cfg, model, batch, device)
    t = torch.full((batch,), 500, dtype=torch.long, device=device)
    guided_x0(model, x, t, cond, q, 3.0)  # warm-up
    out = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        guided_x0(model, x, t, cond, q, 3.0)
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def time_scheduler_step(cfg, batch: int, name: str, device: str, repeats: int) -> list[float]:
    """Seconds of one sampler update for ``batch`` images (per image: its own generator)."""
    from handsynth.methods.handbooster.generator import sampler_scheduler

    steps = SAMPLERS[[k for k, v in SAMPLERS.items() if v[0] == name][0]][1]
    sched = sampler_scheduler(cfg, name, steps)
    size = cfg.model.sample_size
    x = torch.randn(batch, 3, size, size).to(device)
    x0 = torch.randn(batch, 3, size, size).to(device).clamp(-1, 1)
    gens = [torch.Generator().manual_seed(i) for i in range(batch)]
    t = sched.timesteps[len(sched.timesteps) // 2]
    kw = {"eta": 1.0} if name == "ddim" else {}
    out = []
    for _ in range(repeats + 1):
        sync(device)
        t0 = time.perf_counter()
        for i, g in enumerate(gens):
            sched.step(x0[i : i + 1], t, x[i : i + 1], generator=g, **kw)
        sync(device)
        out.append(time.perf_counter() - t0)
    return out[1:]


@torch.no_grad()
def measured_ddim(cfg, model, steps: int, device: str) -> float:
    """Wall seconds of one real ``denoise`` run (batch 1, DDIM, eta 1, CFG 3)."""
    from handsynth.methods.handbooster.generator import denoise, sampler_scheduler

    _, cond, q = inputs(cfg, model, 1, device)
    sched = sampler_scheduler(cfg, "ddim", steps)
    t0 = time.perf_counter()
    denoise(model, sched, cond, q, [torch.Generator().manual_seed(0)], 3.0, eta=1.0)
    sync(device)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads on the CPU")
    p.add_argument("--tiny-batches", default="1,16,64")
    p.add_argument("--paper-batches", default="1", help="the paper config is ~2-3 s per forward on a CPU")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--check-steps", type=int, default=20, help="DDIM steps of the measured check run")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "handbooster_sampling"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    configs = {
        "tiny (configs/handbooster_tiny.yaml)": (ROOT / "configs/handbooster_tiny.yaml", args.tiny_batches),
        "paper (configs/handbooster_128.yaml)": (ROOT / "configs/handbooster_128.yaml", args.paper_batches),
    }
    rows, check = [], {}
    t_start = time.time()
    for label, (path, batches) in configs.items():
        cfg, model = build(path, args.device)
        params = sum(p.numel() for p in model.parameters())
        for b in (int(x) for x in batches.split(",") if x):
            model_s = statistics.median(time_model_step(cfg, model, b, args.device, args.repeats))
            sched_s = {
                n: statistics.median(time_scheduler_step(cfg, b, n, args.device, args.repeats))
                for n in ("ddpm", "ddim")
            }
            for sampler, (name, steps) in SAMPLERS.items():
                per_step = model_s + sched_s[name]
                rows.append(
                    {
                        "config": label,
                        "params_M": round(params / 1e6, 2),
                        "size": cfg.model.sample_size,
                        "batch": b,
                        "sampler": sampler,
                        "model_step_s": model_s,
                        "scheduler_step_s": sched_s[name],
                        "images_per_s": b / (steps * per_step),
                        "s_per_image": steps * per_step / b,
                    }
                )
            print(f"{label} batch {b}: model step {model_s:.3f} s, scheduler {sched_s}", flush=True)
        if label.startswith("tiny"):
            wall = measured_ddim(cfg, model, args.check_steps, args.device)
            r1 = next(
                r for r in rows if r["config"] == label and r["batch"] == 1 and r["sampler"] == "DDIM-50"
            )
            derived = args.check_steps * (r1["model_step_s"] + r1["scheduler_step_s"])
            check = {"steps": args.check_steps, "measured_s": wall, "derived_s": derived}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    meta = {
        "command": "python benchmarks/handbooster_sampling.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "device": args.device,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "load_average_1min": load,
        "wall_s": round(time.time() - t_start, 1),
        "check": check,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        "# HandBooster sampling speed",
        "",
        f"`{meta['command']}` on {args.device} ({meta['cpu']}, torch {meta['torch']}, "
        f"load average {load:.1f} at the end; the machine was shared), {meta['wall_s']} s.",
        "",
        "Derived from timed parts, all measured in this run: images/s = batch / (steps × (guided model "
        "step + scheduler update)). The guided model step is one forward over the doubled batch "
        "(orientation CFG 3); the scheduler update runs per image with that image's generator (so its "
        "noise does not depend on the batch). Random weights: speed does not depend on them.",
        "",
        "| config | params (M) | size | batch | sampler | model step (s) | scheduler step (s) | s / image | images/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['params_M']} | {r['size']}² | {r['batch']} | {r['sampler']} | "
            f"{r['model_step_s']:.4f} | {r['scheduler_step_s']:.4f} | {r['s_per_image']:.2f} | {r['images_per_s']:.4g} |"
        )
    if check:
        lines += [
            "",
            f"Check of the derivation: one real DDIM-{check['steps']} run of the tiny config at batch 1 took "
            f"{check['measured_s']:.2f} s; the parts predict {check['derived_s']:.2f} s "
            f"({check['measured_s'] / check['derived_s']:.2f}×).",
        ]
    lines += [
        "",
        "Not measured here: the paper config at batch 16/64 and on a GPU (no device was lent; run with "
        "`--device cuda --paper-batches 1,16,64`). The FID / downstream cost of fewer steps is the "
        "HandBooster micro suite's *Sampling steps* table (row (k), DDIM-50, beside (f), DDIM-10: "
        "`benchmarks/results/micro_handbooster.md`).",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
