"""Reading and writing the pose commands' datasets (shared by ``poses/cli.py`` and the grasp commands):
inputs with their mesh paths made absolute, outputs appended through ``DatasetWriter`` (resumable)."""

from __future__ import annotations

import copy
from pathlib import Path

from handsynth.data.folder import dataset_root, refuse_input_as_output
from handsynth.data.records import Sample
from handsynth.errors import UserError


def _read(path: str, flag: str) -> list[Sample]:
    from handsynth.data.folder import metadata_path, read_dataset

    if not metadata_path(path).exists():
        raise UserError(f"{flag} {path} holds no records: pass a dataset folder or a .jsonl file")
    from handsynth.data.carry import absolute_mesh_paths

    samples = read_dataset(path)  # duplicate ids are refused: outputs are keyed by id
    if not samples:
        raise UserError(f"{flag} {path} holds no records: pass a dataset with at least one record")
    root = dataset_root(path)
    for s in samples:  # relative mesh paths stay valid wherever the record is written or mixed
        if s.extra.get("objects"):
            s.extra["objects"] = absolute_mesh_paths(s.extra["objects"], root)
    return samples


def _write(out: str, config: dict, overwrite: bool, samples: list[Sample], src_root: Path, desc: str) -> int:
    """Append ``samples`` (read from ``src_root``) to the dataset folder ``out``, skipping ids already
    there (a resumed run)."""
    from handsynth.data.carry import carry_record
    from handsynth.data.folder import DatasetWriter
    from handsynth.progress import progress

    if src_root != Path("."):  # (poses rest reads no dataset)
        refuse_input_as_output(out, src_root, f"{desc} records")
    seen: set[str] = set()
    for s in samples:  # skipping ids already written must never also drop a repeat within this run
        if s.id in seen:
            raise RuntimeError(f"{desc}: record id {s.id!r} would be written twice (a bug in this command)")
        seen.add(s.id)
    writer = DatasetWriter(Path(out), config=config, overwrite=overwrite, lock=True)
    done = 0
    with progress(total=len(samples), desc=desc, unit="record") as bar:
        for s in samples:
            if not writer.has(s.id):
                writer.write(*carry_record(s, src_root, writer.root))
                done += 1
            bar.update()
    writer.meta.touch()  # no record kept (e.g. no valid grasp) is still a dataset: the path printed exists
    print(writer.meta)
    return done


def _check_report(path: str | None) -> None:
    """Refuse a report path that cannot take a PNG before any record is written."""
    if path is not None and (not path.lower().endswith(".png") or Path(path).is_dir()):
        raise UserError(f"--report {path} must be a .png file path (not a folder)")


def _with_source(sample: Sample, step: dict, new_id: str | None = None) -> Sample:
    out = copy.deepcopy(sample)
    out.source = {**out.source, "handbooster": {**out.source.get("handbooster", {}), **step}}
    if new_id is not None:
        out.id = new_id
    return out
