"""Writing a file atomically: a temporary file beside it, then a rename, so a reader (or a resumed run)
never sees half a file. ``tempfile.mkstemp`` creates the temporary file readable by its owner only; the
finished file gets the permissions of a plain ``open`` (0666 less the umask), so a lab group can read a
shared dataset."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@functools.cache
def file_mode() -> int:
    """0o666 less the process umask (read once: ``os.umask`` can only be read by setting it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_open(path: str | os.PathLike, fsync: bool = False) -> Iterator[BinaryIO]:
    """A binary file object whose content replaces ``path`` when the block ends without an error
    (parent folders created; ``fsync`` to survive a power cut, not only a killed process)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = False) -> None:
    """Replace ``path`` with ``data`` atomically."""
    with atomic_open(path, fsync=fsync) as f:
        f.write(data)
