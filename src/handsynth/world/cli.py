"""``handsynth world render``: a dataset folder of procedural lab or wild hand photographs."""

from __future__ import annotations

import argparse

from handsynth import cli_args
from handsynth.errors import UserError
from handsynth.render.maps import check_maps
from handsynth.world.captions import CAPTION_STYLES
from handsynth.world.config import ARM_MODELS, DOMAINS, WorldConfig
from handsynth.world.skin import PALM_CONTRASTS

DEFAULT_MAPS = "mesh,seg"


def config_from_args(args: argparse.Namespace) -> WorldConfig:
    """Validate the command line into a :class:`WorldConfig` (before anything is written)."""
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
        caption_style=args.caption_style,
        sequence_length=args.sequence_length,
        subjects=args.subjects,
        backgrounds=args.backgrounds,
        local_crop=args.local_crop,
        arm_model=args.arm_model,
        palm_contrast=args.palm_contrast,
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
    from handsynth.world.dataset import render_world  # here: ``--help`` must not pay for torch

    config = config_from_args(args)
    if config.poses:
        from handsynth.data import read_dataset

        have = sum(1 for s in read_dataset(config.poses) if s.hands)
        if have < args.start + args.n:
            raise UserError(f"--poses {config.poses} has {have} records with a hand; --n {args.n} needs more")
    sheet = render_world(
        config, args.n, args.out, start=args.start, workers=args.workers, overwrite=args.overwrite
    )
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
        "--domain",
        choices=DOMAINS,
        required=True,
        help="lab: studio, hand large; wild: clutter, hand small; holab / howild: an object always in the "
        "hand and in the record (DexYCB-like lab, MOW-like wild)",
    )
    p.add_argument("--n", type=cli_args.positive_int, required=True, help="number of images")
    p.add_argument("--out", required=True, help="output dataset folder (resumed if it exists)")
    p.add_argument(
        "--overwrite", action="store_true", help="restart an output folder written with other settings"
    )
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
        help="chance of an object in the hand (default lab 0, wild 0.6; holab/howild always 1)",
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
        "(real photos of the same poses in another domain; holab/howild: and its first object)",
    )
    p.add_argument(
        "--caption-style",
        choices=CAPTION_STYLES,
        default="short",
        help="verbose: also write a VLM-like multi-sentence `caption` with environment detail "
        "(lighting, background, framing); `prompt` stays the short caption",
    )
    p.add_argument(
        "--sequence-length",
        type=cli_args.positive_int,
        default=1,
        help="holab/howild: L frames per sequence (first half: the object rests on a table while the hand "
        "comes; then it is lifted; records carry sequence {id, frame} and the true grasping flag)",
    )
    p.add_argument(
        "--subjects",
        choices=("all", "train", "test"),
        default="all",
        help="holab: all 10 subjects (skin tone + hand shape), the 8 seen ones (train) or the 2 held out "
        "(test: an S1-like unseen-subject split)",
    )
    p.add_argument(
        "--backgrounds",
        type=cli_args.count,
        default=0,
        help="K > 0: each image uses one of K fixed backgrounds, the same K for every seed and split "
        "(a world a small model can learn); 0: a new background per image",
    )
    p.add_argument(
        "--local-crop",
        choices=("inside", "centred"),
        default="inside",
        help="the local hand crop slides inside the photo where it fits (default), or stays centred "
        "on the hand with black padding past the photo's edge (worlds rendered before 2026-11-29)",
    )
    p.add_argument(
        "--arm-model",
        choices=ARM_MODELS,
        default=WorldConfig.arm_model,
        help="any roll of the hand about the forearm (default); or, in wild, the elbow leans out to the "
        "hand's side and the palm turns only as far as a forearm can",
    )
    p.add_argument(
        "--palm-contrast",
        choices=PALM_CONTRASTS,
        default=WorldConfig.palm_contrast,
        help="palms a little lighter than backs (default), or clearly lighter and pinker with darker "
        "backs (a cue to the hand's side; it did not make side readable at 64 px, docs/micro.md)",
    )
    p.set_defaults(func=_run)
