"""``handsynth world render``: a dataset folder of procedural lab or wild hand photographs."""

from __future__ import annotations

import argparse
from pathlib import Path

from handsynth import cli_args
from handsynth.errors import UserError
from handsynth.progress import progress
from handsynth.world.scene import DOMAINS, WorldConfig

DEFAULT_MAPS = "mesh,seg"
SHEET_ROWS = 8

_worker_generator = None


def _init_worker(config: WorldConfig) -> None:
    global _worker_generator
    import os

    # Parallel workers already fill the cores: one rasteriser thread each (Mesa llvmpipe), unless set.
    os.environ.setdefault("LP_NUM_THREADS", "1")
    from handsynth.world.scene import WorldGenerator

    _worker_generator = WorldGenerator(config)


def _encoded(generator, index: int):
    """Generate sample ``index`` and encode its files to bytes here, in the worker (PNG is CPU work)."""
    from handsynth.data import encode_file

    sample, files = generator.generate(index)
    return sample, {rel: encode_file(rel, content) for rel, content in files.items()}


def _work(index: int):
    return _encoded(_worker_generator, index)


def render_world(
    config: WorldConfig,
    n: int,
    out: str | Path,
    start: int = 0,
    workers: int = 1,
    sheet_rows: int = SHEET_ROWS,
) -> Path:
    """Write samples ``start .. start+n-1`` of ``config`` into ``out`` (resumable); returns the contact sheet.

    Sample ``i`` depends only on (seed, domain, i), so any number of ``workers`` (processes, each with
    its own GL context) writes the same files; records are appended in index order.
    """
    from handsynth.data import DatasetWriter

    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    if start < 0:
        raise UserError(f"--start must be >= 0, got {start}")
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    from handsynth.world.scene import WorldGenerator, sample_id

    writer = DatasetWriter(out, config=config.to_dict(), lock=True)
    todo = [i for i in range(start, start + n) if not writer.has(sample_id(config.domain, i))]
    bar = progress(total=len(todo), desc=f"world {config.domain}", unit="img")
    if todo and workers == 1:
        gen = WorldGenerator(config)
        try:
            for i in todo:
                writer.write(*_encoded(gen, i))
                bar.update()
        finally:
            gen.release()
    elif todo:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(config,)) as pool:
            for sample, files in pool.imap(_work, todo, chunksize=2):
                writer.write(sample, files)
                bar.update()
    bar.close()
    return write_contact_sheet(out, rows=sheet_rows)


def write_contact_sheet(folder: str | Path, rows: int = SHEET_ROWS, cell: int = 160) -> Path:
    """A sheet of the folder's first samples: photo, local crop, mesh and local mesh, caption below."""
    import numpy as np
    from PIL import Image

    from handsynth.data import atomic_write_file, read_dataset
    from handsynth.render import load_map
    from handsynth.viz import contact_sheet

    root = Path(folder)
    samples = read_dataset(root)[:rows]
    grid, captions = [], []
    titles = ["photo", "local crop", "mesh", "local mesh"]
    for s in samples:
        row = [np.asarray(Image.open(root / s.file_name).convert("RGB"))]
        if s.local is not None and s.local.file_name:
            row.append(np.asarray(Image.open(root / s.local.file_name).convert("RGB")))
        if "mesh" in s.conditions:
            row.append(load_map("mesh", root / s.conditions["mesh"]))
        if s.local is not None and "mesh" in s.local.conditions:
            row.append(load_map("mesh", root / s.local.conditions["mesh"]))
        grid.append(row)
        captions.append(s.prompt)
    sheet = contact_sheet(
        grid, column_titles=titles[: max(len(r) for r in grid)], row_captions=captions, cell=cell
    )
    path = root / "contact_sheet.png"
    atomic_write_file(path, sheet)
    return path


def config_from_args(args: argparse.Namespace) -> WorldConfig:
    """Validate the command line into a :class:`WorldConfig` (before anything is written)."""
    from handsynth.render.maps import check_maps

    maps = tuple(m.strip() for m in args.maps.split(",") if m.strip()) if args.maps else ()
    if maps:
        check_maps(maps)
    if args.hand_model == "mano" and not args.mano_dir:
        raise UserError(
            "--hand-model mano needs --mano-dir PATH (the folder holding MANO_RIGHT.pkl / MANO_LEFT.pkl)"
        )
    if args.local_size is not None and args.local_size < 16:
        raise UserError(f"--local-size must be at least 16, got {args.local_size}")
    return WorldConfig(
        domain=args.domain,
        size=args.size,
        seed=args.seed,
        maps=maps,
        local=not args.no_local,
        local_size=args.local_size,
        hand_model=args.hand_model,
        model_dir=args.mano_dir,
        object_probability=args.object_prob,
        supersample=args.supersample,
        hand_fraction=_fraction(args.hand_fraction),
        poses=args.poses,
    )


def _fraction(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise UserError(f"--hand-fraction {text!r}: give LOW,HIGH, e.g. 0.45,0.7") from None
    return lo, hi


def _run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if config.poses:
        from handsynth.data import read_dataset

        have = sum(1 for s in read_dataset(config.poses) if s.hands)
        if have < args.start + args.n:
            raise UserError(f"--poses {config.poses} has {have} records with a hand; --n {args.n} needs more")
    sheet = render_world(config, args.n, args.out, start=args.start, workers=args.workers)
    print(f"wrote {args.out} ({config.domain}, contact sheet: {sheet})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    world = sub.add_parser("world", help="the micro world: procedural hand photographs with exact labels")
    world_sub = world.add_subparsers(dest="world_command", metavar="WORLD_COMMAND", required=True)
    p = world_sub.add_parser(
        "render",
        help="write N lab or wild photographs (+ captions, condition maps, labels) into a dataset folder",
    )
    p.add_argument(
        "--domain", choices=DOMAINS, required=True, help="lab: studio, hand large; wild: clutter, hand small"
    )
    p.add_argument("--n", type=cli_args.positive_int, required=True, help="number of images")
    p.add_argument("--out", required=True, help="output dataset folder (resumed if it exists)")
    p.add_argument("--size", type=cli_args.image_side, default=128, help="square image size (default 128)")
    p.add_argument("--seed", type=cli_args.seed, default=0, help="sample i depends only on (seed, domain, i)")
    p.add_argument("--start", type=cli_args.count, default=0, help="first sample index (to shard a big run)")
    p.add_argument(
        "--maps",
        default=DEFAULT_MAPS,
        help=f"condition maps per sample, comma list, '' for none (default {DEFAULT_MAPS})",
    )
    p.add_argument("--no-local", action="store_true", help="skip the local hand crop (maps and RGB)")
    p.add_argument(
        "--local-size", type=cli_args.image_side, default=None, help="local crop size (default: --size)"
    )
    p.add_argument(
        "--object-prob",
        type=cli_args.probability,
        default=None,
        help="chance of an object in the hand (default lab 0, wild 0.6)",
    )
    p.add_argument("--hand-model", choices=["openhand", "mano"], default="openhand")
    p.add_argument("--mano-dir", default=None, help="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl")
    p.add_argument(
        "--supersample",
        type=cli_args.int_in(1, 4, what="a supersampling factor"),
        default=2,
        help="anti-aliasing factor of the photo render (1-4)",
    )
    p.add_argument(
        "--workers", type=cli_args.positive_int, default=1, help="parallel processes (each uses one core)"
    )
    p.add_argument(
        "--hand-fraction",
        default=None,
        help="LOW,HIGH hand box side / image side (default lab 0.55,0.8; wild 0.22,0.45)",
    )
    p.add_argument(
        "--poses",
        default=None,
        help="dataset folder or .jsonl: sample i reuses record i's hand, camera and placement "
        "(real photos of the same poses in another domain)",
    )
    p.set_defaults(func=_run)
