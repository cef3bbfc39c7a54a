"""A record copied into another dataset folder: the files it names stay readable from there.

Images are linked to the input's files (as ``handsynth prepare`` links them), other files copied, and
relative object mesh paths (``objects[].mesh``) made absolute. Used by every command that writes a
subset or a variant of its input (``poses ...``, ``filter``, ``render``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection
from pathlib import Path

from handsynth.data.folder import LINKABLE_SUFFIXES
from handsynth.data.records import WORLD_MESH_PREFIX, Sample


def carry_files(
    sample: Sample, src_root: Path, out_root: Path, skip: Collection[str] = ()
) -> dict[str, bytes]:
    """Link the images ``sample`` names from ``src_root`` into ``out_root``; return the other files'
    bytes (for the writer). Missing ones stay unnamed in the output as they were in the input;
    ``skip``: paths the caller writes itself (e.g. maps just rendered).

    A file already at a linked path is replaced unless it is this very link (a resumed run): after
    ``--overwrite`` from another input, or a crashed run, it belongs to another record of the same id.
    """
    copies: dict[str, bytes] = {}
    for rel in sample.paths().values():
        src, dst = src_root / rel, out_root / rel
        if rel in skip or not src.is_file():
            continue
        if rel.lower().endswith(LINKABLE_SUFFIXES):
            target = src.resolve()
            # this very link, or the input's photo is the file there (replacing it would loop the link)
            if Path(os.path.realpath(dst)) == target:
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.link.tmp")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(target)
            os.replace(tmp, dst)
        else:
            copies[rel] = src.read_bytes()
    return copies


def absolute_mesh_paths(objects: list[dict], root: str | os.PathLike) -> list[dict]:
    """``objects`` with relative mesh paths made absolute (read from ``root``), so the record still
    finds its meshes from another folder."""
    out = []
    for o in objects:
        mesh = o.get("mesh")
        if mesh and not mesh.startswith(WORLD_MESH_PREFIX) and not Path(mesh).is_absolute():
            o = {**o, "mesh": str((Path(root) / mesh).resolve())}
        out.append(o)
    return out


def carry_record(sample: Sample, src_root: Path, out_root: Path) -> tuple[Sample, dict[str, bytes]]:
    """``sample`` ready to be written into ``out_root`` (mesh paths absolute) and the files to copy."""
    if sample.extra.get("objects"):
        objects = absolute_mesh_paths(sample.extra["objects"], src_root)
        sample = dataclasses.replace(sample, extra={**sample.extra, "objects": objects})
    return sample, carry_files(sample, src_root, out_root)
