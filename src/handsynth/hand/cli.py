"""``handsynth mano convert`` and ``handsynth poses sample``: thin wrappers over the hand library."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from handsynth import cli_args
from handsynth.errors import UserError

log = logging.getLogger(__name__)


def _mano_convert(args: argparse.Namespace) -> int:
    from handsynth.hand.mano import convert_mano

    mano_dir = Path(args.mano_dir)
    if not mano_dir.is_dir():
        raise UserError(
            f"--mano-dir {mano_dir} is not a folder: pass the folder holding MANO_RIGHT.pkl / MANO_LEFT.pkl"
        )
    written = convert_mano(
        mano_dir, Path(args.out) if args.out else None, fix_left_shapedirs=not args.no_left_fix
    )
    for p in written:
        print(p)
    return 0


def _poses_sample(args: argparse.Namespace) -> int:
    from handsynth.data.folder import metadata_path, write_metadata
    from handsynth.hand.model import load_hand_model
    from handsynth.hand.priors import SceneConfig, sample_records

    if args.n <= 0:
        raise UserError(f"--n must be a positive number of samples, got {args.n}")
    if args.size < 64:
        raise UserError(f"--size must be at least 64 pixels, got {args.size}")
    out = metadata_path(args.out)
    if out.exists() and not args.overwrite:
        raise UserError(f"{out} already exists: choose another --out or pass --overwrite")
    sides = ("right", "left")
    models = {s: load_hand_model(args.hand_model, side=s, model_dir=args.mano_dir).eval() for s in sides}
    cfg = SceneConfig(size=args.size, two_hands=args.two_hands, beta_std=args.beta_std)
    samples = sample_records(args.n, args.seed, models, cfg, start=args.start)
    write_metadata(out, samples)
    log.info("wrote %d samples to %s", len(samples), out)
    print(out)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    mano = sub.add_parser("mano", help="MANO model files")
    mano_sub = mano.add_subparsers(dest="mano_command", metavar="ACTION")
    conv = mano_sub.add_parser(
        "convert", help="write MANO_{RIGHT,LEFT}.npz (plain numpy, no chumpy) from the official pickles"
    )
    conv.add_argument("--mano-dir", required=True, help="folder holding MANO_RIGHT.pkl and/or MANO_LEFT.pkl")
    conv.add_argument("--out", default=None, help="output folder (default: --mano-dir)")
    conv.add_argument(
        "--no-left-fix",
        action="store_true",
        help="keep the left model's shapedirs as shipped (smplx issue #48 not fixed)",
    )
    conv.set_defaults(func=_mano_convert)
    mano.set_defaults(func=lambda a: (mano.print_help(), 2)[1])

    poses = sub.add_parser("poses", help="hand poses")
    poses_sub = poses.add_subparsers(dest="poses_command", metavar="ACTION")
    s = poses_sub.add_parser(
        "sample", help="random plausible hand poses with a camera that frames them (records as JSON lines)"
    )
    s.add_argument("--n", type=cli_args.positive_int, required=True, help="number of samples")
    s.add_argument(
        "--seed", type=cli_args.seed, default=0, help="random seed (sample i depends only on seed and i)"
    )
    s.add_argument(
        "--start",
        type=cli_args.count,
        default=0,
        help="index of the first sample: write samples START.. into a new file to extend a run (sample i depends only on seed and i)",
    )
    s.add_argument("--two-hands", action="store_true", help="a right and a left hand in every sample")
    s.add_argument("--size", type=cli_args.image_side, default=512, help="square image size in pixels")
    s.add_argument("--hand-model", default="openhand", choices=("openhand", "mano"))
    s.add_argument("--mano-dir", default=None, help="folder holding the MANO files (with --hand-model mano)")
    s.add_argument(
        "--beta-std",
        type=cli_args.non_negative,
        default=1.0,
        help="standard deviation of the shape parameters",
    )
    s.add_argument("--out", required=True, help="output .jsonl file (or a folder: FOLDER/metadata.jsonl)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    s.set_defaults(func=_poses_sample)
    poses.set_defaults(func=lambda a: (poses.print_help(), 2)[1])
