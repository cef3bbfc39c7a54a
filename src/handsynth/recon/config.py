"""Training configuration: typed dataclasses, loadable from YAML, every field a command-line option.

``handsynth recon train --config run.yaml --lr 3e-4`` reads the file, then applies the flags given
explicitly; the resolved config is saved beside the checkpoints so a run can be resumed or audited.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handsynth import cli_args
from handsynth.config import load_config as load_typed_config
from handsynth.recon.data import Augment
from handsynth.recon.losses import LossWeights
from handsynth.recon.model import ModelConfig


@dataclass
class TrainConfig:
    data: list[str] = field(default_factory=list)  # PATH[:RATIO] record datasets
    out: str = "recon_run"
    steps: int = 20000
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup: int = 500  # linear warm-up steps, then cosine decay to 1% at ``steps``
    grad_clip: float = 1.0
    num_workers: int = 4
    image_cache_mb: float = 1024.0  # decoded photos kept in memory per data process (0: decode every draw)
    seed: int = 0
    save_every: int = 1000
    log_every: int = 50
    keep_last: int = 2  # checkpoints kept (the final one is always kept)
    augment: bool = True
    mixed_precision: str = "no"  # no | fp16 | bf16 (accelerate)
    log_with: str | None = None  # e.g. tensorboard (accelerate trackers)
    # Fine-tuning: a recon run (or checkpoint) whose weights the network starts from; same model settings.
    init: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    aug: Augment = field(default_factory=Augment)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


NESTED = {"model": ModelConfig, "loss": LossWeights, "aug": Augment}
# Flags whose meaning the field name and default do not tell.
HELP = {
    "init": "fine-tune: start from the weights of this recon run (its latest checkpoint) or checkpoint "
    "folder; the model settings must match it (fresh optimiser and schedule)",
    "image_cache_mb": "decoded photos kept in memory by each data-loading process, in MiB (0: decode the "
    "file at every draw); results do not depend on it",
}
PREFIX = {"model": "", "loss": "loss-", "aug": "aug-"}


def load_config(path: str | Path) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML file (the shared typed loader: unknown keys are an error)."""
    return load_typed_config(TrainConfig, path)


def _base_type(tp: Any) -> Any:
    if isinstance(tp, str):
        tp = eval(tp, {"list": list, "str": str, "int": int, "float": float, "bool": bool, "None": None})
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return args[0]
    return tp


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per config field (nested ones prefixed ``--loss-``/``--aug-``), default unset."""

    def add(cls: type, group: str | None) -> None:
        defaults = cls()
        for f in dataclasses.fields(cls):
            if group is None and f.name in NESTED:
                continue
            flag = "--" + (PREFIX[group] if group else "") + f.name.replace("_", "-")
            dest = f"cfg__{group}__{f.name}" if group else f"cfg____{f.name}"
            tp = _base_type(f.type)
            default = getattr(defaults, f.name)
            hint = (HELP[f.name] + " " if f.name in HELP and group is None else "") + f"(default: {default})"
            if tp is bool:
                parser.add_argument(
                    flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=hint
                )
            elif typing.get_origin(tp) is list:
                parser.add_argument(
                    flag,
                    dest=dest,
                    action="append",
                    default=None,
                    metavar="PATH[:RATIO]",
                    help="record dataset and its sampling ratio; repeat to mix datasets",
                )
            else:
                checked = {int: cli_args.int_in(), float: cli_args.finite}.get(tp, tp)
                metavar = "RUN" if f.name == "init" and group is None else f.name.upper()
                parser.add_argument(flag, dest=dest, type=checked, default=None, metavar=metavar, help=hint)

    add(TrainConfig, None)
    for group, cls in NESTED.items():
        add(cls, group)


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """``base`` (or defaults) overridden by every config flag given on the command line."""
    cfg = base or TrainConfig()
    for key, value in vars(args).items():
        if not key.startswith("cfg__") or value is None:
            continue
        _, group, name = key.split("__")
        setattr(getattr(cfg, group) if group else cfg, name, value)
    return cfg
