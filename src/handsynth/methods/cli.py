"""``handsynth train``: train a method's guidance module on a record dataset folder.

    handsynth train --method attentionhand --config configs/attentionhand_tiny.yaml \\
        --data DATASET --out RUN [--base-model PATH] [--set tas.iterations=3 ...] [--resume auto|PATH|never]

Runs in one process; ``accelerate launch --num_processes N -m handsynth.cli train ...`` (or
``accelerate launch $(which handsynth) train ...``) runs it on several GPUs or nodes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from handsynth import cli_args
from handsynth.config import CONFIG_NAME, save_config, to_dict
from handsynth.data.settings import refuse_other_settings
from handsynth.errors import UserError
from handsynth.methods.registry import build_training, trainable


def _check_run_folder(out: Path, cfg, resume: str) -> None:
    """A run folder is only continued with the same settings (the step budget may grow)."""
    saved = out / CONFIG_NAME
    if not saved.exists() or resume == "never":
        return
    old = yaml.safe_load(saved.read_text()) or {}
    how = "use a new --out folder or --resume never to start over there"
    refuse_other_settings(out, old, to_dict(cfg), how, ignore=("train.max_steps",))


def cmd_train(args: argparse.Namespace) -> int:
    from handsynth.diffusion.training import run_training  # a command module: `--help` skips the loop

    cfg, task = build_training(args.method, args.config, args.data, args.set or [], args.base_model)
    if args.max_steps is not None:
        cfg.train.max_steps = args.max_steps
    out = Path(args.out)
    _check_run_folder(out, cfg, args.resume)
    resume = None if args.resume == "never" else args.resume
    if args.resume == "never" and (out / "checkpoints").exists():
        raise UserError(
            f"{out} already holds checkpoints; pass a new --out folder or --resume auto to continue"
        )
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / CONFIG_NAME)
    summary = run_training(task, cfg.train, out, resume=resume)
    if summary["is_main_process"]:
        weights = out / getattr(task, "weights_dir", "controlnet")
        print(f"trained {summary['step']} steps; guidance module saved in {weights}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train a method's guidance module (AttentionHand, Uni-ControlNet) on a dataset folder"
    )
    p.add_argument("--method", default="attentionhand", choices=sorted(trainable()))
    p.add_argument(
        "--config", help="YAML config (e.g. configs/attentionhand_sd15.yaml); defaults when omitted"
    )
    p.add_argument("--data", required=True, help="dataset folder holding metadata.jsonl (or a .jsonl file)")
    p.add_argument("--out", required=True, help="run folder: weights, checkpoints, logs, validation images")
    p.add_argument(
        "--base-model", help="'tiny', a local diffusers SD folder, or a hub id (overrides the config)"
    )
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a config field, e.g. tas.iterations=3"
    )
    p.add_argument("--max-steps", type=cli_args.positive_int, help="shortcut for --set train.max_steps=N")
    p.add_argument(
        "--resume",
        default="auto",
        help="'auto' (latest checkpoint of --out, if any), a checkpoint folder, or 'never'",
    )
    p.set_defaults(func=cmd_train)
