"""Lazy re-exports for package ``__init__`` modules: ``import handsynth.x`` stays cheap (no torch) and a
name is imported from its home module on first use."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_getattr(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``exports`` (name -> module that defines it) for ``package``."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[list[str], Callable, Callable]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for a package ``__init__`` that serves ``exports``
    lazily: ``__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)``."""

    def __dir__() -> list[str]:
        return sorted([*vars(sys.modules[package]), *exports])

    return sorted(exports), lazy_getattr(package, exports), __dir__
