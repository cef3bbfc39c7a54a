"""Checked number types for every command's flags, in one place (``type=`` of ``add_argument``).

Why: a flag that parses as a number is not yet a valid value. ``--size 0`` used to fall back to the
default size, ``--limit -1`` meant "all but the last" and ``--guidance nan`` switched guidance off and
wrote ``NaN`` (invalid JSON) into the run's files. Each type here refuses non-finite numbers and values
outside its range while the command line is parsed, so argparse answers with one line naming the flag
(exit 2) before anything is loaded or written.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

# The largest image side any stage renders or generates: the GL renderer's framebuffers and the
# sampler's latents stay within common GPU limits (16384² textures) with room for supersampling.
MAX_IMAGE_SIDE = 4096
MIN_IMAGE_SIDE = 8
MAX_SEED = 2**63 - 1


def _range_text(lo: float | None, hi: float | None, lo_open: bool = False) -> str:
    if lo is not None and hi is not None:
        return f"from {lo} to {hi}" if not lo_open else f"above {lo} and at most {hi}"
    if lo is not None:
        return f"above {lo}" if lo_open else f"at least {lo}"
    if hi is not None:
        return f"at most {hi}"
    return "finite"


def int_in(lo: int | None = None, hi: int | None = None, what: str = "an integer") -> Callable[[str], int]:
    """An argparse type: an integer within ``[lo, hi]`` (either bound may be open-ended)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be {what} {_range_text(lo, hi)}, got {text!r}")
        return value

    parse.__name__ = what.replace(" ", "_")  # argparse names the type in some messages
    return parse


def float_in(
    lo: float | None = None, hi: float | None = None, lo_open: bool = False, what: str = "a number"
) -> Callable[[str], float]:
    """An argparse type: a finite number within ``[lo, hi]`` (``(lo, hi]`` when ``lo_open``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        low_bad = lo is not None and (value <= lo if lo_open else value < lo)
        if not math.isfinite(value) or low_bad or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(
                f"must be a finite number {_range_text(lo, hi, lo_open)}, got {text!r}"
            )
        return value

    parse.__name__ = what.replace(" ", "_")
    return parse


# The shared vocabulary of the commands' flags.
positive_int = int_in(1, what="a positive integer")
count = int_in(0, what="a whole number")  # 0 allowed: "none" (e.g. --show 0, --reference 0)
seed = int_in(0, MAX_SEED, what="a seed")
port = int_in(0, 65535, what="a port number")
image_side = int_in(MIN_IMAGE_SIDE, MAX_IMAGE_SIDE, what="an image side in pixels")
finite = float_in()
non_negative = float_in(0.0)
positive = float_in(0.0, lo_open=True, what="a positive number")
probability = float_in(0.0, 1.0, what="a probability")
fraction = probability  # a blend weight in [0, 1]
