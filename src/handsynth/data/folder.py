"""Dataset folders: ``metadata.jsonl`` + the files it names (HF ``imagefolder``-compatible).

Crash safety: every file is written to a temporary name and renamed into place *before* its record
line is appended, and each line is flushed and fsynced. A run killed at any moment therefore leaves
either a complete sample or none (at worst an orphan file that a rerun overwrites, or a torn last
line that the next writer truncates). Resuming skips ids already present.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from handsynth.data.records import RecordError, Sample
from handsynth.data.settings import refuse_other_settings
from handsynth.errors import UserError

METADATA = "metadata.jsonl"


def metadata_path(path: str | os.PathLike) -> Path:
    """The jsonl file of a dataset given either the folder or the jsonl file itself."""
    p = Path(path)
    return p / METADATA if p.is_dir() or p.suffix != ".jsonl" else p


def dataset_root(path: str | os.PathLike) -> Path:
    """The folder that relative paths in the records are resolved against."""
    return metadata_path(path).parent


def iter_records(path: str | os.PathLike) -> Iterator[Sample]:
    """Yield the samples of a dataset folder or jsonl file, validating each (file and line in errors).

    A last line without a newline is a torn write from a killed run and is ignored.
    """
    meta = metadata_path(path)
    if not meta.exists():
        raise UserError(
            f"{meta} does not exist: expected a dataset folder holding {METADATA} or a .jsonl file"
        )
    with open(meta, encoding="utf-8") as f:
        lines = f.read().split("\n")
    # lines[-1] is "" after a final newline, or a torn write from a killed run: skipped either way.
    for lineno, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            continue
        where = f"{meta}:{lineno}"
        try:
            d = json.loads(line)
        except json.JSONDecodeError as err:
            raise RecordError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
        yield Sample.from_dict(d, where)


def read_dataset(path: str | os.PathLike) -> list[Sample]:
    """All samples of a dataset; duplicate ids are an error."""
    samples = list(iter_records(path))
    seen: set[str] = set()
    for s in samples:
        if s.id in seen:
            raise RecordError(f"{metadata_path(path)}: id {s.id!r} appears more than once")
        seen.add(s.id)
    return samples


def encode_file(rel: str, content: Any) -> bytes:
    """Bytes for a file: PNG/JPEG for images (uint16 arrays stay 16-bit), JSON for dicts."""
    if isinstance(content, bytes):
        return content
    if isinstance(content, (dict, list)):
        return json.dumps(content).encode()
    from PIL import Image

    if isinstance(content, np.ndarray):
        content = Image.fromarray(content)
    if isinstance(content, Image.Image):
        buf = io.BytesIO()
        fmt = "JPEG" if rel.lower().endswith((".jpg", ".jpeg")) else "PNG"
        content.save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        return buf.getvalue()
    raise TypeError(f"cannot write {type(content).__name__} to {rel}")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so readers never see half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_file(path: str | os.PathLike, content: Any) -> None:
    """Atomically write an image (PIL / array, format from the suffix), JSON-able object or bytes."""
    atomic_write_bytes(path, encode_file(str(path), content))


def write_metadata(path: str | os.PathLike, samples: Iterable[Sample]) -> None:
    """Replace a dataset's metadata.jsonl atomically (for stages that edit records in place)."""
    lines = "".join(json.dumps(s.to_dict(), ensure_ascii=False) + "\n" for s in samples)
    atomic_write_bytes(metadata_path(path), lines.encode("utf-8"))


class DatasetWriter:
    """Appends samples (and their files) to a dataset folder; resumes an existing one.

    ``config`` (optional) is stored in ``handsynth_run.json`` on first use; a later writer with a
    different config is refused, so two configurations never mix in one folder.
    """

    def __init__(
        self, folder: str | os.PathLike, config: dict | None = None, overwrite: bool = False
    ) -> None:
        self.root = Path(folder)
        self.root.mkdir(parents=True, exist_ok=True)
        self.meta = self.root / METADATA
        self._check_config(config, overwrite)
        self._repair_torn_line()
        self.ids: set[str] = {s.id for s in iter_records(self.root)} if self.meta.exists() else set()

    def _check_config(self, config: dict | None, overwrite: bool) -> None:
        if config is None:
            return
        cfg_path = self.root / "handsynth_run.json"
        config = json.loads(json.dumps(config))  # normalise tuples etc.
        if cfg_path.exists() and not overwrite:
            old = json.loads(cfg_path.read_text())
            how = "use a new --out folder or pass --overwrite to start it again"
            refuse_other_settings(self.root, old, config, how, what="was written with")
        else:
            atomic_write_bytes(cfg_path, json.dumps(config, indent=2, sort_keys=True).encode())

    def _repair_torn_line(self) -> None:
        if not self.meta.exists():
            return
        data = self.meta.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data[: data.rfind(b"\n") + 1]
            atomic_write_bytes(self.meta, keep)

    def has(self, sample_id: str) -> bool:
        return sample_id in self.ids

    def __len__(self) -> int:
        return len(self.ids)

    def write(self, sample: Sample, files: dict[str, Any] | None = None) -> None:
        """Write ``files`` (relative path -> PIL image, array, bytes or JSON-able), then the record."""
        if sample.id in self.ids:
            raise UserError(f"{self.root}: id {sample.id!r} is already in the dataset")
        for rel, content in (files or {}).items():
            if rel.startswith("/") or ".." in Path(rel).parts:
                raise UserError(f"file path {rel!r} of sample {sample.id} must stay inside the dataset")
            atomic_write_file(self.root / rel, content)
        line = json.dumps(sample.to_dict(), ensure_ascii=False) + "\n"
        Sample.from_dict(json.loads(line), f"sample {sample.id} being written")  # never write a bad record
        with open(self.meta, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.ids.add(sample.id)
