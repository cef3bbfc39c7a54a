"""Content hashes of checkpoints and bases, so every generated record names exactly what made it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

_CHUNK = 1 << 22
_memo: dict[tuple, str] = {}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))


def tree_sha256(path: str | os.PathLike) -> str:
    """sha256 over a file, or over a folder's files (relative path + content, sorted): a checkpoint's id.

    Memoised per (path, sizes, mtimes), so a multi-GB checkpoint is read once per process.
    """
    root = Path(path)
    files = _files(root)
    key = (str(root.resolve()), tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))
    if key in _memo:
        return _memo[key]
    h = hashlib.sha256()
    for p in files:
        rel = p.name if root.is_file() else p.relative_to(root).as_posix()
        h.update(rel.encode() + b"\x00")
        with open(p, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        h.update(b"\x00")
    _memo[key] = h.hexdigest()
    return _memo[key]


def base_fingerprint(path: str | os.PathLike) -> str:
    """A cheap id of a diffusers base folder: its configs' content and its weight files' sizes.

    Hashing every weight of a 4 GB base on each start costs seconds; configs plus exact byte sizes
    tell two bases apart in practice, and the method checkpoint (the trained part) is hashed in full.
    """
    root = Path(path)
    if not root.exists():
        return f"hub:{path}"
    h = hashlib.sha256()
    for p in _files(root):
        rel = p.relative_to(root).as_posix() if root.is_dir() else p.name
        h.update(rel.encode() + b"\x00")
        if p.suffix in WEIGHT_SUFFIXES:
            h.update(str(p.stat().st_size).encode())
        else:
            h.update(p.read_bytes())
        h.update(b"\x00")
    return h.hexdigest()


def module_sha256(module: nn.Module) -> str:
    """sha256 of an in-memory module's state dict (for methods built in code rather than loaded)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode() + b"\x00")
        h.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()
