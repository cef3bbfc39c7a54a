"""Training data kept in memory within a byte budget: first come, first kept, never evicted.

Training draws the same items again and again; where building one (decoding a photo, rendering its
condition maps) costs more than keeping it, a dataset keeps what fits its budget and rebuilds the rest.
Only for values that are pure functions of their key: the run must be the same with any budget.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any


class MemoryCache:
    """``get(key, build, nbytes)`` returns ``build(key)``, kept while the kept values total at most
    ``limit_mb`` MiB (0 keeps nothing). Callers must not modify a returned value in place."""

    def __init__(self, limit_mb: float) -> None:
        self.limit = int(limit_mb * 2**20)
        self.used = 0
        self.kept: dict[Hashable, Any] = {}

    def get(self, key: Hashable, build: Callable[[Any], Any], nbytes: Callable[[Any], int]) -> Any:
        if key in self.kept:
            return self.kept[key]
        value = build(key)
        size = nbytes(value)
        if self.used + size <= self.limit:
            self.kept[key] = value
            self.used += size
        return value
