"""Cost of one micro-base UNet training step and one sampling step by number of attention heads.

The full profile's base (benchmarks/micro/config.yaml: UNet (32, 64, 64), text encoder trained with it,
batch 16 at a 16² latent) spends about half of its step in attention: with 8 heads a head has 4-8
channels, and CPU attention kernels are slow on such thin heads. Every head count gets its own
seeded model of the same widths; the settings run interleaved on the same inputs, so load on a shared
machine hits them alike. Median wall time and its ratio to the 8-head step (the v1/v2 bases) are
reported.

    python benchmarks/micro_base_cost.py                       # CPU, one thread, heads 8 / 4 / 2 / 1
    python benchmarks/micro_base_cost.py --device cuda --threads 16

Writes benchmarks/results/micro_base_cost.md and .json (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch
import yaml

from timing import interleaved, medians, run_facts  # benchmarks/timing.py

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "benchmarks" / "micro" / "config.yaml"


def run(args: argparse.Namespace) -> dict:
    from handsynth.micro.base import MicroBaseConfig, build_components

    torch.set_num_threads(args.threads)
    common = yaml.safe_load(CONFIG.read_text())["common"]
    base_cfg = MicroBaseConfig(resolution=common["size"], **common["base"])
    heads = [int(h) for h in args.heads.split(",")]
    models = {}
    for h in heads:
        parts = build_components(replace(base_cfg, attention_heads=h))
        unet, te = parts["unet"].to(args.device), parts["text_encoder"].to(args.device)
        params = [*unet.parameters(), *te.parameters()]
        models[h] = (unet, te, torch.optim.AdamW(params, lr=1e-4))
    g = torch.Generator().manual_seed(0)
    b, lat = base_cfg.unet_batch_size, base_cfg.latent_size
    ids = torch.randint(0, 49400, (b, 77), generator=g).to(args.device)
    x = torch.randn(b, base_cfg.latent_channels, lat, lat, generator=g).to(args.device)
    t = torch.randint(0, 1000, (b,), generator=g).to(args.device)

    def train_step(h: int) -> None:  # what pretrain_base does per step (text encoder trained with the UNet)
        unet, te, opt = models[h]
        out = unet(x, t, encoder_hidden_states=te(ids)[0]).sample
        opt.zero_grad(set_to_none=True)
        out.square().mean().backward()
        opt.step()

    def sample_step(h: int) -> None:  # one CFG denoising step of a generation batch
        unet, te, _ = models[h]
        with torch.no_grad():
            cond = te(ids)[0]
            unet(torch.cat([x, x]), torch.cat([t, t]), encoder_hidden_states=torch.cat([cond, cond]))

    passes = {
        "training step (UNet + text encoder)": train_step,
        "sampling step (CFG batch, no grad)": sample_step,
    }
    times = interleaved(passes, heads, args.warmup, args.repeats, args.device)
    rows = medians(times, 8 if 8 in heads else heads[0])
    return {
        "unet_channels": base_cfg.unet_channels,
        "batch": b,
        "latent": lat,
        **run_facts(args, "micro_base_cost.py"),
        "rows": rows,
    }


def table(res: dict) -> str:
    heads = list(next(iter(res["rows"].values())))
    lines = [
        f"# Micro base step cost by attention heads (UNet {res['unet_channels']}, batch {res['batch']}, "
        f"latent {res['latent']}², {res['device']}, {res['threads']} thread(s))",
        "",
        f"Command: `{res['command']}`; torch {res['torch']}; median of {res['repeats']} interleaved repeats "
        f"after {res['warmup']} warm-up; load average at the end {res['load'][0]:.1f}. Ratio: to 8 heads.",
        "",
        "| pass | " + " | ".join(f"{h} head{'s' if h != '1' else ''}" for h in heads) + " |",
        "|---|" + "---|" * len(heads),
    ]
    for pname, row in res["rows"].items():
        cells = [f"{row[h]['median_ms']:.0f} ms ({row[h]['ratio']:.2f}×)" for h in heads]
        lines.append(f"| {pname} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--heads", default="8,4,2,1", help="comma-separated head counts (8 = the v1/v2 bases)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch threads (one per job in the micro runner)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "micro_base_cost"))
    args = p.parse_args(argv)
    res = run(args)
    text = table(res)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
