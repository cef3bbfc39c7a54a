"""``handsynth generate``: poses or a rendered dataset -> a labelled image dataset, with any method.

Runs on one process, or on several under ``accelerate launch`` (samples split by index, no overlap,
no gap); rerunning the same command resumes a killed run.
"""

from __future__ import annotations

import argparse
import logging

from handsynth import cli_args
from handsynth.generate.inputs import PROMPT_SOURCES
from handsynth.methods.interface import DTYPES, SCHEDULERS
from handsynth.methods.registry import METHOD_NAMES, METHODS, add_generate_options, build_generator
from handsynth.runtime import add_threads_argument

log = logging.getLogger(__name__)


def _run(args: argparse.Namespace) -> int:
    # here, not at the top: ``handsynth generate --help`` must not pay for torch
    from handsynth.diffusion.embedded import DEFAULT_NAME, default_model
    from handsynth.generate.job import Dist, JobConfig, run_job

    method = build_generator(args)  # an unknown method or bad option fails here, before anything else
    method.variant = args.variant
    if args.base_config:  # else a training run's own, when the method read one
        method.base_config = args.base_config
    if getattr(args, "checkpoint", None) == DEFAULT_NAME and args.size is None:
        # the embedded model draws 64x64 images: at a record's own 512 px it is 100x slower and draws noise
        args.size = int(default_model().info.get("size", 64))
        log.info("--checkpoint default is a %d px model: generating at --size %d", args.size, args.size)
    job = JobConfig(
        inp=args.inp,
        out=args.out,
        prompts_per_pose=args.prompts_per_pose,
        prompts=args.prompts,
        prompt_file=args.prompt_file,
        seed=args.seed,
        batch_size=args.batch_size,
        size=args.size,
        limit=args.limit,
        shards=args.shards,
        sheet_rows=args.sheet_rows,
        overwrite=args.overwrite,
        hand_model=args.hand_model,
        mano_dir=args.mano_dir,
        threads=args.threads,
    )
    dist = Dist.from_accelerate(cpu=args.cpu)
    result = run_job(method, job, dist)
    if dist.world_size > 1:
        print(f"process {dist.rank}/{dist.world_size}: generated {result.generated} images", flush=True)
    if dist.rank == 0:
        print(
            f"wrote {result.out}: {result.total} of {result.planned} planned images "
            f"({result.generated} new on this process)"
            + (f"; contact sheet {result.sheet}" if result.sheet else "")
            + (f"; {len(result.shards)} shards" if result.shards else "")
        )
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("method")
    g.add_argument("--method", required=True, help=f"one of {', '.join(METHOD_NAMES)}")
    g.add_argument(
        "--checkpoint",
        help="; ".join(f"{spec.name}: {spec.checkpoint}" for spec in METHODS.values()),
    )
    g.add_argument(
        "--base-model",
        default=None,
        help="tiny, a diffusers SD-1.x folder, a single-file checkpoint or a hub id (a training run folder: default from it; "
        "others: stable-diffusion-v1-5/stable-diffusion-v1-5)",
    )
    g.add_argument(
        "--base-config",
        default=None,
        help="for a single-file --base-model (.safetensors/.ckpt): a diffusers SD folder (configs suffice) "
        "or the original SD .yaml (default: a .yaml of the same name beside the file)",
    )
    g.add_argument("--condition", default=None, help="condition map the control module reads (default mesh)")
    g.add_argument("--conditioning-scale", type=cli_args.non_negative, default=1.0)
    add_generate_options(g)  # each method's own flags

    s = p.add_argument_group("sampling")
    s.add_argument("--scheduler", default="ddim", choices=SCHEDULERS)
    s.add_argument(
        "--steps",
        type=cli_args.positive_int,
        default=None,
        help="denoising steps (default 20; the method's own)",
    )
    s.add_argument(
        "--guidance",
        type=cli_args.non_negative,
        default=None,
        help="classifier-free guidance scale (default 9; the method's own)",
    )
    s.add_argument("--negative-prompt", default="")
    s.add_argument(
        "--eta",
        type=cli_args.float_in(0.0, 1.0, what="a DDIM eta"),
        default=None,
        help="DDIM eta (default 0; the method's own)",
    )
    s.add_argument("--dtype", default="fp32", choices=tuple(DTYPES), help="fp16/bf16: GPU")
    s.add_argument(
        "--variant",
        default=None,
        help="diffusers weight variant to load, e.g. fp16 (*.fp16.safetensors); found by itself for "
        "folders that hold only one variant",
    )
    s.add_argument(
        "--seed", type=cli_args.seed, default=0, help="global seed; each image's seed derives from it"
    )
    s.add_argument("--batch-size", type=cli_args.positive_int, default=1)
    s.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    add_threads_argument(s)

    d = p.add_argument_group("data")
    d.add_argument("--in", dest="inp", required=True, help="poses (.jsonl) or a dataset folder with maps")
    d.add_argument("--out", required=True, help="output dataset folder (resumed when it exists)")
    d.add_argument(
        "--size",
        type=cli_args.image_side,
        default=None,
        help="square output size (default: each record's; the embedded default model's 64 with --checkpoint default)",
    )
    d.add_argument("--prompts", default="auto", choices=PROMPT_SOURCES, help="where prompts come from")
    d.add_argument("--prompt-file", default=None, help="one prompt per line (line j mod n for image j)")
    d.add_argument("--prompts-per-pose", type=cli_args.positive_int, default=1, help="K images per pose")
    d.add_argument(
        "--limit", type=cli_args.positive_int, default=None, help="only the first N images of the plan"
    )
    d.add_argument(
        "--shards",
        type=cli_args.positive_int,
        default=None,
        metavar="N",
        help="also write WebDataset shards of N",
    )
    d.add_argument(
        "--sheet-rows", type=cli_args.count, default=8, help="samples on the contact / attention sheets"
    )
    d.add_argument("--overwrite", action="store_true", help="start the --out folder again")
    d.add_argument("--hand-model", choices=["openhand", "mano"], default=None, help="for bare poses")
    d.add_argument("--mano-dir", default=None, help="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "generate", help=f"generate a labelled hand image dataset ({', '.join(METHOD_NAMES)})"
    )
    add_arguments(p)
    p.set_defaults(func=_run)


def main(argv: list[str] | None = None) -> int:
    """``python -m handsynth.generate.cli ...`` (what ``accelerate launch -m`` runs): the same command
    as ``handsynth generate``, usable before the top-level CLI lists it."""
    import logging
    import sys

    from handsynth.cli_common import CommandParser
    from handsynth.errors import UserError

    parser = CommandParser(prog="handsynth generate", description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.set_defaults(func=_run)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"handsynth: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
