"""Training configuration: typed dataclasses, loadable from YAML, every field a command-line option.

``handsynth recon train --config run.yaml --lr 3e-4`` reads the file, then applies the flags given
explicitly; the resolved config is saved beside the checkpoints so a run can be resumed or audited.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from handsynth import cli_args
from handsynth.errors import UserError
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
    seed: int = 0
    save_every: int = 1000
    log_every: int = 50
    keep_last: int = 2  # checkpoints kept (the final one is always kept)
    augment: bool = True
    mixed_precision: str = "no"  # no | fp16 | bf16 (accelerate)
    log_with: str | None = None  # e.g. tensorboard (accelerate trackers)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    aug: Augment = field(default_factory=Augment)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config") -> TrainConfig:
        return _build(cls, d, where)


NESTED = {"model": ModelConfig, "loss": LossWeights, "aug": Augment}
PREFIX = {"model": "", "loss": "loss-", "aug": "aug-"}


def _build(cls: type, d: dict[str, Any], where: str) -> Any:
    if not isinstance(d, dict):
        raise UserError(f"{where}: must be a mapping of field names to values")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise UserError(f"{where}: unknown field(s) {unknown}; known fields are {sorted(names)}")
    kwargs = {}
    for k, v in d.items():
        sub = NESTED.get(k) if cls is TrainConfig else None
        if isinstance(v, float) and not math.isfinite(v):  # YAML's .nan / .inf: refused like the flags
            raise UserError(f"{where}.{k}: must be a finite number, got {v}")
        kwargs[k] = _build(sub, v, f"{where}.{k}") if sub is not None else v
    return cls(**kwargs)


def load_config(path: str | Path) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML file (unknown keys are an error)."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"config file {p} does not exist")
    return TrainConfig.from_dict(yaml.safe_load(p.read_text()) or {}, str(p))


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
            hint = f"(default: {default})"
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
                parser.add_argument(
                    flag, dest=dest, type=checked, default=None, metavar=f.name.upper(), help=hint
                )

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
