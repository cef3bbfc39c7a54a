"""Rendering a pose dataset: every record -> its condition maps in a dataset folder, plus a contact
sheet (what ``handsynth render`` runs; the demo and benchmarks call it directly)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from handsynth.data import DatasetWriter, atomic_write_file, dataset_root, read_dataset
from handsynth.data.carry import carry_files
from handsynth.data.folder import refuse_input_as_output
from handsynth.data.images import load_rgb
from handsynth.data.records import LocalCrop, Sample
from handsynth.errors import UserError
from handsynth.progress import progress
from handsynth.render.conditions import ConditionRenderer, scale_sample
from handsynth.render.maps import load_map
from handsynth.viz import contact_sheet

DEFAULT_SHEET_ROWS = 8


def _resized_photo(path: Path, size: int, where: str) -> np.ndarray:
    """The record's photo at the rendered size (the labels were scaled with it); a missing or broken file
    is one sentence naming the record."""
    return np.asarray(load_rgb(path, where).resize((size, size), Image.BICUBIC))


def _scaled(sample: Sample, size: int) -> Sample:
    """``scale_sample`` to size², keeping a local photo when the scaling is the same along both axes (its
    crop then shows the same part of the scene, in the scaled box)."""
    out = scale_sample(sample, size, size)
    photo = sample.local
    if out is not sample and photo is not None and photo.file_name and sample.width == sample.height:
        f = size / sample.width
        out.local = LocalCrop(box=[v * f for v in photo.box], size=photo.size, file_name=photo.file_name)
    return out


def render_dataset(
    poses: str | Path,
    out: str | Path,
    maps: tuple[str, ...],
    size: int | None = None,
    hand_model: str | None = None,
    mano_dir: str | Path | None = None,
    local: bool = True,
    expand: float = 1.25,
    sheet_rows: int = DEFAULT_SHEET_ROWS,
    objects: bool = True,
    overwrite: bool = False,
) -> Path:
    """Render every record of ``poses`` into ``out`` (resumable; ``overwrite`` restarts it); returns the
    contact sheet path.

    The records' ``objects`` are drawn too (``objects=False``: hands only); relative mesh paths are
    read from ``poses``' folder and written out as absolute paths, so the new records still find them.
    """
    samples = read_dataset(poses)
    if not samples:
        raise UserError(f"{poses} holds no records to render")
    config = {
        "stage": "render",
        "maps": list(maps),
        "size": size,
        "hand_model": hand_model,
        "local": local,
        "expand": expand,
    }
    if not objects:
        config["objects"] = False  # only when set, so folders rendered before objects existed resume
    root_in = dataset_root(poses)
    renderer = ConditionRenderer(
        hand_model=hand_model, model_dir=mano_dir, expand=expand, data_root=root_in, objects=objects
    )
    for s in samples:  # every record is checked before anything is written
        renderer.check_record(scale_sample(s, size, size) if size is not None else s)
        resized = size is not None and s.file_name and (s.width, s.height) != (size, size)
        if resized and not (root_in / s.file_name).is_file():  # resized, not linked: it must be there
            raise UserError(
                f"record {s.id}: its photo {root_in / s.file_name} does not exist, so --size {size} "
                "cannot resize it; fix file_name or render without --size"
            )
    refuse_input_as_output(out, root_in, "rendered dataset")
    writer = DatasetWriter(out, config=config, overwrite=overwrite, lock=True)
    stretched = [s for s in samples if size is not None and s.width != s.height]
    if stretched:  # said before the work starts, so a user who wanted square crops can stop it
        first = stretched[0]
        print(
            f"handsynth: note: {len(stretched)} of {len(samples)} records are not square (e.g. {first.id}, "
            f"{first.width}x{first.height}): --size {size} stretches their photos and maps to {size}x{size} "
            "(the labels and K follow the stretch exactly, but hands look squashed); crop them square first "
            "to keep the hands' proportions",
            file=sys.stderr,
        )
    rows, captions = [], []
    todo = [s for s in samples if not writer.has(s.id)]
    done = len(samples) - len(todo)  # a resumed run counts on from what is there (the rate: new work only)
    for sample in progress(todo, total=len(samples), initial=done, desc="render", unit="pose"):
        resized = size is not None and (sample.width, sample.height) != (size, size)
        if size is not None:
            sample = _scaled(sample, size)
        sample.source = {**sample.source, "rendered_with": hand_model or "record"}
        # a local photo keeps its crop (new local maps drawn in its box); resizing drops it (scale_sample)
        sample, files = renderer.render_into(sample, maps, local=local, keep_local_photo=True)
        if resized:  # maps the input had are at its old size: only the ones just rendered stay
            sample.conditions = {k: v for k, v in sample.conditions.items() if k in maps}
            if sample.file_name:
                files[sample.file_name] = _resized_photo(
                    root_in / sample.file_name, size, f"record {sample.id}"
                )
        # the photo and the maps the input already had stay readable from the output (linked)
        files = {**carry_files(sample, root_in, writer.root, skip=files), **files}
        writer.write(sample, files)
    if renderer.body_empty:
        print(
            f"handsynth: note: {len(renderer.body_empty)} of {len(todo)} records carry no body data "
            f"(body.forearms or body.keypoints_2d), so their body map is empty (e.g. {renderer.body_empty[0]})",
            file=sys.stderr,
        )
    # The sheet is drawn from the folder, so a resumed run shows the same first samples.
    root = Path(out)
    for s in read_dataset(root)[:sheet_rows]:
        row = [load_map(m, root / s.conditions[m]) for m in maps]
        if s.local is not None:
            row += [
                load_map(m, root / s.local.conditions[m]) for m in maps if m in ("mesh", "normal", "texture")
            ]
        rows.append(row)
        captions.append(
            f"{s.id}  " + ", ".join(f"{h.side}" for h in s.hands) + (f"  {s.prompt}" if s.prompt else "")
        )
    titles = list(maps) + [f"local {m}" for m in maps if local and m in ("mesh", "normal", "texture")]
    sheet = contact_sheet(rows, column_titles=titles, row_captions=captions, caption_lines=1)
    sheet_path = root / "contact_sheet.png"
    atomic_write_file(sheet_path, sheet)
    return sheet_path
