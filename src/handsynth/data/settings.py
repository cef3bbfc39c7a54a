"""Resuming into an existing output folder: only with the settings that made it.

One check for every command that resumes (``handsynth generate``'s dataset folder, ``handsynth train``'s
run folder, ``handsynth recon train``), so they refuse the same way and name the same keys.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

from handsynth.errors import UserError


def _flat(d: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # either is missing, or not a path at all (e.g. an embedded NUL)
        return False


def same_setting(a: Any, b: Any) -> bool:
    """Equal values, or paths written two ways ("data/x", "./data/x", "/abs/data/x", a symlink) that
    name the same existing file or folder, also inside lists: a resume typed differently is the same run."""
    if a == b:
        return True
    if isinstance(a, str) and isinstance(b, str):
        return _same_file(a, b)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return all(same_setting(x, y) for x, y in zip(a, b))
    return False


def changed_settings(old: dict, new: dict, ignore: Iterable[str] = ()) -> list[str]:
    """Dotted keys whose values differ (nested mappings compared leaf by leaf, paths by the file they
    name), minus ``ignore``d ones (a key there also covers everything below it)."""
    a, b = dict(_flat(old)), dict(_flat(new))
    skip = tuple(ignore)
    return sorted(
        k
        for k in set(a) | set(b)
        if not any(k == s or k.startswith(s + ".") for s in skip) and not same_setting(a.get(k), b.get(k))
    )


def refuse_other_settings(
    where: Any, old: dict, new: dict, how: str, ignore: Iterable[str] = (), what: str = "holds a run with"
) -> None:
    """A UserError naming the changed keys when ``new`` differs from the ``old`` settings of ``where``;
    ``how`` says what to do instead (e.g. "use a new --out folder or pass --overwrite ...")."""
    diff = changed_settings(old, new, ignore)
    if diff:
        raise UserError(f"{where} {what} different settings ({', '.join(diff)}); {how}")
