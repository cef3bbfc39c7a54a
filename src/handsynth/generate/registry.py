"""Method names of ``handsynth generate`` and how each is built from the command line."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from handsynth.errors import UserError
from handsynth.generate.method import GenerationMethod, SamplingConfig

METHOD_NAMES = (
    "attentionhand",
    "sd",
    "controlnet",
    "t2i-adapter",
    "uni-controlnet",
)  # handbooster, sesahand: later
DEFAULT_BASE = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # hub id; pass a local folder offline


def sampling_from_args(args: argparse.Namespace) -> SamplingConfig:
    return SamplingConfig(
        scheduler=args.scheduler,
        steps=args.steps,
        guidance=args.guidance,
        negative_prompt=args.negative_prompt,
        eta=args.eta,
        dtype=args.dtype,
    ).check()


def _attentionhand(args: argparse.Namespace) -> GenerationMethod:
    from handsynth.generate.attentionhand import AttentionHandGenerator, parse_thresholds

    if args.checkpoint is None:
        raise UserError("--method attentionhand needs --checkpoint (the folder `handsynth train` wrote)")
    return AttentionHandGenerator(
        args.checkpoint,
        base_model=args.base_model,
        sampling=sampling_from_args(args),
        mode=args.mode,
        local_blend=args.local_blend,
        tas=args.tas,
        tas_steps=args.tas_steps,
        tas_thresholds=parse_thresholds(args.tas_thresholds),
        tas_iterations=args.tas_iterations,
        condition=args.condition,
        conditioning_scale=args.conditioning_scale,
    )


def _baseline(name: str) -> Callable[[argparse.Namespace], GenerationMethod]:
    def build(args: argparse.Namespace) -> GenerationMethod:
        from handsynth.methods.baselines import BASELINES

        if args.mode != "global" or args.tas:
            raise UserError(f"--mode and --tas belong to --method attentionhand, not {name}")
        return BASELINES[name](
            args.checkpoint,
            base_model=args.base_model or DEFAULT_BASE,
            sampling=sampling_from_args(args),
            condition=args.condition or "mesh",
            conditioning_scale=args.conditioning_scale,
        )

    return build


def _uni_controlnet(args: argparse.Namespace) -> GenerationMethod:
    from handsynth.methods.uni_controlnet.generator import UniControlNetGenerator

    if args.mode != "global" or args.tas:
        raise UserError("--mode and --tas belong to --method attentionhand, not uni-controlnet")
    if args.condition is not None:
        raise UserError(
            "--condition does not apply to --method uni-controlnet: it reads the maps its training "
            "config lists (model.maps)"
        )
    if args.checkpoint is None:
        raise UserError("--method uni-controlnet needs --checkpoint (the folder `handsynth train` wrote)")
    return UniControlNetGenerator(
        args.checkpoint,
        base_model=args.base_model,
        sampling=sampling_from_args(args),
        conditioning_scale=args.conditioning_scale,
    )


BUILDERS: dict[str, Callable[[argparse.Namespace], GenerationMethod]] = {
    "attentionhand": _attentionhand,
    "sd": _baseline("sd"),
    "controlnet": _baseline("controlnet"),
    "t2i-adapter": _baseline("t2i-adapter"),
    "uni-controlnet": _uni_controlnet,
}


def build_method(args: argparse.Namespace) -> GenerationMethod:
    """The method object for ``args.method`` (an unknown name is a UserError listing the known ones)."""
    if args.method not in BUILDERS:
        raise UserError(f"--method {args.method!r} is unknown; choose from {', '.join(METHOD_NAMES)}")
    return BUILDERS[args.method](args)
