"""AttentionHand's own ``handsynth generate`` flags (the registry adds them to the command)."""

from __future__ import annotations

import argparse

from handsynth import cli_args
from handsynth.methods.interface import MODES


def add_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--mode", default="global", choices=MODES, help="attentionhand inference mode")
    g.add_argument(
        "--local-blend", type=cli_args.fraction, default=0.5, help="global+local: weight of the local branch"
    )
    g.add_argument("--tas", action="store_true", help="attentionhand: TAS at inference (off by default)")
    g.add_argument(
        "--tas-steps",
        type=cli_args.int_in(0, 50, what="a number of steps"),
        default=25,
        help="TAS runs in the first N of 50 denoising steps (A&E's count; scaled to --steps, so 25 = the first "
        "half of any sampler)",
    )
    g.add_argument(
        "--tas-thresholds",
        default="0:0.05,10:0.5,20:0.8",
        help="A&E step:threshold pairs, steps counted on 50 like --tas-steps",
    )
    g.add_argument(
        "--tas-iterations",
        type=cli_args.int_in(0, 20, what="a number of iterations"),
        default=20,
        help="max refinement iterations (<= 20)",
    )
