"""How many CPU threads torch gets, chosen once per command and recorded with what it made.

torch starts one intra-op thread per core. For the small bases (``tiny``, the micro base of the
embedded default model) the per-operation work is too small to split: on a shared CPU the extra
threads spin while other processes hold the cores: on this project's shared 2-core machine
generation took 7.5x (micro) and 17x (tiny) longer with 2 threads than with 1, burning 7-14x the CPU
time (benchmarks/results/threads.md). ``--threads auto``
therefore uses one thread for small models on the CPU and torch's default otherwise.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from handsynth.errors import UserError

log = logging.getLogger(__name__)

AUTO = "auto"
# benchmarks/results/threads.md: 1 thread was fastest for both small bases, by far, on a loaded CPU.
SMALL_MODEL_CPU_THREADS = 1
# UNets narrower than SD-1.x's first level (320 channels) count as small (tiny: 32, micro: 32-64).
SMALL_UNET_CHANNELS = 320


def parse_threads(text: str) -> str | int:
    """``--threads`` value: ``auto`` or a positive whole number."""
    if text == AUTO:
        return AUTO
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive whole number, got {text!r}")
    return n


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """The one ``--threads`` flag every torch command shares."""
    parser.add_argument(
        "--threads",
        type=parse_threads,
        default=AUTO,
        help="torch CPU threads: a number, or auto (1 for small models on the CPU, else torch's default)",
    )


def is_small_unet(unet_config: dict | None) -> bool:
    """True for the tiny / micro bases (their UNets are far narrower than SD's)."""
    if not unet_config:
        return False
    channels = list(unet_config.get("block_out_channels") or [])
    return bool(channels) and max(channels) < SMALL_UNET_CHANNELS


def configure_threads(requested: Any, device: Any = "cpu", small_model: bool = False) -> int:
    """Set torch's intra-op thread count for this process; returns the count in effect.

    ``requested`` is ``auto``/None or a number. A number is always applied; ``auto`` picks
    :data:`SMALL_MODEL_CPU_THREADS` for small models on the CPU and leaves torch's choice otherwise.
    """
    import torch

    on_cpu = str(getattr(device, "type", device)).split(":")[0] == "cpu"
    if requested not in (None, AUTO):
        n = int(requested)
        if n < 1:
            raise UserError(f"--threads must be a positive number or auto, got {requested}")
        torch.set_num_threads(n)
    elif on_cpu and small_model:
        torch.set_num_threads(SMALL_MODEL_CPU_THREADS)
    threads = torch.get_num_threads()
    log.debug("torch CPU threads: %d (requested %s)", threads, requested)
    return threads


def small_base(base_models: Iterable[Any]) -> bool:
    """Whether every named base is small: ``tiny`` or a local folder whose UNet config is narrow."""
    import json
    from pathlib import Path

    names = list(base_models)
    if not names:
        return False
    for name in names:
        if name == "tiny":
            continue
        cfg = Path(str(name)).expanduser() / "unet" / "config.json"
        try:
            if not is_small_unet(json.loads(cfg.read_text())):
                return False
        except (OSError, ValueError):
            return False
    return True


def cache_dir() -> Path:
    """Where built-in models and builds are saved once (``HANDSYNTH_CACHE`` or ~/.cache/handsynth)."""
    root = os.environ.get("HANDSYNTH_CACHE") or Path.home() / ".cache" / "handsynth"
    return Path(root)


def torch_device(name: str | None, flag: str = "--device") -> str:
    """The device a command runs on: ``name``, or (None / ``auto``) cuda when available, else cpu. A GPU
    this machine does not have is one sentence naming the flag, not torch's assertion deep in a model."""
    import torch

    if name in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"{flag} {name!r} is not a torch device (cpu, cuda, cuda:1, ...)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"{flag} {name}: no CUDA device is available here; use {flag} cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"{flag} {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return str(device)
