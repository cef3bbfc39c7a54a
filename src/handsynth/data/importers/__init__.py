"""Importers for public hand datasets, one module per dataset, found through :data:`IMPORTERS`.

Each module defines one :class:`~handsynth.data.importers.base.Importer` subclass named ``IMPORTER``;
``handsynth prepare --dataset NAME`` looks the name up here, so adding a dataset is one file and one line.
"""

from __future__ import annotations

import importlib

from handsynth.data.importers.base import Importer, PrepareOptions, PrepareSummary, run_prepare
from handsynth.errors import UserError

IMPORTERS = {
    "freihand": "handsynth.data.importers.freihand",
    "interhand26m": "handsynth.data.importers.interhand",
    "ho3d": "handsynth.data.importers.ho3d",
    "dexycb": "handsynth.data.importers.dexycb",
    "coco-wholebody": "handsynth.data.importers.coco_wholebody",
    "reinterhand": "handsynth.data.importers.reinterhand",
}


def available() -> list[str]:
    """Names of the importers present in this installation."""
    return [name for name, module in IMPORTERS.items() if importlib.util.find_spec(module) is not None]


def get_importer(name: str) -> type[Importer]:
    """The importer class for ``name`` (a :class:`UserError` listing the choices otherwise)."""
    if name not in available():
        raise UserError(f"--dataset {name!r} has no importer: choose one of {', '.join(available())}")
    return importlib.import_module(IMPORTERS[name]).IMPORTER


def prepare(name: str, opts: PrepareOptions) -> PrepareSummary:
    """Import dataset ``name`` as ``opts`` says; returns the run's summary."""
    return run_prepare(get_importer(name)(opts), opts)


__all__ = [
    "IMPORTERS",
    "Importer",
    "PrepareOptions",
    "PrepareSummary",
    "available",
    "get_importer",
    "prepare",
]
