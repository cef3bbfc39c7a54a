"""HandBooster's own ``handsynth generate`` flags (the registry adds them to the command)."""

from __future__ import annotations

import argparse

SPACINGS = ("trailing", "linspace", "leading")
RELEASED_SPACING = "trailing"  # the released sampler's (DDIM from t = 999)


def add_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--timestep-spacing",
        choices=SPACINGS,
        default=None,
        help="handbooster: which timesteps the sampler visits (default trailing = released, from t=999; "
        "its last model call is at t=1000/steps-1, which leaves noise at few steps: leading and linspace "
        "end at t=0)",
    )
