"""``handsynth prepare``: a public hand dataset, as its authors ship it, into a record dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from handsynth import cli_args
from handsynth.errors import UserError


def _prepare(args: argparse.Namespace) -> int:
    from handsynth.importers import PrepareOptions, prepare

    root = Path(args.root)
    if not root.is_dir():
        raise UserError(f"--root {root} is not a folder: pass the folder the dataset was unpacked into")
    versions = tuple(v.strip() for v in args.versions.split(",") if v.strip())
    maps = None
    if args.render:
        from handsynth.render.cli import parse_maps

        maps = parse_maps(args.render)
    opts = PrepareOptions(
        root=root,
        out=Path(args.out),
        split=args.split,
        setup=args.setup,
        limit=args.limit,
        every=args.every,
        link=args.link,
        mano_dir=Path(args.mano_dir) if args.mano_dir else None,
        objects=Path(args.objects) if args.objects else None,
        strict=args.strict,
        versions=versions,
        subset=args.subset,
        min_hand_size=args.min_hand_size,
        fits=Path(args.fits) if args.fits else None,
        overwrite=args.overwrite,
    )
    summary = prepare(args.dataset, opts)
    for line in summary.lines():
        print(line)
    if maps:
        from handsynth.render.dataset import render_dataset

        render_dir = opts.out / "render"
        sheet = render_dataset(opts.out, render_dir, maps, mano_dir=opts.mano_dir)
        images = render_dir / "images"
        if not images.exists():  # the rendered records keep file_name "images/...": share the links
            images.symlink_to(Path("..") / "images", target_is_directory=True)
        print(f"rendered {','.join(maps)} into {render_dir} (contact sheet {sheet})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from handsynth.importers import IMPORTERS

    p = sub.add_parser(
        "prepare",
        help="import a public hand dataset (InterHand2.6M, FreiHAND, HO3D, DexYCB, ...) as records",
        description="Write a record dataset (docs/format.md) from a dataset as its authors ship it; "
        "layouts and conventions per dataset in docs/datasets.md. Resumable: rerun to continue.",
    )
    p.add_argument("--dataset", required=True, choices=list(IMPORTERS), help="which dataset --root holds")
    p.add_argument("--root", required=True, help="the dataset's folder as unpacked")
    p.add_argument("--out", required=True, help="output dataset folder (resumed when it exists)")
    p.add_argument("--split", default=None, help="dataset split (default: the dataset's training split)")
    p.add_argument(
        "--setup",
        default="s0",
        help="DexYCB split setup: s0 (seen), s1 (unseen subjects), s2 (unseen cameras), s3 (unseen grasps)",
    )
    p.add_argument(
        "--limit",
        type=cli_args.positive_int,
        default=None,
        help="import at most this many frames (default: all)",
    )
    p.add_argument(
        "--every", type=cli_args.positive_int, default=1, help="keep every K-th frame (default: 1)"
    )
    p.add_argument(
        "--link",
        default="symlink",
        choices=("symlink", "hardlink", "copy"),
        help="how images are placed (default: symlink)",
    )
    p.add_argument("--mano-dir", default=None, help="folder holding MANO_RIGHT/LEFT (.pkl or .npz)")
    p.add_argument(
        "--objects", default=None, help="DexYCB/HO3D: folder of YCB models (NAME/textured_simple.obj)"
    )
    p.add_argument(
        "--subset",
        default="all",
        choices=("all", "H", "M"),
        help="InterHand2.6M annotations: all (default), H (human), M (machine)",
    )
    p.add_argument(
        "--versions", default="gs", help="FreiHAND training versions: any of gs,hom,sample,auto (default: gs)"
    )
    p.add_argument(
        "--min-hand-size",
        type=cli_args.non_negative,
        default=32.0,
        help="COCO-WholeBody: drop hands whose box is smaller (px, default: 32)",
    )
    p.add_argument(
        "--fits",
        default=None,
        help="COCO-WholeBody: JSON of MANO fits per annotation id; fitted hands become full 3D hands "
        "(format in docs/datasets.md; needs --mano-dir)",
    )
    p.add_argument(
        "--strict", action="store_true", help="a hand failing the MANO consistency check is an error"
    )
    p.add_argument(
        "--render", default=None, help="render these maps (e.g. mesh,normal) into OUT/render after"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="restart an --out folder written with other settings"
    )
    p.set_defaults(func=_prepare)
