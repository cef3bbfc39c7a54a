"""Typed configs: nested dataclasses loaded from YAML, every field overridable as ``a.b=value``.

One loader for every method, so a YAML file, the ``--set`` flags and the saved run config all go
through the same type checks (a typo in a key is an error naming the key, never silently ignored).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from handsynth.errors import UserError

T = TypeVar("T")


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check/convert ``value`` to the annotated type ``tp`` (dataclass, Optional, list, dict, scalar)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except UserError as err:
                errors.append(str(err))
        raise UserError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise UserError(f"config field '{where}' must be one of {list(choices)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise UserError(f"config field '{where}' must be a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config field '{where}' must be a list, got {value!r}")
        (arg,) = typing.get_args(tp)[:1] or (Any,)
        return [_convert(v, arg, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"config field '{where}' must be a mapping, got {value!r}")
        _, varg = typing.get_args(tp) or (Any, Any)
        return {k: _convert(v, varg, f"{where}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"config field '{where}' must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise UserError(f"config field '{where}' must be an integer, got {value!r}")
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads "1e-5" as a string
            with contextlib.suppress(ValueError):
                number = float(value)
        if number is not None and math.isfinite(number):
            return number
        raise UserError(f"config field '{where}' must be a finite number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise UserError(f"config field '{where}' must be a string, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict, where: str = "") -> T:
    """Build dataclass ``cls`` from a (nested) mapping; unknown keys are an error naming them."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        prefix = f"{where}." if where else ""
        raise UserError(
            f"unknown config field '{prefix}{unknown[0]}'; known fields here: {', '.join(sorted(names))}"
        )
    kwargs = {k: _convert(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict:
    """Plain nested dict of a config (what is saved beside the trained weights)."""
    return dataclasses.asdict(cfg)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``a.b=value`` strings (value parsed as YAML) to a nested dict, in order."""
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r} must look like key.sub=value (e.g. tas.iterations=3)")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw.strip() else ""
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise UserError(f"override {item!r}: '{p}' is not a section")
        node[parts[-1]] = value
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Defaults of ``cls``, then the YAML file at ``path``, then ``overrides``; type-checked."""
    data: dict = to_dict(cls())
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise UserError(
                f"config file {p} does not exist: pass a YAML file such as configs/attentionhand_tiny.yaml"
            )
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise UserError(f"config file {p} must hold a YAML mapping at the top level")
        _merge(data, loaded)
    apply_overrides(data, overrides or [])
    return from_dict(cls, data)


def _merge(base: dict, new: dict) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


def save_config(cfg: Any, path: str | Path) -> None:
    """Write a config as YAML (atomic), loadable again with :func:`load_config`."""
    from handsynth.data.folder import atomic_write_bytes

    atomic_write_bytes(path, yaml.safe_dump(to_dict(cfg), sort_keys=False).encode())
