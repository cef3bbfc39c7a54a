"""Which DDIM variant does the micro HandBooster synthesizer need: is the released sampler why fewer images pass?

Why: after the sampler fix (released DDIM: trailing spacing, noise direction from the clipped x0) a
one-seed full HandBooster run kept fewer images through the edge-case filter than the run before it, and
its images showed high-frequency noise in the background (docs/handbooster.md, open question). At the
suite's 10 steps the released spacing's last model call is at t = 99 (x_99 still carries noise of std
~0.3 and the image is that call's x0), while diffusers' ``leading`` spacing ends with a call at t = 0.
This probe samples trained run folders of a finished suite with several variants on the same conditions
and seeds, filters every set with the suite's estimator and thresholds, and measures the noise:

    python benchmarks/micro/handbooster_sampler_probe.py --work outputs/micro/hb_full_seed0 \
        --run d=outputs/micro/hb_full_seed0/runs/d_normal_seg/seed0 --out probe/

A variant is ``spacing:direction:steps`` (spacing ``trailing|leading|linspace``, direction
``clipped|unclipped``); the default set is the released sampler at 10, 20 and 50 steps, the code before
the fix (leading, unclipped), the two mixtures and ``linspace`` (from t = 999 to t = 0). Every set is
skipped when its folder is complete (resumable). Prints one row per run and variant -- kept / pass rate /
median errors / high-frequency energy (mean |image - 3x3 box blur|, 0-255) -- next to the filter's
yardsticks (real photos in the generator's framing, the suite's rendered set, and the trivial row:
mid-grey images with the same records), and writes ``probe.json``, ``probe.md`` and ``sheet_<run>.png``
(conditions, then each variant's first images; kept framed green, rejected red).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from handbooster_budget_probe import _line as filter_line  # beside this script
from handbooster_budget_probe import _row as filter_row
from handbooster_budget_probe import _run, _tile
from PIL import Image
from scipy.ndimage import binary_dilation, uniform_filter

from handsynth.methods.handbooster.options import SPACINGS

DEFAULT_VARIANTS = [
    "trailing:clipped:10",
    "leading:unclipped:10",
    "leading:clipped:10",
    "trailing:unclipped:10",
    "linspace:clipped:10",
    "trailing:clipped:20",
    "trailing:clipped:50",
]


def parse_variant(text: str) -> tuple[str, bool, int]:
    """``spacing:direction:steps`` -> (spacing, clipped direction, steps)."""
    try:
        spacing, direction, steps = text.split(":")
        if spacing not in SPACINGS or direction not in ("clipped", "unclipped"):
            raise ValueError
        return spacing, direction == "clipped", int(steps)
    except ValueError:
        raise SystemExit(
            f"variant {text!r} is not spacing:direction:steps ({'|'.join(SPACINGS)}:clipped|unclipped:N)"
        ) from None


def variant_name(text: str) -> str:
    return text.replace(":", "_")


def generate_one(checkpoint: Path, conds: Path, out: Path, variant: str, seed: int, threads: int) -> None:
    """One set with one sampler variant, in this process (CFG 3 and eta 1, as the suite)."""
    import torch

    torch.set_num_threads(threads)
    from handsynth.generate.job import Dist, JobConfig, run_job
    from handsynth.methods.handbooster.generator import HandBoosterGenerator
    from handsynth.methods.interface import SamplingConfig

    spacing, clipped, steps = parse_variant(variant)
    method = HandBoosterGenerator(
        checkpoint,
        sampling=SamplingConfig(scheduler="ddim", steps=steps, guidance=3.0, eta=1.0),
        data_root=conds,
        spacing=spacing,
        clipped_direction=clipped,
    )
    run_job(
        method, JobConfig(inp=str(conds), out=str(out), seed=seed, batch_size=16, threads=threads), Dist()
    )


def high_frequency(folder: Path) -> tuple[float, float]:
    """Mean |image - its 3x3 box blur| (0-255) over the set's images, and over their background only
    (seg map 0 with its 3x3 neighbourhood, when the set stores seg conditions; else nan): edges of a real
    photo score as high as noise, a flat background does not."""
    whole, background = [], []
    for p in sorted((folder / "images").glob("*.png")):
        x = np.asarray(Image.open(p).convert("RGB"), np.float32)
        h, w = x.shape[:2]
        diff = np.abs(x - uniform_filter(x, size=(3, 3, 1), mode="nearest")).mean(-1)
        whole.append(float(diff.mean()))
        seg = folder / "conditions" / "seg" / p.name
        if seg.exists():
            fg = np.asarray(Image.open(seg).convert("L").resize((w, h), Image.NEAREST)) > 0
            near = binary_dilation(fg, structure=np.ones((3, 3), bool))
            if (~near).any():
                background.append(float(diff[~near].mean()))
    return float(np.mean(whole)), float(np.mean(background)) if background else float("nan")


def sheet(out: Path, run: str, variants: list[str], n: int = 8, size: int = 64) -> Path | None:
    """Condition maps, then each variant's first ``n`` images as columns (kept green, rejected red)."""
    gens = [out / run / variant_name(v) for v in variants]
    names = [p.name for p in sorted((gens[0] / "images").glob("*.png"))[:n]]
    if not names:
        return None
    cols = []
    for kind in sorted(p.name for p in (gens[0] / "conditions").iterdir() if p.is_dir()):
        maps = [gens[0] / "conditions" / kind / name for name in names]
        if all(m.exists() for m in maps):
            cols.append(np.concatenate([_tile(m, size) for m in maps], 0))
    for gen in gens:
        kept = {p.name for p in (gen.with_name(gen.name + "_kept") / "images").glob("*.png")}
        tiles = [
            _tile(gen / "images" / name, size, (0, 200, 0) if name in kept else (220, 0, 0))
            if (gen / "images" / name).exists()
            else np.zeros((size, size, 3), np.uint8)
            for name in names
        ]
        cols.append(np.concatenate(tiles, 0))
    path = out / f"sheet_{run}.png"
    Image.fromarray(np.concatenate(cols, 1)).save(path)
    return path


def blank_set(src: Path, dst: Path) -> None:
    """``src``'s records with every image mid-grey (conditions kept)."""
    import shutil

    from handsynth.data import read_dataset, write_metadata

    samples = read_dataset(src)
    (dst / "images").mkdir(parents=True, exist_ok=True)
    if (src / "conditions").exists():
        shutil.copytree(src / "conditions", dst / "conditions", dirs_exist_ok=True)
    for s in samples:
        Image.new("RGB", (s.width, s.height), (128, 128, 128)).save(dst / s.file_name)
    write_metadata(dst / "metadata.jsonl", samples)


def _row(name: str, rep: dict, folder: Path, gen_s: float = 0.0) -> dict:
    return {
        **filter_row(name, rep, gen_s=gen_s),
        **dict(zip(("high_frequency", "background_hf"), high_frequency(folder))),
    }


def _line(r: dict) -> str:
    return f"{filter_line(r)}  HF {r['high_frequency']:.2f}, background {r['background_hf']:.2f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--work", required=True, help="a finished HandBooster suite folder (data, conds, tools, eval)"
    )
    p.add_argument("--run", action="append", required=True, help="NAME=RUN_FOLDER: a trained synthesizer")
    p.add_argument(
        "--variant", action="append", help="spacing:direction:steps (repeat; default: seven, see above)"
    )
    p.add_argument("--conds", default="real_seed0", help="condition set under WORK/conds to generate from")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2, help="generation processes side by side, one thread each")
    p.add_argument("--out", required=True)
    p.add_argument(
        "--one", nargs=4, metavar=("CHECKPOINT", "CONDS", "OUT", "VARIANT"), help=argparse.SUPPRESS
    )
    args = p.parse_args(argv)
    if args.one:
        checkpoint, conds, out, variant = args.one
        generate_one(Path(checkpoint), Path(conds), Path(out), variant, args.seed, 1)
        return 0

    from handbooster_suite import filter_argv, real_crops

    variants = args.variant or DEFAULT_VARIANTS
    for v in variants:
        parse_variant(v)
    runs = dict(r.split("=", 1) for r in args.run)
    work, out = Path(args.work).resolve(), Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    conds, log = work / "conds" / args.conds, out / "probe.log"
    thresholds = work / "eval" / "filter_thresholds.json"
    estimator = work / "tools" / "recon"
    if not thresholds.exists():
        raise SystemExit(f"{thresholds} is missing: run the suite's filter stage first")

    def sh(cmd: list[str]) -> float:
        return _run(cmd, log)

    gen_s: dict[Path, float] = {}
    todo = []
    for name, folder in runs.items():
        for v in variants:
            dst = out / name / variant_name(v)
            if not (dst / ".done").exists():
                todo.append((Path(folder).resolve(), dst, v))

    def gen(item) -> None:
        ckpt, dst, v = item
        cmd = [sys.executable, __file__, "--work", str(work), "--run", "x=.", "--out", str(out),
               "--seed", str(args.seed), "--one", str(ckpt), str(conds), str(dst), v]  # fmt: skip
        gen_s[dst] = sh(cmd)
        (dst / ".done").write_text(f"{gen_s[dst]:.1f}\n")
        print(f"generated {dst.relative_to(out)} in {gen_s[dst]:.0f} s", flush=True)

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        list(pool.map(gen, todo))

    def filtered(data: Path) -> dict:
        kept = data.with_name(data.name + "_kept")
        if not (kept / "filter_report.json").exists():
            sh(
                [
                    sys.executable,
                    "-m",
                    "handsynth.cli",
                    *filter_argv(data, kept, estimator, None, None, (), thresholds),
                ]
            )
        return json.loads((kept / "filter_report.json").read_text())

    rows = []
    for name in runs:
        for v in variants:
            dst = out / name / variant_name(v)
            secs = float((dst / ".done").read_text())
            rows.append({"run": name, "variant": v, **_row(f"{name} {v}", filtered(dst), dst, secs)})
            print(_line(rows[-1]), flush=True)
    first = Path(next(iter(runs.values())))
    import yaml

    cfg = yaml.safe_load((first / "handsynth_config.yaml").read_text())
    real = out / "real_crops"
    if not (real / "metadata.jsonl").exists():
        real_crops(
            work / "data" / "holab_oracle", real, cfg["model"]["sample_size"], cfg["data"]["crop_expand"]
        )
    refs = [_row("real photos, generator framing", filtered(real), real)]
    render = work / "gen" / "b_render" / f"seed{args.seed}"
    if (render / "metadata.jsonl").exists():
        copy = out / "b_render"
        if not copy.exists():
            copy.symlink_to(render, target_is_directory=True)
        refs.append(_row("rendered (row b)", filtered(copy), copy))
    # the trivial row: mid-grey images with the first set's records (a filter that keeps these is blind)
    blank = out / "blank"
    if not (blank / "metadata.jsonl").exists():
        blank_set(out / next(iter(runs)) / variant_name(variants[0]), blank)
    refs.append(_row("blank images (trivial)", filtered(blank), blank))
    for r in refs:
        print(_line(r), flush=True)
    th = json.loads(thresholds.read_text())["thresholds_mm"]
    (out / "probe.json").write_text(
        json.dumps({"rows": rows, "references": refs, "thresholds_mm": th}, indent=1)
    )
    lines = [
        "# HandBooster sampler probe: which DDIM variant, same trained models",
        "",
        f"`python benchmarks/micro/handbooster_sampler_probe.py {shlex.join(argv or sys.argv[1:])}`",
        "",
        f"Conditions `{args.conds}`, seed {args.seed}, CFG 3, eta 1. Filter thresholds of the suite "
        f"(MPJPE {th['mpjpe']:.1f} mm, PA-MPJPE {th['pa_mpjpe']:.1f} mm). HF = mean |image - 3x3 box blur| "
        "(0-255) over the image (real photos' edges score as high as noise) and over the background only (seg 0 "
        "and not next to it: the noise the images show). Rows after the gap are the filter's yardsticks.",
        "",
        "| run | variant | kept | pass rate | median MPJPE (mm) | median PA-MPJPE (mm) | HF | HF background | generate s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in [*rows, None, *refs]:
        if r is None:
            lines.append("| | | | | | | | | |")
            continue
        lines.append(
            f"| {r.get('run', r['images'])} | {r.get('variant', '')} | {r['kept']}/{r['records']} | "
            f"{100 * r['pass_rate']:.1f} % | {r['median_mm']['mpjpe']:.1f} | {r['median_mm']['pa_mpjpe']:.1f} | "
            f"{r['high_frequency']:.2f} | {r['background_hf']:.2f} | {r['generate_s']:.0f} |"
        )
    for name in runs:
        path = sheet(out, name, variants)
        if path:
            lines += ["", f"![{name}: conditions, then {', '.join(variants)} (green: kept)]({path.name})"]
    (out / "probe.md").write_text("\n".join(lines) + "\n")
    print(out / "probe.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
