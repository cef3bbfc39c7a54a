"""SesaHand's own ``handsynth generate`` flags (the registry adds them to the command)."""

from __future__ import annotations

import argparse

from handsynth import cli_args


def add_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--no-hsa", action="store_true", help="sesahand: generate without HSA (on by default)")
    g.add_argument(
        "--hsa-bias",
        type=cli_args.finite,
        default=None,
        help="sesahand: HSA beta (default: the run's hsa.bias)",
    )
