"""``handsynth demo``: the main job end to end on a fresh machine, in a few minutes on a CPU.

Samples poses, renders every condition map (global + local), and writes a contact sheet.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from handsynth.errors import UserError


def run_demo(out: Path, n: int = 16, seed: int = 0, size: int = 256) -> dict[str, Path]:
    """Run the demo into ``out``; returns the paths a user looks at."""
    from handsynth.data import write_metadata
    from handsynth.hand import load_hand_model
    from handsynth.hand.priors import SceneConfig, sample_records
    from handsynth.render import MAP_NAMES
    from handsynth.render.cli import render_dataset

    out.mkdir(parents=True, exist_ok=True)
    poses = out / "poses.jsonl"
    if not poses.exists():
        models = {s: load_hand_model("openhand", side=s).eval() for s in ("right", "left")}
        half = n // 2
        samples = sample_records(n - half, seed, models, SceneConfig(size=size))
        samples += sample_records(half, seed, models, SceneConfig(size=size, two_hands=True), start=n - half)
        write_metadata(poses, samples)
    sheet = render_dataset(poses, out / "conditions", MAP_NAMES)
    return {"poses": poses, "conditions": out / "conditions", "contact_sheet": sheet}


def _run(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    paths = run_demo(Path(args.out), n=args.n, seed=args.seed, size=args.size)
    print("\nhandsynth demo finished:")
    for name, path in paths.items():
        print(f"  {name:14s} {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="sample poses, render condition maps, write a contact sheet")
    p.add_argument("--out", default="outputs/demo", help="output folder (resumed if it exists)")
    p.add_argument("--n", type=int, default=16, help="number of poses")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256, help="image size in pixels")
    p.set_defaults(func=_run)
