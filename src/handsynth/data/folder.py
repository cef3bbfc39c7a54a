"""Dataset folders: ``metadata.jsonl`` + the files it names (HF ``imagefolder``-compatible).

Crash safety: every file is written to a temporary name and renamed into place *before* its record
line is appended, and each line is flushed and fsynced. A run killed at any moment therefore leaves
either a complete sample or none (at worst an orphan file that a rerun overwrites, or a torn last
line that the next writer truncates). Resuming skips ids already present.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from handsynth.atomic import atomic_write_bytes as _atomic_write_bytes
from handsynth.data.lock import FolderLock, check_output_folder
from handsynth.data.records import RecordError, Sample
from handsynth.data.settings import refuse_other_settings
from handsynth.errors import UserError

log = logging.getLogger(__name__)
METADATA = "metadata.jsonl"


def metadata_path(path: str | os.PathLike) -> Path:
    """The jsonl file of a dataset given either the folder or the jsonl file itself."""
    p = Path(path)
    return p / METADATA if p.is_dir() or p.suffix != ".jsonl" else p


def refuse_input_as_output(
    out: str | os.PathLike, inp: str | os.PathLike, what: str, input_name: str = "the input folder"
) -> None:
    """Refuse an ``--out`` that is the dataset ``inp`` a command reads: writing there (above all with
    ``--overwrite``) would replace the input's records."""
    if metadata_path(inp).resolve() == (Path(out) / METADATA).resolve():
        raise UserError(f"--out {out} is {input_name}; pass a new folder for the {what}")


def refuse_dataset_as_output(out: str | os.PathLike, what: str) -> None:
    """Refuse an ``--out`` that holds a dataset, for commands that write runs or reports, not records."""
    if (Path(out) / METADATA).exists():
        raise UserError(f"--out {out} is a dataset folder; pass a new folder for the {what}")


def dataset_root(path: str | os.PathLike) -> Path:
    """The folder that relative paths in the records are resolved against."""
    return metadata_path(path).parent


def split_torn_tail(data: bytes) -> tuple[bytes, bytes]:
    """``data`` split into its whole lines and a torn last line (``b""`` when there is none).

    A last line without a newline that parses as JSON is a complete record whose writer (a person, an
    editor, another tool) simply left out the final newline: it belongs to the whole part. Only an
    unparsable last line is a torn write from a killed run.
    """
    if not data or data.endswith(b"\n"):
        return data, b""
    cut = data.rfind(b"\n") + 1
    tail = data[cut:]
    try:
        json.loads(tail.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return data[:cut], tail
    return data + b"\n", b""


# A symlink may leave the folder only for an image: `handsynth prepare --link symlink` links each
# image to the dataset as its authors shipped it. Any other target outside (a key, a config, /etc/...)
# is refused, so a crafted folder cannot make a stage copy or serve a private file.
LINKABLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


class Confinement:
    """Checks that record paths resolve (through symlinks) inside one folder, cheaply.

    Each folder a record names is resolved once (``conditions/mesh/`` for all records), then each
    file costs one ``lstat``: only a file that is itself a symlink is resolved. A path that resolves
    outside (through a linked file or folder) is allowed only for an image (:data:`LINKABLE_SUFFIXES`),
    as ``handsynth prepare`` links them (``images/`` files, ``render/images -> ../images``).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = root.resolve()
        self._folders: dict[str, Path] = {}

    def _inside(self, target: Path) -> bool:
        return target == self.base or self.base in target.parents

    def where(self, rel: str) -> Path | None:
        """``None`` when ``rel`` may be read, else where it resolves to (outside the folder)."""
        folder, _, name = rel.rpartition("/")
        if folder not in self._folders:
            self._folders[folder] = (self.root / folder).resolve()
        path = self.root / rel
        target = path.resolve() if path.is_symlink() else self._folders[folder] / name
        if self._inside(target):
            return None
        linked_image = target.suffix.lower() in LINKABLE_SUFFIXES and rel.lower().endswith(LINKABLE_SUFFIXES)
        return None if linked_image else target

    def check(self, sample: Sample, where: str) -> None:
        """Refuse a record whose files resolve outside the folder, naming the field."""
        for field_name, rel in sample.paths().items():
            target = self.where(rel)
            if target is not None:
                raise RecordError(
                    f"{where} (id {sample.id}): field '{field_name}' ({rel!r}) resolves to {target}, "
                    f"outside the dataset folder {self.base} (only images may be linked from elsewhere); "
                    "copy the file into the folder"
                )


def iter_records(path: str | os.PathLike) -> Iterator[Sample]:
    """Yield the samples of a dataset folder or jsonl file, validating each (file and line in errors).

    A last line without a newline is still a record when it parses; an unparsable one is a torn write
    from a killed run, skipped with a warning. Every path a record names must stay inside the folder.
    """
    meta = metadata_path(path)
    if not meta.exists():
        raise UserError(
            f"{meta} does not exist: expected a dataset folder holding {METADATA} or a .jsonl file"
        )
    if meta.is_dir():
        raise UserError(f"{meta} is a folder, not a {METADATA} file; pass the dataset folder that holds it")
    whole, torn = split_torn_tail(read_bytes_or_fail(meta))
    if torn:
        lineno = whole.count(b"\n") + 1
        log.warning(
            "%s:%d: ignoring a torn last line (%d bytes, no newline, not JSON)", meta, lineno, len(torn)
        )
    confinement = Confinement(meta.parent)
    for lineno, raw in enumerate(whole.split(b"\n")[:-1], start=1):
        where = f"{meta}:{lineno}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise RecordError(
                f"{where}: not valid UTF-8 (byte {err.start + 1} of the line); save the file as UTF-8"
            ) from None
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as err:
            raise RecordError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
        except RecursionError:
            raise RecordError(f"{where}: JSON nested too deeply to be a record") from None
        sample = Sample.from_dict(d, where)
        confinement.check(sample, where)
        yield sample


def read_bytes_or_fail(path: Path) -> bytes:
    """The bytes of a file the user named, or a one-sentence error saying why it cannot be read."""
    try:
        return path.read_bytes()
    except PermissionError:
        raise UserError(f"{path} is not readable (permission denied); fix its permissions") from None
    except OSError as err:
        raise UserError(f"{path} cannot be read ({err.strerror})") from None


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
    _atomic_write_bytes(path, data, fsync=True)


def atomic_write_file(path: str | os.PathLike, content: Any) -> None:
    """Atomically write an image (PIL / array, format from the suffix), JSON-able object or bytes."""
    atomic_write_bytes(path, encode_file(str(path), content))


def write_metadata(path: str | os.PathLike, samples: Iterable[Sample]) -> None:
    """Replace a dataset's metadata.jsonl atomically (for stages that edit records in place).

    When the file being replaced ends in a torn line, the original is first kept whole as
    ``metadata.jsonl.bak``: a user's input file never loses a line without a copy.
    """
    meta = metadata_path(path)
    lines = "".join(json.dumps(s.to_dict(), ensure_ascii=False) + "\n" for s in samples)
    backup_torn(meta)
    atomic_write_bytes(meta, lines.encode("utf-8"))


def backup_torn(meta: Path) -> Path | None:
    """Copy ``meta`` to ``<meta>.bak`` when its last line is torn (about to be dropped); returns the copy."""
    if not meta.is_file():
        return None
    data = meta.read_bytes()
    if not split_torn_tail(data)[1]:
        return None
    backup = meta.with_name(meta.name + ".bak")
    atomic_write_bytes(backup, data)
    log.warning("%s ended in a torn line; the original is kept as %s", meta, backup)
    return backup


def truncate_step_log(path: str | os.PathLike, step: int) -> int:
    """Drop the lines of a training log (jsonl with ``"step"``) after ``step``; returns how many.

    Why: a run killed between logging and checkpointing logged steps its checkpoint does not hold; a
    resume from that checkpoint logs them again. Cutting the log to the checkpoint's step keeps each
    step once. Lines that do not parse (a torn last write) are dropped too.
    """
    path = Path(path)
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1
            continue
        if isinstance(entry, dict) and isinstance(entry.get("step"), int) and entry["step"] > step:
            dropped += 1
            continue
        kept.append(line + "\n")
    if dropped:
        atomic_write_bytes(path, "".join(kept).encode("utf-8"))
    return dropped


def sweep_temp_files(root: Path) -> int:
    """Remove temporary files (``.NAME.XXXX.tmp``) that writes cut short by a kill left in ``root``."""
    swept = 0
    for tmp in root.rglob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            swept += 1
    if swept:
        log.info("removed %d temporary files left by an interrupted run in %s", swept, root)
    return swept


def check_editable(path: str | os.PathLike) -> None:
    """Refuse, before any work, to edit a dataset in place when its folder or file cannot be written."""
    meta = metadata_path(path)
    if not os.access(meta.parent, os.W_OK | os.X_OK) or (meta.exists() and not os.access(meta, os.W_OK)):
        raise UserError(
            f"{meta} cannot be rewritten (read-only); copy the dataset to a writable folder first"
        )


def strict_json(obj: Any, what: str) -> str:
    """JSON text without NaN/Infinity (which strict readers reject), or an error naming ``what``."""
    try:
        return json.dumps(obj, ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise UserError(
            f"{what} holds a NaN or infinite number; check the numbers passed to the command"
        ) from None


class DatasetWriter:
    """Appends samples (and their files) to a dataset folder; resumes an existing one.

    ``config`` (optional) is stored in ``handsynth_run.json`` on first use; a later writer with a
    different config is refused, so two configurations never mix in one folder; ``overwrite`` restarts
    the folder (earlier records and settings forgotten). ``lock`` takes the folder's exclusive lock
    (:mod:`handsynth.data.lock`) for as long as the writer lives.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        config: dict | None = None,
        overwrite: bool = False,
        lock: bool = False,
    ) -> None:
        self.root = Path(folder)
        check_output_folder(self.root)
        if lock:  # held while the writer lives: a second run into the folder is refused
            self.lock = FolderLock(self.root)
            sweep_temp_files(self.root)  # only safe under the lock: no other writer is mid-write
        self.root.mkdir(parents=True, exist_ok=True)
        self.meta = self.root / METADATA
        if overwrite and self.meta.exists():
            # a restart forgets the earlier records (their files are replaced as the new run makes them);
            # keeping them made a rerun with other settings skip their ids and mix two runs in one folder
            self.meta.unlink()
        self._check_config(config, overwrite)
        self._repair_torn_line()
        self.ids: set[str] = {s.id for s in iter_records(self.root)} if self.meta.exists() else set()

    def _check_config(self, config: dict | None, overwrite: bool) -> None:
        if config is None:
            return
        cfg_path = self.root / "handsynth_run.json"
        config = json.loads(strict_json(config, f"the settings of {self.root}"))  # normalise tuples etc.
        if cfg_path.exists() and not overwrite:
            old = json.loads(cfg_path.read_text())
            how = "use a new --out folder or pass --overwrite to start it again"
            refuse_other_settings(self.root, old, config, how, what="was written with")
        else:
            atomic_write_bytes(cfg_path, json.dumps(config, indent=2, sort_keys=True).encode())

    def _repair_torn_line(self) -> None:
        """End the file on a whole line: a complete last record gets its newline, a torn one is dropped."""
        if not self.meta.exists():
            return
        data = self.meta.read_bytes()
        whole, _ = split_torn_tail(data)
        if whole != data:
            backup_torn(self.meta)
            atomic_write_bytes(self.meta, whole)

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
        line = strict_json(sample.to_dict(), f"sample {sample.id}") + "\n"
        Sample.from_dict(json.loads(line), f"sample {sample.id} being written")  # never write a bad record
        with open(self.meta, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.ids.add(sample.id)
