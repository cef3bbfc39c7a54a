"""The EMA of a model's weights and its warm-up, as the training loop keeps it.

Why its own module: papers give an EMA as "decay 0.995 every 10 steps", but the released trainers wrap it
in a warm-up that decides what short runs sample with. diffusers' ``EMAModel`` ramps the decay as
k/(9 + k) at its k-th update; HandBooster's released trainer uses ``ema_pytorch`` 0.2.2, which
copies the weights for the first 100 optimiser steps and then ramps 1 - (1 + epoch)^(-2/3) over optimiser
steps: at 4,000 steps with updates every 10, diffusers' decay is 0.978 (an average over ~450 steps),
ema_pytorch's the full 0.995 (~2,000 steps).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

EMA_WARMUPS = ("diffusers", "ema_pytorch", "none")
# ema_pytorch 0.2.2's defaults (HandBooster's released trainer leaves them as they are)
EMA_PYTORCH_AFTER_STEP = 100
EMA_PYTORCH_POWER = 2 / 3


def ema_due(step: int, every: int, warmup: str) -> bool:
    """Whether the EMA is updated after optimiser step ``step`` (1-based).

    ema_pytorch counts its calls from 0 and updates on multiples of ``every``: optimiser steps 1, 11, 21,
    ...; the diffusers reading (kept for runs that resume) updates on steps 10, 20, ...
    """
    every = max(every, 1)
    return (step - 1) % every == 0 if warmup == "ema_pytorch" else step % every == 0


def ema_pytorch_decay(step: int, beta: float, every: int) -> float:
    """The decay ema_pytorch 0.2.2 applies at optimiser step ``step`` (1-based, an update step).

    0 (a copy of the weights) up to step 100 and at the first update after it (ema_pytorch copies again
    when it first averages); then 1 - (1 + step - 101)^(-2/3), at most ``beta``.
    """
    if step - 1 - max(every, 1) <= EMA_PYTORCH_AFTER_STEP:
        return 0.0
    epoch = step - EMA_PYTORCH_AFTER_STEP - 1
    return min(1.0 - (1.0 + epoch) ** -EMA_PYTORCH_POWER, beta)


def make_ema(parameters: Iterable[Any], decay: float, every: int, warmup: str) -> Any:
    """A diffusers ``EMAModel`` of ``parameters`` whose decay follows ``warmup`` (see :data:`EMA_WARMUPS`):
    it saves, loads and swaps weights as diffusers' does, so checkpoints and validation stay the same."""
    from diffusers.training_utils import EMAModel

    if warmup not in EMA_WARMUPS:
        raise ValueError(f"train.ema_warmup {warmup!r} is unknown; choose from {', '.join(EMA_WARMUPS)}")
    if warmup == "diffusers":
        return EMAModel(parameters, decay=decay)

    class _WarmupEMA(EMAModel):
        def get_decay(self, optimization_step: int) -> float:
            if warmup == "none":
                return self.decay
            # the k-th update follows optimiser step every * (k - 1) + 1 (ema_due)
            return ema_pytorch_decay(max(every, 1) * (optimization_step - 1) + 1, self.decay, every)

    return _WarmupEMA(parameters, decay=decay)
