"""``handsynth render``: poses (records) -> a dataset folder of condition maps + a contact sheet."""

from __future__ import annotations

import argparse

from handsynth import cli_args
from handsynth.errors import UserError
from handsynth.render.maps import MAP_NAMES, RECORD_MAPS


def parse_maps(text: str) -> tuple[str, ...]:
    maps = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in maps if m not in RECORD_MAPS]
    if unknown or not maps:
        raise UserError(f"--maps {text!r}: unknown map(s) {unknown}; choose from {','.join(RECORD_MAPS)}")
    return maps


def _run(args: argparse.Namespace) -> int:
    from handsynth.render.dataset import render_dataset  # here: ``--help`` must not pay for torch

    maps = parse_maps(args.maps)
    if args.hand_model == "mano" and not args.mano_dir:
        raise UserError(
            "--hand-model mano needs --mano-dir PATH (the folder holding MANO_RIGHT.pkl / MANO_LEFT.pkl)"
        )
    sheet = render_dataset(
        args.inp,
        args.out,
        maps,
        size=args.size,
        hand_model=args.hand_model,
        mano_dir=args.mano_dir,
        local=not args.no_local,
        expand=args.expand,
        objects=not args.no_objects,
        overwrite=args.overwrite,
    )
    print(f"wrote {args.out} (contact sheet: {sheet})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render condition maps for poses into a dataset folder")
    p.add_argument("--in", dest="inp", required=True, help="poses.jsonl or a dataset folder")
    p.add_argument("--out", required=True, help="output dataset folder (resumed if it exists)")
    p.add_argument(
        "--overwrite", action="store_true", help="restart an output folder written with other settings"
    )
    p.add_argument(
        "--size",
        type=cli_args.image_side,
        default=None,
        help="square output size (default: each record's own); non-square records are stretched to it, "
        "labels and K with them (a note says how many)",
    )
    p.add_argument(
        "--maps",
        default=",".join(MAP_NAMES),
        help=f"comma list of {','.join(RECORD_MAPS)} (default: all but body)",
    )
    p.add_argument(
        "--hand-model", choices=["openhand", "mano"], default=None, help="default: each record's own"
    )
    p.add_argument("--mano-dir", default=None, help="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl")
    p.add_argument(
        "--expand", type=cli_args.positive, default=1.25, help="local crop: hand box expansion factor"
    )
    p.add_argument("--no-local", action="store_true", help="skip the local (hand crop) maps")
    p.add_argument(
        "--no-objects", action="store_true", help="draw hands only, ignoring the records' 'objects'"
    )
    p.set_defaults(func=_run)
