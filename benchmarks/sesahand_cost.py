"""Cost of SesaHand's parts (structural fusion, HSA) beside a plain ControlNet and AttentionHand's TAS.

Every setting is a real training task (``build_training``) on the same small record folder: a
training step is the task's ``loss`` (VAE encode, text, the guidance module + frozen UNet forward, HSA
or TAS as configured) plus ``backward``; a sampling step is one classifier-free-guided forward of the
guidance module + UNet as the generator runs it (HSA on the conditional half). Settings run
interleaved on the same batch and random draws, so load on a shared machine hits them alike; the
median and its ratio to the plain ControlNet are reported, with the trainable parameters and (on a
GPU) the peak memory. Goals (issue 13 §6): HSA <= 1.05x the step without it, fusion <= 1.3x at the
default levels.

    python benchmarks/sesahand_cost.py                       # tiny base, CPU (about 2 minutes)
    python benchmarks/sesahand_cost.py --base sd15-random --resolution 512 --device cuda --repeats 10

Writes benchmarks/results/sesahand_cost.md and .json (``--out`` to change).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from tas_cost import _Acc  # benchmarks/: the one single-process Accelerator stand-in
from timing import run_facts, sync

ROOT = Path(__file__).resolve().parents[1]

SESA_OFF = ["fusion.enabled=false", "hsa.enabled=false"]
# label -> (method, config overrides, note)
SETTINGS: dict[str, tuple[str, list[str], str]] = {
    "ControlNet": ("sesahand", SESA_OFF, "plain ControlNet on the fine maps (mesh + seg), no HSA"),
    "+ fusion (default: levels 2,3)": (
        "sesahand",
        ["hsa.enabled=false"],
        "attention fusion, default levels, default light context (mid/coarse through a conv pyramid)",
    ),
    "+ fusion levels 3": ("sesahand", ["hsa.enabled=false", "fusion.levels=[3]"], "lowest level only"),
    "+ fusion levels 0-3": ("sesahand", ["hsa.enabled=false", "fusion.levels=[0,1,2,3]"], "every level"),
    "+ fusion trunk context": (
        "sesahand",
        ["hsa.enabled=false", "fusion.context=trunk"],
        "default levels; mid/coarse through the shared trunk (the default before the cost goal)",
    ),
    "+ fusion sum": ("sesahand", ["hsa.enabled=false", "fusion.mode=sum"], "scalar gates, default levels"),
    "+ fusion concat": ("sesahand", ["hsa.enabled=false", "fusion.mode=concat"], "12-channel ControlNet"),
    "+ HSA": ("sesahand", ["fusion.enabled=false"], "plain ControlNet + HSA (beta 1, soft mask)"),
    "SesaHand (fusion + HSA)": ("sesahand", [], "the default method"),
    "AttentionHand, no TAS": (
        "attentionhand",
        ["tas.enabled=false", "model.branches=[global]"],
        "ControlNet on the mesh map (3 channels): TAS's reference",
    ),
    "+ TAS 1 iteration": ("attentionhand", ["model.branches=[global]"], "AttentionHand's default TAS"),
    "+ TAS 50 iterations": (
        "attentionhand",
        ["model.branches=[global]", "tas.iterations=50"],
        "the released code's 50 latent updates",
    ),
}
REFERENCE = {"sesahand": "ControlNet", "attentionhand": "AttentionHand, no TAS"}
SAMPLING_SKIPPED = (
    "+ TAS 1 iteration",
    "+ TAS 50 iterations",
    "AttentionHand, no TAS",
)  # TAS is off at inference


def _dataset(folder: Path, size: int) -> Path:
    """Four synthetic records with mesh, seg, skeleton and body maps (and local crops for AttentionHand)."""
    from handsynth.methods.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(folder / "data", n=4, size=size, extra_maps=("seg", "skeleton", "body"))


def _trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def run(args: argparse.Namespace) -> dict:
    from handsynth.diffusion.controlnet import controlled_unet_forward
    from handsynth.diffusion.encoding import tokenize
    from handsynth.methods.registry import build_training

    torch.set_num_threads(args.threads)
    settings = {k: v for k, v in SETTINGS.items() if not args.settings or k in args.settings}
    tmp = Path(tempfile.mkdtemp(prefix="sesahand_cost_"))
    data = _dataset(tmp, args.resolution)
    acc = _Acc(args.device)
    if args.share_base:  # one frozen base for every setting (an SD-1.5-size base per setting is too big)
        import handsynth.methods.sesahand.task as sesa_task

        shared = sesa_task.load_base(args.base)
        sesa_task.load_base = lambda spec, *a, **kw: shared
    tasks, models, batches, params, memory = {}, {}, {}, {}, {}
    for label, (method, sets, _) in settings.items():
        overrides = [f"model.resolution={args.resolution}", f"model.base_model={args.base}", *sets]
        if method == "sesahand":
            overrides.append(f"fusion.head_dim={args.head_dim}")
        _, task = build_training(method, None, str(data), overrides)
        models[label] = task.build(acc)
        tasks[label] = task
        batches[label] = task.collate([task.dataset()[i] for i in range(args.batch)])
        params[label] = _trainable(models[label])

    def train_step(label: str) -> None:
        task, model = tasks[label], models[label]
        loss, _ = task.loss(model, batches[label], 0, torch.Generator().manual_seed(0))
        loss.backward()
        model.zero_grad(set_to_none=True)
        if getattr(task, "_release_hsa", None):
            task._release_hsa()

    def sample_step(label: str) -> None:
        task, model, batch = tasks[label], models[label], batches[label]
        base = task.base
        dev = base.unet.device
        n = len(batch["id"])
        f = base.vae_scale_factor
        g = torch.Generator().manual_seed(1)
        lat = torch.randn(
            2 * n, base.unet.config.in_channels, args.resolution // f, args.resolution // f, generator=g
        )
        ids = tokenize(base.tokenizer, [""] * n + list(batch["prompt"])).to(dev)
        t = torch.tensor(500, device=dev)
        cond = batch["cond"].to(dev)
        ctx = contextlib.nullcontext()
        if getattr(task, "hsa", None) is not None:
            ctx = task.hsa.conditioning(batch["hand_mask"].to(dev), batch["indices"], lat.shape[-2:], t)
        with torch.no_grad(), ctx:
            text = base.text_encoder(ids)[0]
            controlled_unet_forward(base.unet, model, lat.to(dev), t, text, torch.cat([cond, cond]))

    passes = {
        "training step (loss + backward)": train_step,
        "sampling step (CFG batch, no grad)": sample_step,
    }
    passes = {k: fn for k, fn in passes.items() if k.split()[0] in args.passes}
    times: dict[str, dict[str, list[float]]] = {p: {k: [] for k in settings} for p in passes}
    total = args.warmup + args.repeats
    start = time.perf_counter()
    for r in range(total):
        for pname, fn in passes.items():
            for label in settings:
                if fn is sample_step and (label in SAMPLING_SKIPPED):
                    continue
                if args.device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()
                sync(args.device)
                t0 = time.perf_counter()
                fn(label)
                sync(args.device)
                if r >= args.warmup:
                    times[pname][label].append(time.perf_counter() - t0)
                if args.device.startswith("cuda"):
                    key = f"{pname}/{label}"
                    memory[key] = max(memory.get(key, 0), torch.cuda.max_memory_allocated() / 2**20)
        done = r + 1
        rate = done / (time.perf_counter() - start)
        print(
            f"round {done}/{total} ({rate:.3f} rounds/s, ETA {(total - done) / rate:.0f} s)",
            file=sys.stderr,
            flush=True,
        )

    rows: dict[str, dict] = {}
    for pname in passes:
        rows[pname] = {}
        for label, (method, _, _) in settings.items():
            v = times[pname][label]
            if not v:
                continue
            ref_times = times[pname].get(REFERENCE[method])
            ref = statistics.median(ref_times) if ref_times else float("nan")
            rows[pname][label] = {
                "median_ms": 1000 * statistics.median(v),
                "ratio": statistics.median(v) / ref,
                "reference": REFERENCE[method],
                "peak_mib": memory.get(f"{pname}/{label}"),
            }
    return {
        "base": args.base,
        "resolution": args.resolution,
        "batch": args.batch,
        **run_facts(args, "sesahand_cost.py"),
        "wall_s": round(time.perf_counter() - start, 1),
        "params": params,
        "rows": rows,
        "notes": {k: v[2] for k, v in settings.items()},
    }


def to_markdown(result: dict) -> str:
    lines = [
        "# SesaHand cost: structural fusion and HSA beside a plain ControlNet (and TAS)",
        "",
        f"Base `{result['base']}`, {result['resolution']}² images, batch {result['batch']}, device "
        f"{result['device']}, {result['threads']} thread(s), torch {result['torch']}; median of "
        f"{result['repeats']} interleaved rounds after {result['warmup']} warm-up (load average: "
        f"{', '.join(f'{x:.1f}' for x in result['load'])}; {result['wall_s']} s in all).",
        f"Command: `{result['command']}`",
        "",
        "Goals (issue 13 §6): HSA ≤ 1.05× the step without it; fusion ≤ 1.3× at the default levels.",
        "`×` is the ratio of medians to the row's reference (SesaHand rows: `ControlNet`; TAS rows:",
        "`AttentionHand, no TAS`). TAS is off at inference by default, so its rows have no sampling step.",
        "",
    ]
    gpu = result["device"].startswith("cuda")
    for pname, rows in result["rows"].items():
        head = "| setting | trainable params | wall (ms) | × reference |" + (" peak MiB |" if gpu else "")
        lines += [f"## {pname}", "", head, "|---|---:|---:|---:|" + ("---:|" if gpu else "")]
        for k, v in rows.items():
            row = f"| {k} | {result['params'][k] / 1e6:.2f} M | {v['median_ms']:.1f} | {v['ratio']:.3f} |"
            lines.append(row + (f" {v['peak_mib']:.0f} |" if gpu else ""))
        lines.append("")
    if not gpu:
        lines += ["Memory: not measured on the CPU (no allocator statistics); run with `--device cuda`.", ""]
    lines += ["Settings:", ""] + [f"- **{k}**: {v}" for k, v in result["notes"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="tiny", help="SD base: tiny (default), sd15-random, a folder or hub id")
    ap.add_argument("--resolution", type=int, default=128, help="image side in pixels (default 128)")
    ap.add_argument("--batch", type=int, default=2, help="records per step (default 2)")
    ap.add_argument("--head-dim", type=int, default=16, help="fusion.head_dim (default 16: tiny widths)")
    ap.add_argument("--device", default="cpu", help="torch device (default cpu)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    ap.add_argument("--settings", default="", help="semicolon list of setting labels (default: all)")
    ap.add_argument("--passes", default="training,sampling", help="training and/or sampling (default both)")
    ap.add_argument("--share-base", action="store_true", help="one frozen base for all (SesaHand rows only)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sesahand_cost.md")
    args = ap.parse_args()
    args.settings = [x.strip() for x in args.settings.split(";") if x.strip()]
    unknown = [x for x in args.settings if x not in SETTINGS]
    if unknown:
        sys.exit(f"error: --settings: unknown {unknown}; choose from {list(SETTINGS)}")
    args.passes = [x.strip() for x in args.passes.split(",") if x.strip()]
    if not args.passes or any(x not in ("training", "sampling") for x in args.passes):
        sys.exit("error: --passes must list training and/or sampling")
    if args.share_base and any(SETTINGS[k][0] != "sesahand" for k in args.settings or SETTINGS):
        sys.exit("error: --share-base works for the SesaHand rows only: pass --settings")
    for name in ("resolution", "batch", "repeats", "threads", "head_dim"):
        if getattr(args, name) < 1:
            sys.exit(f"error: --{name.replace('_', '-')} must be a positive integer")
    if args.resolution % 64:
        sys.exit("error: --resolution must be a multiple of 64")
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(to_markdown(result))
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
