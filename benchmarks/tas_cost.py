"""Cost of the text attention stage (TAS) in one AttentionHand training step, side by side.

One training step = VAE-encode the global + local images, TAS on both noisy latents (one batch), the
phi_g + phi_d forward on both branches, backward, optimizer step (lr 0, so every setting sees the
same weights). Settings run interleaved on the same (sample, t, noise) draws, so load on a shared
machine hits them alike; the median step time is reported with its ratio to the step without TAS.
L_TAS (the default objective) is measured before and after each setting's update, outside the timing.

    python benchmarks/tas_cost.py                                  # tiny base, CPU
    python benchmarks/tas_cost.py --base sd15-random --resolution 512 --device cuda   # SD-1.5 size, GPU

Writes benchmarks/results/tas_cost.md and .json (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from timing import sync  # benchmarks/timing.py: CUDA-aware timing barrier

ROOT = Path(__file__).resolve().parents[1]

# label -> (tas overrides, note)
SETTINGS: dict[str, tuple[list[str], str]] = {
    "no TAS": (["tas.enabled=false"], "VAS only"),
    "default TAS": (
        [],
        "1 iteration, early stop at L<=0.2, forward stops after the last 1/4-res block, phi_d alone, G+L batched",
    ),
    "TAS 2 iterations": (["tas.iterations=2"], "default, 2 iterations"),
    "TAS 5 iterations": (["tas.iterations=5"], "default, 5 iterations"),
    "default, alpha 100 (5x step)": (
        ["tas.alpha=constant", "tas.alpha_max=100"],
        "default with a 5x larger step: does a bigger step buy the reduction of more iterations?",
    ),
    "default, maps at latent/8 (mid block)": (
        ["tas.resolution=LATENT8"],
        "default reading the 1/8-res (mid block) maps: the forward stops after the encoder + mid block",
    ),
    "default, full UNet forward": (["tas.stop_early=false"], "default without the forward early stop"),
    "default, G and L separately": ([], "default, but TAS runs once per branch instead of one batch"),
    "default, through phi_d+phi_g": (
        ["tas.unet=controlled"],
        "default, TAS differentiates the controlled UNet",
    ),
    "released code (50 iterations)": (
        ["tas.iterations=50", "tas.alpha=released", "tas.loss_threshold=0", "tas.stop_early=false"],
        "50 iterations, alpha=20*sqrt(linspace(1,.5,50)), no early stop, full forward",
    ),
}
REFERENCE = "released code (50 iterations)"


class _Acc:
    """The parts of an Accelerator the task uses (single process, no wrapping)."""

    def __init__(self, device: str) -> None:
        self.device = torch.device(device)
        self.mixed_precision = "no"

    def unwrap_model(self, m):
        return m

    def autocast(self):
        import contextlib

        return contextlib.nullcontext()


def run(args: argparse.Namespace) -> dict:
    import handsynth.diffusion.tas as tas_mod
    from handsynth.config import load_config
    from handsynth.diffusion.tas import TASConfig, measure_loss
    from handsynth.methods.attentionhand.training import AttentionHandConfig, AttentionHandTask
    from handsynth.methods.record_task import collate
    from handsynth.methods.synthetic import write_synthetic_dataset

    torch.set_num_threads(args.threads)
    data = Path(tempfile.mkdtemp(prefix="tas_cost_")) / "data"
    write_synthetic_dataset(data, n=args.samples, size=args.resolution)
    base_cfg = (
        ROOT / "configs" / ("attentionhand_tiny.yaml" if args.base == "tiny" else "attentionhand_sd15.yaml")
    )
    common = [f"model.base_model={args.base}", f"model.resolution={args.resolution}"]
    cfg = load_config(AttentionHandConfig, base_cfg, common)
    task = AttentionHandTask(cfg, data)
    acc = _Acc(args.device)
    model = task.build(acc)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.0, weight_decay=0.0)
    latent8 = str(max(args.resolution // 64, 1))
    tas_cfgs = {
        k: load_config(
            AttentionHandConfig, base_cfg, common + [o.replace("LATENT8", latent8) for o in ov]
        ).tas
        for k, (ov, _) in SETTINGS.items()
    }

    original_refine = tas_mod.tas_refine
    original_forward = task._tas_forward
    record: dict = {}

    def capturing_forward(model, t, text, conds, groups):  # keep t/text to build per-branch forwards
        record.update(t=t, text=text)
        return original_forward(model, t, text, conds, groups)

    def recording_refine(forward, store, latents, t, indices, lengths, cfg, *a, **kw):
        sync(args.device)
        t0 = time.perf_counter()
        res = _refine(forward, store, latents, t, indices, lengths, cfg, *a, **kw)
        sync(args.device)
        record.update(forward=forward, res=res, x=latents, indices=indices, lengths=lengths)
        record["tas_s"] = time.perf_counter() - t0
        return res

    def _refine(forward, store, latents, t, indices, lengths, cfg, *a, **kw):
        if record.get("separate"):
            n = latents.shape[0] // 2
            unet, tt, text = task.base.unet, record["t"], record["text"]
            parts = [
                original_refine(
                    lambda x, lo=lo, hi=hi: unet(x, tt[lo:hi], encoder_hidden_states=text[lo:hi]),
                    store, latents[lo:hi], t[lo:hi], indices[lo:hi], lengths[lo:hi], cfg, *a, **kw,
                )
                for lo, hi in ((0, n), (n, 2 * n))
            ]  # fmt: skip
            res = tas_mod.TASResult(
                torch.cat([p.latents for p in parts]),
                torch.cat([p.loss_before for p in parts]),
                torch.cat([p.loss_last for p in parts]),
                max(p.iterations for p in parts),
                parts[0].maps,
            )
            return res
        return original_refine(forward, store, latents, t, indices, lengths, cfg, *a, **kw)

    task._tas_forward = capturing_forward
    tas_mod.tas_refine = recording_refine
    dataset = task.dataset()
    times: dict[str, list[float]] = {k: [] for k in SETTINGS}
    tas_times: dict[str, list[float]] = {k: [] for k in SETTINGS}
    losses: dict[str, list[tuple[float, float, float]]] = {k: [] for k in SETTINGS}
    default_objective = TASConfig()
    try:
        for rep in range(args.warmup + args.repeats):
            batch = collate([dataset[rep % len(dataset)]])
            for label in SETTINGS:
                task.cfg.tas = tas_cfgs[label]
                record.clear()
                record["separate"] = label == "default, G and L separately"
                gen = torch.Generator().manual_seed(1000 + rep)
                sync(args.device)
                t0 = time.perf_counter()
                loss, logs = task.loss(model, batch, rep, gen)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                sync(args.device)
                dt = time.perf_counter() - t0
                if rep < args.warmup:
                    continue
                times[label].append(dt)
                tas_times[label].append(record.get("tas_s", 0.0))
                if "res" in record:
                    res = record["res"]
                    fwd = record["forward"]
                    after = measure_loss(
                        fwd, task.store, res.latents, record["indices"], record["lengths"], default_objective
                    )
                    before = measure_loss(
                        fwd, task.store, record["x"], record["indices"], record["lengths"], default_objective
                    )
                    losses[label].append((float(before.mean()), float(after.mean()), float(res.iterations)))
                print(f"rep {rep} {label:32s} {dt * 1000:8.1f} ms", file=sys.stderr)
    finally:
        tas_mod.tas_refine = original_refine
        task._tas_forward = original_forward

    base_ms = statistics.median(times["no TAS"]) * 1000
    ref = losses[REFERENCE]
    ref_drop = statistics.mean(b - a for b, a, _ in ref) if ref else float("nan")
    rows = []
    for label, (_, note) in SETTINGS.items():
        ms = statistics.median(times[label]) * 1000
        # In-step split: TAS time over the rest of the same steps (both see the same machine load).
        tas_ms = statistics.median(tas_times[label]) * 1000
        rest = statistics.median(a - b for a, b in zip(times[label], tas_times[label])) * 1000
        row = {
            "setting": label,
            "note": note,
            "median_ms": ms,
            "min_ms": min(times[label]) * 1000,
            "ratio": ms / base_ms,
            "tas_ms": tas_ms,
            "rest_ms": rest,
            "ratio_in_step": 1 + tas_ms / rest,
        }
        if losses[label]:
            b = statistics.mean(x[0] for x in losses[label])
            a = statistics.mean(x[1] for x in losses[label])
            row.update(
                tas_before=b,
                tas_after=a,
                reduction=b - a,
                share_of_50it=(b - a) / ref_drop if ref_drop > 0 else float("nan"),
                iterations=statistics.mean(x[2] for x in losses[label]),
            )
        rows.append(row)
    return {
        "base": args.base,
        "resolution": args.resolution,
        "device": args.device,
        "threads": args.threads,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "load_average": os.getloadavg(),
        "rows": rows,
        "command": "python benchmarks/tas_cost.py " + " ".join(sys.argv[1:]),
    }


def to_markdown(result: dict) -> str:
    lines = [
        "# TAS cost: one AttentionHand training step",
        "",
        f"Base `{result['base']}`, {result['resolution']}² images, device {result['device']}, "
        f"{result['threads']} thread(s), torch {result['torch']}, median of {result['repeats']} interleaved steps "
        f"(load average during the run: {', '.join(f'{x:.1f}' for x in result['load_average'])}).",
        f"Command: `{result['command']}`",
        "",
        "`step` is the median wall time of a whole training step, `× no TAS` its ratio to the no-TAS step;",
        "`TAS` is the time inside the step spent in TAS and `× (in-step)` = 1 + TAS / (rest of the same steps),",
        "the load-robust estimate of the slowdown (both parts are timed in the same steps).",
        "",
        "| setting | step (ms) | × no TAS | TAS (ms) | × (in-step) | iterations run | L_TAS before | L_TAS after "
        "| reduction | share of 50-it reduction |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        if "tas_before" in r:
            extra = (
                f"{r['iterations']:.2f} | {r['tas_before']:.3f} | {r['tas_after']:.3f} | "
                f"{r['reduction']:.3f} | {100 * r['share_of_50it']:.0f}% |"
            )
        else:
            extra = "– | – | – | – | – |"
        lines.append(
            f"| {r['setting']} | {r['median_ms']:.0f} | {r['ratio']:.2f} | {r['tas_ms']:.0f} | "
            f"{r['ratio_in_step']:.2f} | {extra}"
        )
    lines += ["", "Settings:", ""]
    lines += [f"- **{r['setting']}**: {r['note']}" for r in result["rows"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="tiny", help="tiny | sd15-random | a diffusers SD folder")
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=8)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "tas_cost"))
    args = p.parse_args()
    result = run(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    out.with_suffix(".md").write_text(to_markdown(result))
    print(to_markdown(result))


if __name__ == "__main__":
    main()
