"""WebDataset shards of a dataset folder, for large training runs that stream tar files.

Each sample becomes ``<id>.json`` (its record) plus one member per file it names, keyed
``<id>.<kind>.png`` (``image``, ``mesh``, ``local_mesh`` ...). Shards are written whole through a
temporary name, so an interrupted export resumes by skipping the shards already present.
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
        if path.exists() and len(chunk) == samples_per_shard:
            continue  # a full shard from an earlier run; the last, partial one is rewritten
        tmp = path.with_name(f".{path.name}.tmp")
        with tarfile.open(tmp, "w") as tar:
            for s in chunk:
                _add(tar, f"{s.id}.json", json.dumps(s.to_dict()).encode())
                for suffix, rel in sample_members(s).items():
                    _add(tar, f"{s.id}.{suffix}", (root / rel).read_bytes())
        os.replace(tmp, path)
    return paths
