"""``handsynth train``: train a method's guidance module on a record dataset folder.

    handsynth train --method attentionhand --config configs/attentionhand_tiny.yaml \\
        --in DATASET --out RUN [--base-model PATH] [--set tas.iterations=3 ...] [--resume auto|PATH|never]

Runs in one process; ``accelerate launch --num_processes N -m handsynth.cli train ...`` (or
``accelerate launch $(which handsynth) train ...``) runs it on several GPUs or nodes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from handsynth import cli_args
from handsynth.cli_common import add_deprecated_alias
from handsynth.config import CONFIG_NAME, save_config, to_dict
from handsynth.data.folder import refuse_dataset_as_output
from handsynth.data.settings import refuse_other_settings
from handsynth.errors import UserError
from handsynth.methods.registry import build_training, trainable
from handsynth.runtime import add_threads_argument

# Settings a resumed run may change: the step budget and bookkeeping that does not touch the weights
# (how often it logs, validates and checkpoints, how much data it keeps in memory; a budget raised 10x
# scales those with it).
RESUMABLE_CHANGES = {
    "train.max_steps",
    "train.tracker",
    "train.log_every",
    "train.validate_every",
    "train.checkpoint_every",
    "train.checkpoint_every_minutes",
    "train.checkpoints_total_limit",
    "data.cache_mb",
    "validation",  # only the sheets drawn while training: not the model
}


def _check_run_folder(out: Path, cfg, resume: str) -> None:
    """A run folder is only continued with the same settings (the step budget may grow)."""
    from handsynth.diffusion.base import base_from_run  # here: ``--help`` must not pay for torch

    saved = out / CONFIG_NAME
    if not saved.exists() or resume == "never":
        return
    old, new = yaml.safe_load(saved.read_text()) or {}, to_dict(cfg)
    # The base may be stored relative to the run folder (now) or to the old working directory
    # (runs written before): the same folder either way is the same setting.
    for d in (old, new):
        model = d.get("model")
        for key in ("base_model", "base_config"):
            if isinstance(model, dict) and isinstance(model.get(key), str):
                model[key] = base_from_run(model[key], out)
    how = "use a new --out folder or --resume never to start over there"
    refuse_other_settings(out, old, new, how, ignore=RESUMABLE_CHANGES)


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from handsynth.diffusion.training import run_training  # a command module: `--help` skips the loop
    from handsynth.methods.attentionhand.training import config_for_run_folder
    from handsynth.runtime import configure_threads, small_base

    cfg, task = build_training(
        args.method, args.config, args.data, args.set or [], args.base_model, args.base_config
    )
    on_gpu = torch.cuda.is_available() or torch.backends.mps.is_available()
    base = getattr(cfg.model, "base_model", None)  # None: a method without a pretrained base
    configure_threads(args.threads, "cuda" if on_gpu else "cpu", small_base([base]) if base else False)
    if args.max_steps is not None:
        cfg.train.max_steps = args.max_steps
    out = Path(args.out)
    refuse_dataset_as_output(out, "training run")
    stored = config_for_run_folder(cfg, out) if base else cfg  # a local base relative to the run folder
    _check_run_folder(out, stored, args.resume)
    resume = None if args.resume == "never" else args.resume
    if args.resume == "never" and (out / "checkpoints").exists():
        raise UserError(
            f"{out} already holds checkpoints; pass a new --out folder or --resume auto to continue"
        )
    out.mkdir(parents=True, exist_ok=True)
    save_config(stored, out / CONFIG_NAME)
    summary = run_training(task, cfg.train, out, resume=resume)
    if summary["is_main_process"]:
        weights = out / getattr(task, "weights_dir", "controlnet")
        print(f"trained {summary['step']} steps; weights saved in {weights}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train a method's guidance module (AttentionHand, Uni-ControlNet) on a dataset folder"
    )
    p.add_argument("--method", default="attentionhand", choices=sorted(trainable()))
    p.add_argument(
        "--config",
        help="YAML config (e.g. configs/attentionhand_sd15.yaml; configs/*_tiny.yaml for a CPU in minutes); "
        "omitted: the method's config defaults (AttentionHand: the tiny base at 512 px, slow on a CPU)",
    )
    p.add_argument(
        "--in", dest="data", required=True, help="dataset folder holding metadata.jsonl (or a .jsonl file)"
    )
    add_deprecated_alias(p, "--data", "--in")
    p.add_argument("--out", required=True, help="run folder: weights, checkpoints, logs, validation images")
    p.add_argument(
        "--base-model",
        help="'tiny', a local diffusers SD folder, a single-file checkpoint (.safetensors/.ckpt), or a hub id "
        "(overrides the config)",
    )
    p.add_argument(
        "--base-config",
        help="for a single-file --base-model: a diffusers SD folder (configs suffice) or the original SD .yaml",
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
    add_threads_argument(p)
    p.set_defaults(func=cmd_train)
