"""Cost of HSA (SesaHand's hand structure attention bias) in one UNet forward, side by side with the stock one.

Two passes are timed: a sampling step (classifier-free guidance batch [uncond, cond], no grad) and a
training step (UNet forward + backward on the conditional batch). Every setting runs on its own copy
of the same UNet weights, interleaved with the others on the same inputs, so load on a shared machine
hits them alike; the median wall time and its ratio to the stock forward are reported. Goal: <= 1.05x.

    python benchmarks/hsa_cost.py                                         # tiny base, CPU
    python benchmarks/hsa_cost.py --base sd15-random --resolution 512 --device cuda   # SD-1.5 size, GPU

Writes benchmarks/results/hsa_cost.md and .json (``--out`` to change).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch

from timing import interleaved, medians, run_facts  # benchmarks/timing.py

ROOT = Path(__file__).resolve().parents[1]

# label -> (HSAConfig keyword arguments or None for the stock processors, note)
SETTINGS: dict[str, tuple[dict | None, str]] = {
    "stock": (None, "diffusers' SDPA processors, no HSA"),
    "HSA installed, inactive": ({"bias": 1.0}, "installed, no conditioning() block: the wrapper only"),
    "HSA (default)": ({"bias": 1.0}, "beta 1, soft mask, constant, uncond half unbiased"),
    "HSA hard mask": ({"bias": 1.0, "mask": "hard"}, "default with mask=hard"),
    "HSA learnable per layer + timestep": (
        {"bias": 1.0, "learnable": "per_layer", "schedule": "timestep"},
        "one beta parameter per layer, beta scaled by the timestep",
    ),
    "HSA, uncond half biased too": ({"bias": 1.0, "cfg_uncond": "same"}, "default with cfg_uncond=same"),
}
PROMPTS = ["a person holding a red cup with the right hand", "a woman waving her hand"]


def run(args: argparse.Namespace) -> dict:
    from handsynth.diffusion.base import load_base
    from handsynth.diffusion.encoding import encode_text
    from handsynth.diffusion.hand_bias import HSAConfig, install_hand_bias
    from handsynth.text.tagging import hand_token_indices

    torch.set_num_threads(args.threads)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    base = load_base(args.base)
    text = encode_text(base, PROMPTS).to(args.device, dtype)
    neg = encode_text(base, [""] * len(PROMPTS)).to(args.device, dtype)
    indices = [hand_token_indices(p, base.tokenizer) for p in PROMPTS]
    lat_hw = (args.resolution // base.vae_scale_factor, args.resolution // base.vae_scale_factor)
    gen = torch.Generator().manual_seed(0)
    lat = torch.randn(len(PROMPTS), base.unet.config.in_channels, *lat_hw, generator=gen)
    lat = lat.to(args.device, dtype)
    masks = torch.zeros(len(PROMPTS), args.resolution, args.resolution)
    masks[
        :, args.resolution // 4 : 3 * args.resolution // 4, args.resolution // 3 : 2 * args.resolution // 3
    ] = 1
    t = torch.tensor([500] * len(PROMPTS), device=args.device)

    nets, handles = {}, {}
    for label, (kwargs, _) in SETTINGS.items():
        unet = copy.deepcopy(base.unet).to(args.device).requires_grad_(True)  # training: the UNet learns
        if dtype != torch.float32:
            unet = unet.to(dtype)
        if kwargs is not None:
            handles[label] = install_hand_bias(unet, HSAConfig(**kwargs)).to(args.device)
        nets[label] = unet
    del base

    def hsa_on(label: str):
        active = label in handles and label != "HSA installed, inactive"
        return handles[label].conditioning(masks, indices) if active else _null()

    def sample_step(label: str) -> None:
        with torch.no_grad(), hsa_on(label):
            nets[label](
                torch.cat([lat, lat]), torch.cat([t, t]), encoder_hidden_states=torch.cat([neg, text])
            )

    def train_step(label: str) -> None:
        with hsa_on(label):
            out = nets[label](lat, t, encoder_hidden_states=text).sample
            out.float().square().mean().backward()
        nets[label].zero_grad(set_to_none=True)
        if label in handles:
            handles[label].zero_grad(set_to_none=True)

    passes = {
        "sampling step (CFG batch, no grad)": sample_step,
        "training step (forward + backward)": train_step,
    }
    times = interleaved(passes, SETTINGS, args.warmup, args.repeats, args.device)
    rows = medians(times, "stock")
    return {
        "base": args.base,
        "resolution": args.resolution,
        "latent": list(lat_hw),
        "dtype": args.dtype,
        **run_facts(args, "hsa_cost.py"),
        "rows": rows,
        "notes": {k: v[1] for k, v in SETTINGS.items()},
    }


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def to_markdown(result: dict) -> str:
    lines = [
        "# HSA cost: one UNet forward with and without the hand structure attention bias",
        "",
        f"Base `{result['base']}`, {result['resolution']}² images ({result['latent'][0]}×{result['latent'][1]} "
        f"latents), batch 2 prompts, device {result['device']}, {result['dtype']}, {result['threads']} thread(s), "
        f"torch {result['torch']}, median of {result['repeats']} interleaved rounds after {result['warmup']} "
        f"warm-up (load average during the run: {', '.join(f'{x:.1f}' for x in result['load'])}).",
        f"Command: `{result['command']}`",
        "",
        "Goal (issue 13 §6): HSA ≤ 1.05× the step without it. `×` is the ratio of medians to `stock`.",
        "`HSA installed, inactive` adds only a Python wrapper call per layer: its distance from 1.00 is",
        "the run's noise floor (a shared CPU); read the other rows against it.",
        "",
    ]
    for pname, rows in result["rows"].items():
        lines += [f"## {pname}", "", "| setting | wall (ms) | × stock |", "|---|---:|---:|"]
        lines += [f"| {k} | {v['median_ms']:.1f} | {v['ratio']:.3f} |" for k, v in rows.items()]
        lines.append("")
    lines += ["Settings:", ""] + [f"- **{k}**: {v}" for k, v in result["notes"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="tiny", help="SD base: tiny (default), sd15-random, a folder or hub id")
    ap.add_argument("--resolution", type=int, default=256, help="image side in pixels (default 256)")
    ap.add_argument("--device", default="cpu", help="torch device (default cpu)")
    ap.add_argument(
        "--dtype", default="fp32", choices=["fp32", "fp16", "bf16"], help="weights (default fp32)"
    )
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--repeats", type=int, default=20, help="timed rounds (default 20)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "hsa_cost.md")
    args = ap.parse_args()
    for name, value in (
        ("--resolution", args.resolution),
        ("--repeats", args.repeats),
        ("--threads", args.threads),
    ):
        if value < 1:
            sys.exit(f"error: {name} must be a positive integer, got {value}")
    if args.warmup < 0:
        sys.exit(f"error: --warmup must be 0 or more, got {args.warmup}")
    result = run(args)
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    out.with_suffix(".md").write_text(to_markdown(result))
    print(to_markdown(result))


if __name__ == "__main__":
    main()
