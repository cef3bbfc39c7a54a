"""The one method registry: a name -> its training config and task (``handsynth train``) and its generator
(``handsynth generate``). Neither command names a method; a new method adds one entry to ``METHODS``.

Entries point at their code by ``"module:attribute"`` strings, resolved on first use, so listing the
methods (``--help``) imports none of them.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from handsynth.config import load_config
from handsynth.errors import UserError

if TYPE_CHECKING:
    from handsynth.diffusion.training import TrainTask
    from handsynth.methods.interface import GenerationMethod


@dataclass(frozen=True)
class MethodSpec:
    """One method as the commands see it (every reference is ``"package.module:attribute"``)."""

    name: str
    method: str  # the GenerationMethod class, built from keyword arguments (scripts, the demo)
    generator: str  # function(args: argparse.Namespace) -> GenerationMethod, for `handsynth generate`
    checkpoint: str  # what --checkpoint names for this method (help text)
    config: str | None = None  # dataclass of the training config; None: not trainable here
    task: str | None = None  # class(config, data) -> the TrainTask `handsynth train` runs
    options: str | None = None  # function(argument group) adding the method's own generate flags


_AH = "handsynth.methods.attentionhand"
_BASELINES = "handsynth.methods.baselines.generators"
_UNI = "handsynth.methods.uni_controlnet"
_HB = "handsynth.methods.handbooster"
_SESA = "handsynth.methods.sesahand"

METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec(
            "attentionhand",
            method=f"{_AH}.generator:AttentionHandGenerator",
            generator=f"{_AH}.generator:from_args",
            checkpoint="the `handsynth train` run folder (`default`: the embedded model)",
            config=f"{_AH}.training:AttentionHandConfig",
            task=f"{_AH}.training:AttentionHandTask",
            options=f"{_AH}.options:add_arguments",
        ),
        MethodSpec(
            "sd",
            method=f"{_BASELINES}:SDBaseline",
            generator=f"{_BASELINES}:sd_from_args",
            checkpoint="an SD folder (optional)",
        ),
        MethodSpec(
            "controlnet",
            method=f"{_BASELINES}:ControlNetBaseline",
            generator=f"{_BASELINES}:controlnet_from_args",
            checkpoint="a diffusers ControlNetModel folder or hub id",
        ),
        MethodSpec(
            "t2i-adapter",
            method=f"{_BASELINES}:T2IAdapterBaseline",
            generator=f"{_BASELINES}:t2i_adapter_from_args",
            checkpoint="a diffusers T2IAdapter folder or hub id",
        ),
        MethodSpec(
            "uni-controlnet",
            method=f"{_UNI}.generator:UniControlNetGenerator",
            generator=f"{_UNI}.generator:from_args",
            checkpoint="the `handsynth train --method uni-controlnet` run folder",
            config=f"{_UNI}.config:UniControlNetConfig",
            task=f"{_UNI}.task:UniControlNetTask",
        ),
        MethodSpec(
            "handbooster",
            method=f"{_HB}.generator:HandBoosterGenerator",
            generator=f"{_HB}.generator:from_args",
            checkpoint="the `handsynth train --method handbooster` run folder",
            config=f"{_HB}.config:HandBoosterConfig",
            task=f"{_HB}.task:HandBoosterTask",
            options=f"{_HB}.options:add_arguments",
        ),
        MethodSpec(
            "sesahand",
            method=f"{_SESA}.generator:SesaHandGenerator",
            generator=f"{_SESA}.generator:from_args",
            checkpoint="the `handsynth train --method sesahand` run folder",
            config=f"{_SESA}.config:SesaHandConfig",
            task=f"{_SESA}.task:SesaHandTask",
            options=f"{_SESA}.options:add_arguments",
        ),
    )
}

METHOD_NAMES = tuple(METHODS)


def resolve(ref: str) -> Any:
    """The object a ``"module:attribute"`` reference names (imports the module)."""
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def trainable() -> list[str]:
    """Names of the methods ``handsynth train`` can train."""
    return [name for name, spec in METHODS.items() if spec.config and spec.task]


def get_method(name: str) -> MethodSpec:
    """The entry for ``name`` (an unknown name is a UserError listing the known ones)."""
    if name not in METHODS:
        raise UserError(f"--method {name!r} is unknown; choose from {', '.join(METHOD_NAMES)}")
    return METHODS[name]


def make_method(name: str, *args: Any, **kwargs: Any) -> GenerationMethod:
    """The generation method ``name``, built from Python arguments (its class's own signature)."""
    return resolve(get_method(name).method)(*args, **kwargs)


# option dest -> the method that owns it, filled by add_generate_options
_OPTION_OWNERS: dict[str, tuple[str, str, Any]] = {}


def add_generate_options(group: argparse._ArgumentGroup) -> None:
    """Every method's own ``handsynth generate`` flags (argparse must know all before --method is read)."""
    for spec in METHODS.values():
        if spec.options is None:
            continue
        before = len(group._group_actions)
        resolve(spec.options)(group)
        for action in group._group_actions[before:]:
            _OPTION_OWNERS[action.dest] = (spec.name, action.option_strings[0], action.default)


def build_generator(args: argparse.Namespace) -> GenerationMethod:
    """The generation method ``args.method`` names, built from the parsed ``handsynth generate`` flags;
    a flag of another method, set away from its default, is refused."""
    spec = get_method(args.method)
    foreign = [
        flag
        for dest, (owner, flag, default) in _OPTION_OWNERS.items()
        if owner != spec.name and getattr(args, dest, default) != default
    ]
    if foreign:
        owners = sorted({_OPTION_OWNERS[d][0] for d in _OPTION_OWNERS if _OPTION_OWNERS[d][1] in foreign})
        verb = "belongs" if len(foreign) == 1 else "belong"
        raise UserError(f"{' and '.join(foreign)} {verb} to --method {', '.join(owners)}, not {spec.name}")
    return resolve(spec.generator)(args)


def build_training(
    method: str,
    config: str | None,
    data: str,
    overrides: list[str],
    base_model: str | None = None,
    base_config: str | None = None,
) -> tuple[Any, TrainTask]:
    """Config + task for ``method`` (shared by the CLI, tests and benchmarks)."""
    if method not in trainable():
        raise UserError(f"unknown method {method!r}; trainable methods: {', '.join(trainable())}")
    spec = METHODS[method]
    cfg_cls, task_cls = resolve(spec.config), resolve(spec.task)
    overrides = list(overrides)
    if base_model:
        overrides.append(f"model.base_model={base_model}")
    if base_config:
        overrides.append(f"model.base_config={base_config}")
    cfg = load_config(cfg_cls, config, overrides)
    if getattr(cfg, "method", method) != method:
        raise UserError(f"config {config} is for method {cfg.method!r}, not {method!r}")
    return cfg, task_cls(cfg, data)
