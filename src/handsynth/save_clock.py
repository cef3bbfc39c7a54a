"""Wall-time saves for long training loops: a checkpoint once so many minutes have passed since the
last one, whatever the step budget, so a crash or a restarted machine costs at most that much work."""

from __future__ import annotations

import time
from typing import Any


class SaveClock:
    """Minutes since the last save (0: never due). The main process reads its clock and tells the
    others, so every process saves at the same step (a save waits for all of them)."""

    def __init__(self, minutes: float) -> None:
        self.seconds = 60.0 * minutes
        self.reset()

    def reset(self) -> None:
        self.since = time.monotonic()

    def due(self, accelerator: Any) -> bool:
        if self.seconds <= 0:
            return False
        due = time.monotonic() - self.since >= self.seconds
        if accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            due = broadcast_object_list([due], from_process=0)[0]
        return bool(due)
