"""Progress of long loops: a tqdm bar on a terminal, periodic one-line reports in a log otherwise.

tqdm's ``disable=None`` hides the bar when output is not a terminal (batch schedulers, ``nohup``,
``| tee``), which leaves a log silent for hours. :func:`progress` keeps the bar on a terminal and
otherwise prints ``desc: done/total (pct) rate unit/s, ETA h:mm:ss`` every ``interval`` seconds
(``HANDSYNTH_PROGRESS_INTERVAL``, default 30) and once at the end.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

DEFAULT_INTERVAL = 30.0


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class LogProgress:
    """tqdm's ``update``/``close``/iteration interface, writing whole lines at most every ``interval`` s."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        stream: IO[str] | None = None,
        interval: float | None = None,
        initial: int = 0,
    ) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream if stream is not None else sys.stderr
        env = os.environ.get("HANDSYNTH_PROGRESS_INTERVAL")
        self.interval = float(interval if interval is not None else env or DEFAULT_INTERVAL)
        self.n = self.start_n = initial
        self.start = self.last = time.monotonic()
        self.closed = False
        self.postfix = ""

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        done = self.n - self.start_n
        rate = done / elapsed if elapsed > 0 else 0.0
        text = f"{self.desc}: {self.n}" + (f"/{self.total}" if self.total else "")
        if self.total:
            text += f" ({100 * self.n / self.total:.0f}%)"
        text += f" {rate:.3g} {self.unit}/s, elapsed {_clock(elapsed)}"
        if self.total and rate > 0:
            text += f", ETA {_clock((self.total - self.n) / rate)}"
        return text + (f", {self.postfix}" if self.postfix else "")

    def _emit(self) -> None:
        print(self.line(), file=self.stream, flush=True)
        self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.last >= self.interval:
            self._emit()

    def set_postfix(self, **values: Any) -> None:
        """Values shown after the rate (e.g. the latest loss), as tqdm's postfix."""
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.n > self.start_n:
                self._emit()

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    disable: bool = False,
    stream: IO[str] | None = None,
    interval: float | None = None,
    initial: int = 0,
) -> Any:
    """A tqdm bar when ``stream`` (stderr) is a terminal, else :class:`LogProgress`; ``disable``
    silences both (e.g. on processes other than rank 0)."""
    from tqdm import tqdm

    out = stream if stream is not None else sys.stderr
    if disable:
        return tqdm(iterable, total=total, disable=True)
    if getattr(out, "isatty", lambda: False)():
        return tqdm(iterable, total=total, desc=desc, unit=unit, file=out, initial=initial)
    return LogProgress(iterable, total, desc, unit, out, interval, initial)
