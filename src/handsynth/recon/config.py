"""Training configuration: typed dataclasses, loadable from YAML, every field a command-line option.

``handsynth recon train --config run.yaml --lr 3e-4`` reads the file, then applies the flags given
explicitly; the resolved config is saved beside the checkpoints so a run can be resumed or audited.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import types
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from handsynth import cli_args
from handsynth.config import load_config as load_typed_config
from handsynth.errors import UserError
from handsynth.hand.kinds import HAND_MODEL_KINDS

# The settings of the model, its crops and its loss live here, apart from the torch code that uses
# them, so reading them (``handsynth --help``, a run's config) does not import torch.
LAYOUTS: dict[str, tuple[int, int, int, int]] = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
# Input pixels per feature of the last stage (stem conv, max-pool and three strided stages, each /2):
# the smallest useful input side; a smaller one leaves the last stages a 1x1 map to "downsample".
TOTAL_STRIDE = 32


@dataclass
class ModelConfig:
    """Everything needed to rebuild the network from a checkpoint (stored as ``config.json``)."""

    backbone: str = "resnet18"  # resnet18 | resnet34
    width: float = 1.0  # channel multiplier (1.0 = torchvision's layout)
    img_size: int = 224  # crop side in pixels fed to the network
    expand: float = 1.5  # crop side = expand * max(bbox w, h)
    hidden: int = 1024  # head MLP width
    hand_model: str = "openhand"  # openhand | mano (handsynth.hand.load_hand_model)
    hand_model_path: str | None = None  # MANO folder/file for hand_model=mano
    cam_scale0: float = 8.0  # initial weak-perspective scale (crop half-sides per metre)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Augment:
    """Training-time jitter of the crop (scale, shift, in-plane rotation) and colour."""

    scale: float = 0.15  # side *= 1 + U(-scale, scale)
    shift: float = 0.1  # centre += U(-shift, shift) * side
    rot_deg: float = 30.0  # U(-rot, rot) degrees
    color: float = 0.2  # per-channel gain 1 + U(-color, color)


@dataclass
class LossWeights:
    joints3d: float = 10.0
    verts3d: float = 10.0
    joints2d: float = 1.0
    params: float = 0.1  # MSE on rotation matrix, pose and betas when the record's hand model matches
    reg: float = 1e-3  # L2 prior on predicted pose and betas (keeps them near the mean hand)


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
    save_every_minutes: float = 30.0  # also a checkpoint once this much wall time passed (0: off)
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

    def check(self) -> None:
        """Refuse out-of-range settings with one sentence naming the flag, before a run touches ``out``:
        values from ``--config`` or the Python API skip argparse's checks, and torch, accelerate or the
        loop would otherwise fail with a traceback (or train a NaN loss) after files are written."""
        for (group, name), rule in RULES.items():
            value = getattr(getattr(self, group) if group else self, name)
            flag, where = flag_name(group, name), f"{group}.{name}" if group else name
            if isinstance(rule, tuple):
                if value is None and name in OPTIONAL_CHOICES:
                    continue
                if value not in rule:
                    raise UserError(
                        f"{flag} (config field '{where}') must be one of {', '.join(rule)}, got {value!r}"
                    )
                continue
            try:
                rule(str(value))
            except argparse.ArgumentTypeError as err:
                raise UserError(f"{flag} (config field '{where}') {err}") from None
        modules = TRACKER_MODULES.get(self.log_with or "", (self.log_with,))
        if self.log_with and all(importlib.util.find_spec(m) is None for m in modules):
            raise UserError(
                f"--log-with {self.log_with} needs the {self.log_with} package: pip install "
                f"{self.log_with} (or drop --log-with)"
            )
        if self.batch_size == 1 and self.model.img_size <= TOTAL_STRIDE:
            raise UserError(
                f"--batch-size 1 needs --img-size above {TOTAL_STRIDE} (got {self.model.img_size}): the "
                "backbone's last BatchNorm would see one value per channel; raise either"
            )
        if self.warmup > self.steps:  # allowed (short test runs), but rarely meant
            logging.getLogger(__name__).warning(
                "--warmup %d is longer than --steps %d: the learning rate never reaches --lr",
                self.warmup,
                self.steps,
            )


NESTED = {"model": ModelConfig, "loss": LossWeights, "aug": Augment}
# Flags whose meaning (or limit) the field name and default do not tell; nested fields as "group.name".
HELP = {
    "init": "fine-tune: start from the weights of this recon run (its latest checkpoint) or checkpoint "
    "folder; the model settings must match it (fresh optimiser and schedule)",
    "image_cache_mb": "decoded photos kept in memory by each data-loading process, in MiB (0: decode the "
    "file at every draw); results do not depend on it",
    "grad_clip": "clip the gradient norm to this (0: no clipping)",
    "save_every_minutes": "also save a checkpoint once this many minutes passed since the last one, so a "
    "crash costs at most that much (0: only every --save-every steps)",
    "log_with": "also log losses to this accelerate tracker (its package must be installed)",
    "model.img_size": f"crop side in pixels fed to the network, {TOTAL_STRIDE} (the backbone's total "
    f"stride) to {cli_args.MAX_IMAGE_SIDE}",
}
PREFIX = {"model": "", "loss": "loss-", "aug": "aug-"}

# accelerate's trackers (its LoggerType, less "all"); each needs the package of the same name
# (tensorboard: or tensorboardX, as accelerate accepts).
TRACKERS = ("tensorboard", "wandb", "aim", "comet_ml", "mlflow", "clearml", "dvclive", "swanlab", "trackio")
TRACKER_MODULES = {"tensorboard": ("tensorboard", "tensorboardX")}
OPTIONAL_CHOICES = {"log_with"}  # None (unset) is allowed beside the choices
# The allowed values of every field that has a limit: an argparse type from cli_args (a range) or the
# choices. Both the flags (at parse time) and TrainConfig.check (YAML, the API) use them.
RULES: dict[tuple[str | None, str], Callable[[str], Any] | tuple[str, ...]] = {
    (None, "steps"): cli_args.positive_int,
    (None, "batch_size"): cli_args.positive_int,
    (None, "lr"): cli_args.non_negative,  # 0: the weights stay as they are (e.g. checking --init)
    (None, "weight_decay"): cli_args.non_negative,
    (None, "warmup"): cli_args.count,
    (None, "grad_clip"): cli_args.non_negative,  # 0: no clipping
    (None, "num_workers"): cli_args.count,
    (None, "image_cache_mb"): cli_args.non_negative,
    (None, "seed"): cli_args.seed,
    (None, "save_every"): cli_args.positive_int,
    (None, "save_every_minutes"): cli_args.non_negative,
    (None, "log_every"): cli_args.positive_int,
    (None, "keep_last"): cli_args.positive_int,
    (None, "mixed_precision"): ("no", "fp16", "bf16"),
    (None, "log_with"): TRACKERS,
    ("model", "backbone"): tuple(LAYOUTS),
    ("model", "width"): cli_args.positive,
    # below the backbone's total stride its last stages only see a 1x1 map (nothing left to downsample)
    ("model", "img_size"): cli_args.int_in(
        TOTAL_STRIDE, cli_args.MAX_IMAGE_SIDE, what="an image side in pixels"
    ),
    ("model", "expand"): cli_args.positive,  # 0 would be a zero-sized crop (NaN loss)
    ("model", "hidden"): cli_args.positive_int,
    ("model", "hand_model"): HAND_MODEL_KINDS,
    ("model", "cam_scale0"): cli_args.positive,
    **{("loss", f.name): cli_args.non_negative for f in dataclasses.fields(LossWeights)},
    # the crop side shrinks by at most `scale`: 1 or more would allow an empty crop
    ("aug", "scale"): cli_args.float_in(0.0, 0.9, what="a number"),
    ("aug", "shift"): cli_args.non_negative,
    ("aug", "rot_deg"): cli_args.float_in(0.0, 180.0, what="a number"),
    ("aug", "color"): cli_args.fraction,
}


def flag_name(group: str | None, name: str) -> str:
    """The command-line flag of a config field (``("loss", "params")`` -> ``--loss-params``)."""
    return "--" + (PREFIX[group] if group else "") + name.replace("_", "-")


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
            flag = flag_name(group, f.name)
            dest = f"cfg__{group}__{f.name}" if group else f"cfg____{f.name}"
            tp = _base_type(f.type)
            default = getattr(defaults, f.name)
            text = HELP.get(f"{group}.{f.name}" if group else f.name)
            hint = (text + " " if text else "") + f"(default: {default})"
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
            elif isinstance(rule := RULES.get((group, f.name)), tuple):  # shown as {a,b} in --help
                parser.add_argument(flag, dest=dest, choices=rule, default=None, help=hint)
            else:
                checked = rule or {int: cli_args.int_in(), float: cli_args.finite}.get(tp, tp)
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
