"""WebDataset shards of a dataset folder, for large training runs that stream tar files.

Each sample becomes ``<id>.json`` (its record) plus one member per file it names, keyed
``<id>.<kind>.png`` (``image``, ``mesh``, ``local_mesh`` ...). Shards are written whole through a
temporary name, so an interrupted export resumes by skipping the shards already present that hold
exactly the records they would be written with (another ``samples_per_shard`` or a restarted folder
rewrites them), and shards past the last are removed.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

from handsynth.data.folder import dataset_root, read_dataset
from handsynth.data.records import Sample


def sample_members(sample: Sample) -> dict[str, str]:
    """WebDataset member suffix -> file path (relative to the folder) for one sample."""
    members = {}
    if sample.file_name:
        members["image" + Path(sample.file_name).suffix] = sample.file_name
    for name, rel in sample.conditions.items():
        members[f"{name}{Path(rel).suffix}"] = rel
    if sample.local is not None:
        if sample.local.file_name:
            members["local_image" + Path(sample.local.file_name).suffix] = sample.local.file_name
        for name, rel in sample.local.conditions.items():
            members[f"local_{name}{Path(rel).suffix}"] = rel
    return members


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # reproducible shards
    tar.addfile(info, io.BytesIO(data))


def write_shards(
    folder: str | os.PathLike, out_dir: str | os.PathLike, samples_per_shard: int = 1000
) -> list[Path]:
    """Pack ``folder`` into ``out_dir/shard-%06d.tar``; returns the shard paths (existing ones kept)."""
    root = dataset_root(folder)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    samples = read_dataset(folder)
    paths = []
    for k, start in enumerate(range(0, len(samples), samples_per_shard)):
        path = out / f"shard-{k:06d}.tar"
        paths.append(path)
        chunk = samples[start : start + samples_per_shard]
        if len(chunk) == samples_per_shard and _holds(path, chunk):
            continue  # a full shard an earlier run wrote with these records; the last one is rewritten
        tmp = path.with_name(f".{path.name}.tmp")
        with tarfile.open(tmp, "w") as tar:
            for s in chunk:
                _add(tar, f"{s.id}.json", _record_bytes(s))
                for suffix, rel in sample_members(s).items():
                    _add(tar, f"{s.id}.{suffix}", (root / rel).read_bytes())
        os.replace(tmp, path)
    for old in out.glob("shard-*.tar"):  # past the last shard: left by a run with smaller shards
        if old not in paths:
            old.unlink()
    return paths


def _record_bytes(sample: Sample) -> bytes:
    return json.dumps(sample.to_dict()).encode()


def _holds(path: Path, chunk: list[Sample]) -> bool:
    """Whether the shard at ``path`` holds exactly ``chunk``'s members and records.

    Why: a shard kept on its name alone is wrong when an earlier run used another --shards size
    (records missing or in two shards) or wrote other records under the same ids (--overwrite). The
    records name everything that made their files, so equal records mean equal images.
    """
    want = {f"{s.id}.json": _record_bytes(s) for s in chunk}
    names = {f"{s.id}.{suffix}" for s in chunk for suffix in sample_members(s)} | set(want)
    try:
        with tarfile.open(path) as tar:
            members = tar.getmembers()
            if {m.name for m in members} != names or len(members) != len(names):
                return False
            for m in members:
                if m.name in want:
                    f = tar.extractfile(m)
                    if f is None or f.read() != want[m.name]:
                        return False
    except (OSError, tarfile.TarError):
        return False  # missing or cut short: written again
    return True
