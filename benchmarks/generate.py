"""Generation speed: `controlnet` through handsynth's pipeline vs. diffusers' ControlNet pipeline.

Side by side in one process, on the same components (the tiny base, or SD-1.5-sized parts with random
weights: `--config sd15`, meant for a GPU), the same images, prompts, steps and batches:

- ``diffusers``: ``StableDiffusionControlNetPipeline(...)(prompt=..., image=...)``, PIL out;
- ``sampler``: our ControlNet loop (``handsynth.methods.sampler``) on the same batches;
- ``job``: the whole ``handsynth generate`` job (``run_job``: input checks, prompt tagging, condition
  loading, PNG + record writes, merge, contact sheet) into a fresh folder, models already in memory;
- ``job-io``: the same job with the denoising replaced by replaying its results: the job's own work
  (what it adds to the pipeline when nothing of it overlapped), less sensitive to load than a ratio;
- ``global+local``: AttentionHand's local branch in the same loop, vs. ``global``;
- ``tas``: TAS at inference in the first steps (A&E schedule, up to 20 refinement iterations).

Each round runs every case once, in an order rotated from round to round, so background load and
position effects hit all alike; the median round is reported, and ratios are taken within a round.

    python benchmarks/generate.py                      # tiny, CPU: writes benchmarks/results/generate.{md,json}
    python benchmarks/generate.py --config sd15 --device cuda --dtype fp16 --size 512 --steps 20 --images 16 --batch 4
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


def build(args):
    from diffusers import ControlNetModel

    from handsynth.diffusion.base import SD15_RANDOM, load_base

    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    torch.manual_seed(0)
    base = load_base("tiny" if args.config == "tiny" else SD15_RANDOM, dtype=torch.float32)
    cn = ControlNetModel.from_unet(base.unet)
    with torch.no_grad():  # non-zero "zero convolutions", as after training
        for name, p in cn.named_parameters():
            if name.startswith(("controlnet_down_blocks", "controlnet_mid_block")):
                p.normal_(0, 0.02)
    dev = torch.device(args.device)
    base.to(dev, dtype)
    cn.to(dev, dtype).eval().requires_grad_(False)
    return base, cn


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", choices=("tiny", "sd15"), default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--tas-steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--out", default=str(RESULTS / "generate"), help="results path without suffix")
    ap.add_argument(
        "--cases",
        default="all",
        help="comma-separated subset of diffusers,sampler,job,job-io,global+local,tas (the ratio tables need "
        "diffusers beside sampler/job, sampler beside global+local/tas)",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from diffusers import StableDiffusionControlNetPipeline

    from handsynth.data import read_dataset
    from handsynth.diffusion.tas import TASConfig, TASInferenceConfig
    from handsynth.generate.inputs import Inputs, assign_prompts, check_prompts
    from handsynth.generate.job import JobConfig, SampleSource, run_job
    from handsynth.generate.plan import build_plan
    from handsynth.methods.baselines.generators import ControlNetBaseline
    from handsynth.methods.interface import GenRequest, SamplingConfig, make_scheduler
    from handsynth.methods.sampler import ControlNetSampler, LocalBlend, TASOptions
    from handsynth.methods.synthetic import write_synthetic_dataset

    base, cn = build(args)
    work = Path(tempfile.mkdtemp(prefix="handsynth-bench-"))
    inp = write_synthetic_dataset(work / "in", n=args.images, size=args.size)
    samples = read_dataset(inp)
    sampling = SamplingConfig(steps=args.steps, guidance=9.0, dtype=args.dtype)
    method = ControlNetBaseline(cn, base, sampling)
    method.load(torch.device(args.device))

    # The same requests for the loop and the pipeline.
    items = build_plan(samples, 1, 0)
    assign_prompts(items, "records", 0)
    check_prompts(items, base.tokenizer)
    source = SampleSource(Inputs(samples, Path(inp), False, ""), method, JobConfig(str(inp), ""))
    reqs = []
    for it in items:
        s, glob, _, _ = source.get(it)
        reqs.append(GenRequest(it, s.width, s.height, glob, {}, s.local.box))
    batches = [reqs[i : i + args.batch] for i in range(0, len(reqs), args.batch)]
    local_reqs = []
    for r in reqs:  # the local maps: the global map cropped by the hand box (as the job does)
        from PIL import Image

        from handsynth.render import crop_image

        crop = Image.fromarray(crop_image(r.conditions["mesh"], r.box, r.width))
        local_reqs.append(GenRequest(r.item, r.width, r.height, r.conditions, {"mesh": crop}, r.box))
    local_batches = [local_reqs[i : i + args.batch] for i in range(0, len(reqs), args.batch)]

    pipe = StableDiffusionControlNetPipeline(
        vae=base.vae,
        text_encoder=base.text_encoder,
        tokenizer=base.tokenizer,
        unet=base.unet,
        controlnet=cn,
        scheduler=make_scheduler("ddim", base.scheduler_config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    sched = lambda: make_scheduler("ddim", base.scheduler_config)  # noqa: E731
    glob_loop = ControlNetSampler(base, cn, sched(), sampling)
    local_loop = ControlNetSampler(
        base, cn, sched(), sampling, mode="global+local", local_blend=LocalBlend(0.5)
    )
    tas_cfg = TASConfig()
    tas_loop = ControlNetSampler(
        base, cn, sched(), sampling,
        tas=TASOptions(tas_cfg, TASInferenceConfig(enabled=True, max_steps=args.tas_steps), capture_maps=False),
    )  # fmt: skip

    def sync():
        if torch.device(args.device).type == "cuda":
            torch.cuda.synchronize()

    def run_pipeline():
        for b in batches:
            gens = [torch.Generator().manual_seed(r.seed) for r in b]
            pipe(
                prompt=[r.prompt for r in b],
                image=[r.conditions["mesh"] for r in b],
                height=args.size,
                width=args.size,
                num_inference_steps=args.steps,
                guidance_scale=9.0,
                generator=gens,
            )

    def run_loop(loop, bs):
        def go():
            for b in bs:
                loop(b)

        return go

    class Replay:
        """The method with its denoising replaced by replaying the results of a first call."""

        def __init__(self, inner):
            self.inner, self.results = inner, {}

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def generate(self, requests):
            key = tuple(r.item.out_id for r in requests)
            if key not in self.results:
                self.results[key] = self.inner.generate(requests)
            return self.results[key]

    replay = Replay(method)

    def run_whole_job(which=method):
        out = work / "job"  # emptied before the clock starts (below): deleting is not the job's work
        run_job(
            which,
            JobConfig(
                str(inp), str(out), batch_size=args.batch, prompts="records", threads=torch.get_num_threads()
            ),
        )

    cases = {
        "diffusers": run_pipeline,
        "sampler": run_loop(glob_loop, batches),
        "job": run_whole_job,
        "job-io": lambda: run_whole_job(replay),
        "global+local": run_loop(local_loop, local_batches),
        "tas": run_loop(tas_loop, batches),
    }
    if args.cases != "all":
        wanted = args.cases.split(",")
        unknown = sorted(set(wanted) - set(cases))
        if unknown:
            ap.error(f"--cases: unknown {unknown}; choose from {', '.join(cases)}")
        cases = {k: v for k, v in cases.items() if k in wanted}
    with torch.no_grad():  # warm-up: first calls allocate, JIT-select kernels, fill caches
        pipe(prompt=["warm"], image=[reqs[0].conditions["mesh"]], height=args.size, width=args.size,
             num_inference_steps=1)  # fmt: skip
    glob_loop(batches[0][:1])
    if "job-io" in cases:
        cases["job-io"]()  # fills the replayed results
    wall: dict[str, list[float]] = {k: [] for k in cases}
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    names = list(cases)
    for r in range(args.rounds):  # rotate the order: no case always runs first, or after the slowest
        for name in names[r % len(names) :] + names[: r % len(names)]:
            shutil.rmtree(work / "job", ignore_errors=True)
            sync()
            t0, c0 = time.perf_counter(), time.process_time()
            cases[name]()
            sync()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    # Wall time is the headline (what a user waits for, and what the job's overlap of writing with
    # denoising shortens); process CPU time is shown beside it (it swings less with other people's
    # load, but counts the writer thread's work that wall time hides).
    on_gpu = torch.device(args.device).type == "cuda"
    primary = wall
    pairs_all = ("diffusers", "sampler", "job", "job-io", "global+local", "tas")

    def ratio(a: str, b: str, t: dict) -> float:
        return statistics.median(x / y for x, y in zip(t[a], t[b])) if a in t and b in t else float("nan")

    def spread(a: str, b: str, t: dict) -> list[float]:
        """The per-round ratios' range: how far one round can be from the median on this machine."""
        rounds = [x / y for x, y in zip(t[a], t[b])] if a in t and b in t else [float("nan")]
        return [min(rounds), max(rounds)]

    med = {k: statistics.median(v) for k, v in primary.items()}
    ips = {k: args.images / v for k, v in med.items()}
    for k in pairs_all:  # cases left out by --cases show as n/a
        med.setdefault(k, float("nan"))
        ips.setdefault(k, float("nan"))
    pairs = {
        "sampler_vs_diffusers": ("sampler", "diffusers"),
        "job_vs_diffusers": ("job", "diffusers"),
        "job-io_vs_diffusers": ("job-io", "diffusers"),
        "global_local_vs_global": ("global+local", "sampler"),
        "tas_vs_global": ("tas", "sampler"),
    }
    ratios = {k: ratio(a, b, primary) for k, (a, b) in pairs.items()}
    wall_ratios = {k: ratio(a, b, wall) for k, (a, b) in pairs.items()}
    cpu_ratios = {k: ratio(a, b, cpu) for k, (a, b) in pairs.items()}
    wall_spread = {k: spread(a, b, wall) for k, (a, b) in pairs.items()}
    shutil.rmtree(work, ignore_errors=True)
    cmd = "python benchmarks/generate.py " + " ".join(sys.argv[1:])
    device = (
        torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({os.cpu_count()} cores)"
    )
    result = {
        "command": cmd.strip(),
        "config": vars(args),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "load_average_end": list(os.getloadavg()),
        "platform": platform.platform(),
        "measure": "wall time (CUDA synchronised)" if on_gpu else "wall time",
        "wall_seconds_per_round": wall,
        "cpu_seconds_per_round": cpu,
        "images_per_s": ips,
        "ratios": ratios,
        "wall_ratios": wall_ratios,
        "cpu_ratios": cpu_ratios,
        "wall_ratio_range_over_rounds": wall_spread,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(result, indent=2))
    measure = result["measure"]
    lines = [
        "# Generation speed",
        "",
        f"`{result['command']}` — base `{args.config}` (random weights), {args.size}x{args.size}, DDIM "
        f"{args.steps} steps, CFG 9.0, {args.images} images in batches of {args.batch}, {args.dtype}, "
        f"{device}, {torch.get_num_threads()} torch threads; {args.rounds} rounds, each case once per round "
        f"in rotated order; medians. Measure: {measure} (load average at the end "
        f"{[round(x, 2) for x in result['load_average_end']]}).",
        "",
        f"| case | images/s ({measure}) | s per round | vs. diffusers ({measure}) | range over rounds "
        "| vs. diffusers (process CPU time) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for k in ("diffusers", "sampler", "job", "job-io"):
        if k not in wall:
            continue
        if k == "diffusers":
            rel = ("1.000x", "", "1.000x")
        else:
            lo, hi = wall_spread[k + "_vs_diffusers"]
            rel = (
                f"{ratios[k + '_vs_diffusers']:.3f}x",
                f"{lo:.3f}-{hi:.3f}x",
                f"{cpu_ratios[k + '_vs_diffusers']:.3f}x",
            )
        lines.append(f"| {k} | {ips[k]:.3f} | {med[k]:.2f} | {rel[0]} | {rel[1]} | {rel[2]} |")
    modes = "global+local" in wall and "tas" in wall
    lines += (
        [
            "",
            f"| AttentionHand mode | images/s ({measure}) | time vs. `global` | (process CPU time) |",
            "|---|---:|---:|---:|",
            f"| global | {ips['sampler']:.3f} | 1.00x | 1.00x |",
            f"| global+local | {ips['global+local']:.3f} | {ratios['global_local_vs_global']:.2f}x "
            f"| {cpu_ratios['global_local_vs_global']:.2f}x |",
            f"| global + TAS (first {args.tas_steps} steps) | {ips['tas']:.3f} | {ratios['tas_vs_global']:.2f}x "
            f"| {cpu_ratios['tas_vs_global']:.2f}x |",
        ]
        if modes
        else []
    )
    lines += [
        "",
        "`sampler` is our ControlNet loop alone; `job` is the whole `handsynth generate` job (input checks, "
        "prompt tagging, condition loading on a prefetch thread, PNG and record writes with an fsync per "
        "file on a writer thread beside the denoising, merge, contact sheet); `job-io` is that job with the "
        "denoising replayed from memory, i.e. the job's own work, the most it can add to the pipeline. "
        "Goals: the job's wall time "
        "at most 1.05x diffusers' pipeline — job "
        f"{ratios['job_vs_diffusers']:.3f}x, loop {ratios['sampler_vs_diffusers']:.3f}x "
        f"({'met' if ratios['job_vs_diffusers'] <= 1.05 else 'NOT met'} at the median)"
        + (
            f"; `global+local` at most 2.1x `global` — {ratios['global_local_vs_global']:.2f}x "
            f"({'met' if ratios['global_local_vs_global'] <= 2.1 else 'NOT met'})"
            if modes
            else " (AttentionHand modes not run: --cases)"
        )
        + ". "
        "A ratio below 1 means the diffusers pipeline spent more time per image than ours (its per-step "
        "bookkeeping); on a shared CPU, differences of a few percent are within the noise of one run.",
        "",
    ]
    Path(args.out + ".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
