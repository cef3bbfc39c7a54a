"""``handsynth recon train|predict|eval``: the downstream reconstruction model's commands."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from handsynth import cli_args
from handsynth.cli_common import add_deprecated_alias
from handsynth.runtime import add_threads_argument, torch_device


def _device(name: str | None) -> str:
    """``--device`` (None: cuda when available); a GPU this machine lacks is one sentence."""
    return torch_device(name)


def _threads(args: argparse.Namespace) -> None:
    """``--threads``: a number is applied; auto keeps torch's choice (the recon model is not tiny)."""
    from handsynth.runtime import configure_threads

    configure_threads(args.threads, _device(getattr(args, "device", None)))


def _cmd_train(args: argparse.Namespace) -> int:
    from handsynth.recon.config import config_from_args, load_config
    from handsynth.recon.train import train

    _threads(args)
    cfg = config_from_args(args, load_config(args.config) if args.config else None)
    summary = train(cfg, overwrite=args.overwrite)
    if int(os.environ.get("RANK", "0")) != 0:  # under `accelerate launch`, one summary line
        return 0
    print(json.dumps({"step": summary["step"], "checkpoint": summary["checkpoint"], **summary["last"]}))
    return 0


def _check_inputs(args: argparse.Namespace) -> None:
    from handsynth.data.folder import metadata_path
    from handsynth.errors import UserError
    from handsynth.recon.checkpoint import resolve_checkpoint

    resolve_checkpoint(args.checkpoint)
    if not metadata_path(args.data).exists():
        raise UserError(f"--in {args.data}: no metadata.jsonl there; pass a handsynth dataset folder")


def _cmd_predict(args: argparse.Namespace) -> int:
    from handsynth.errors import UserError
    from handsynth.recon.predict import ReconEstimator, predict_dataset, write_freihand_pred

    _threads(args)
    _check_inputs(args)
    if Path(args.out).is_dir():
        raise UserError(f"--out {args.out} is a folder; pass a file name such as pred.json")
    est = ReconEstimator.from_checkpoint(
        args.checkpoint, device=_device(args.device), batch_size=args.batch_size
    )
    keys, pred = predict_dataset(est, args.data)
    write_freihand_pred(args.out, pred["joints"], pred["verts"])
    print(f"wrote {len(keys)} hands to {args.out}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from handsynth.recon.evaluate import evaluate_checkpoint
    from handsynth.recon.predict import ReconEstimator

    _threads(args)
    _check_inputs(args)
    est = ReconEstimator.from_checkpoint(
        args.checkpoint, device=_device(args.device), batch_size=args.batch_size
    )
    import sys

    command = "handsynth " + " ".join(sys.argv[1:])
    metrics = evaluate_checkpoint(est, args.data, args.out, command=command)
    print(json.dumps(metrics["summary"], indent=2))
    return 0


def _cmd_toy(args: argparse.Namespace) -> int:
    from handsynth.recon.model import ModelConfig, load_hand_model_for
    from handsynth.recon.toy import make_toy_dataset

    cfg = ModelConfig(hand_model=args.hand_model, hand_model_path=args.mano_dir)
    folder = make_toy_dataset(
        args.out, args.n, load_hand_model_for(cfg), args.hand_model, args.seed, args.size, progress=True
    )
    print(f"wrote {args.n} toy samples to {folder}")
    return 0


def _cmd_filter(args: argparse.Namespace) -> int:
    import sys

    from handsynth.data.folder import metadata_path, refuse_input_as_output
    from handsynth.data.provenance import tree_sha256
    from handsynth.errors import UserError
    from handsynth.recon import edge_filter as ef
    from handsynth.recon.checkpoint import resolve_checkpoint
    from handsynth.recon.predict import ReconEstimator

    _threads(args)
    preset = ef.parse_preset(args.preset) if args.preset else None
    explicit = {m: getattr(args, f"max_{m}") for m in ef.METRICS}
    if args.thresholds and (preset is not None or args.reference):
        raise UserError(
            f"--thresholds {args.thresholds} replaces --preset and --reference: pass one or the other"
        )
    given = ef.load_thresholds(args.thresholds) if args.thresholds else None
    if given is None and preset is None and all(v is None for v in explicit.values()):
        ef.resolve_thresholds(None, explicit)  # the error naming the flags
    if isinstance(preset, float) and not args.reference:
        ef.resolve_thresholds(preset, explicit)  # the error asking for --reference
    for flag, path in (("--in", args.data), ("--reference", args.reference)):
        if path and not metadata_path(path).exists():
            raise UserError(f"{flag} {path}: no metadata.jsonl there; pass a handsynth dataset folder")
    refuse_input_as_output(args.out, args.data, "kept records")
    checkpoint = resolve_checkpoint(args.estimator)
    est = ReconEstimator.from_checkpoint(checkpoint, device=_device(args.device), batch_size=args.batch_size)
    reference = ef.score_hands(est, args.reference) if isinstance(preset, float) else None
    thresholds, source = ef.resolve_thresholds(preset, explicit, reference, given)
    if not args.overwrite:  # a resumed run: the thresholds it started with, not their float noise
        thresholds = ef.resumed_thresholds(args.out, thresholds)
    scores = ef.score_hands(est, args.data)
    config = {
        "stage": "filter",
        "data": str(Path(args.data).resolve()),
        "estimator_sha256": tree_sha256(checkpoint),
        "thresholds_mm": thresholds,
    }
    report = ef.filter_dataset(
        est,
        args.data,
        args.out,
        thresholds,
        source,
        config,
        scores=scores,
        overwrite=args.overwrite,
        command="handsynth " + " ".join(sys.argv[1:]),
    )
    s = report["summary"]
    print(
        f"kept {s['kept']} of {s['records']} records ({100 * s['pass_rate']:.1f} %) in {args.out}; "
        f"report: {Path(args.out) / 'filter_report.md'} ({s['images_per_second']:.1f} images/s)"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from handsynth.recon.config import add_config_arguments

    recon = subparsers.add_parser("recon", help="train / predict / evaluate the 3D hand reconstruction model")
    sub = recon.add_subparsers(dest="recon_command", metavar="ACTION", required=True)

    t = sub.add_parser(
        "train",
        help="train on record datasets mixed by ratio",
        description="Train the reconstruction model; every config field is a flag (see --config for YAML). "
        "A --out folder with checkpoints is resumed.",
    )
    t.add_argument("--config", help="YAML file of TrainConfig fields (flags override it)")
    t.add_argument("--overwrite", action="store_true", help="discard checkpoints in --out and start again")
    add_config_arguments(t)
    add_deprecated_alias(t, "--hand-model-path", "--mano-dir")
    add_deprecated_alias(t, "--data", "--in")
    add_threads_argument(t)
    t.set_defaults(func=_cmd_train)

    for name, func, helptext, out_help in [
        ("predict", _cmd_predict, "write FreiHAND-layout pred.json for a dataset", "output pred.json"),
        ("eval", _cmd_eval, "predict a dataset and write metrics.json / report.md", "output folder"),
    ]:
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--checkpoint", required=True, help="checkpoint folder or training run folder")
        p.add_argument("--in", dest="data", required=True, help="dataset folder (metadata.jsonl + images)")
        add_deprecated_alias(p, "--data", "--in")
        add_threads_argument(p)
        p.add_argument("--out", required=True, help=out_help)
        p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
        p.add_argument("--batch-size", type=cli_args.positive_int, default=32)
        p.set_defaults(func=func)

    toy = sub.add_parser(
        "toy-data",
        help="write a synthetic skeleton-image dataset to smoke-test train/predict/eval",
        description="Random hands of the chosen hand model, drawn as coloured 2D skeletons, with exact labels.",
    )
    toy.add_argument("--out", required=True, help="dataset folder to write (resumed if it exists)")
    toy.add_argument("--n", type=cli_args.positive_int, default=200, help="number of samples")
    toy.add_argument("--size", type=cli_args.image_side, default=96, help="image side in pixels")
    toy.add_argument("--seed", type=cli_args.seed, default=0)
    toy.add_argument("--hand-model", default="openhand", help="openhand | mano")
    toy.add_argument("--mano-dir", default=None, help="MANO folder for --hand-model mano")
    add_deprecated_alias(toy, "--hand-model-path", "--mano-dir")
    toy.set_defaults(func=_cmd_toy)

    f = subparsers.add_parser(
        "filter",
        help="HandBooster's edge-case filter: keep generated records a reconstruction model agrees with",
        description="Score every hand with a `handsynth recon` model trained on the real set; a record is "
        "rejected when any hand's root-relative MPJPE/MPVPE or PA-MPJPE/PA-MPVPE (mm) exceeds its "
        "threshold. Writes the kept records (images linked) and filter_report.md/json to --out.",
    )
    f.add_argument("--in", dest="data", required=True, help="generated dataset folder to filter")
    add_deprecated_alias(f, "--data", "--in")  # the spelling; --in is the project's
    f.add_argument("--estimator", required=True, help="recon checkpoint or training run folder")
    f.add_argument("--out", required=True, help="output dataset folder of the kept records")
    f.add_argument(
        "--preset",
        default=None,
        help="dexycb (25/25/10/10 mm) | ho3d (50/50/20/20) | percentile:Q (Q-th percentile of the "
        "estimator's errors on --reference)",
    )
    for m in ("mpjpe", "mpvpe", "pa_mpjpe", "pa_mpvpe"):
        f.add_argument(
            f"--max-{m.replace('_', '-')}",
            dest=f"max_{m}",
            type=cli_args.non_negative,
            default=None,
            help=f"threshold on {m.upper().replace('_', '-')} in mm (overrides the preset's)",
        )
    f.add_argument("--reference", default=None, help="real dataset folder for --preset percentile:Q")
    f.add_argument(
        "--thresholds",
        default=None,
        metavar="FILE",
        help="reuse the thresholds of an earlier filter_report.json (instead of --preset/--reference: the "
        "reference is scored once for many sets); --max-* still override",
    )
    f.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    f.add_argument("--batch-size", type=cli_args.positive_int, default=32)
    f.add_argument(
        "--overwrite", action="store_true", help="restart an --out folder written with other settings"
    )
    add_threads_argument(f)
    f.set_defaults(func=_cmd_filter)
