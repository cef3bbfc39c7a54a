"""Rendering a world dataset: samples ``start .. start+n-1`` of a :class:`WorldConfig` into a dataset
folder, in one or several processes, plus a contact sheet (what ``handsynth world render`` runs; the
demo and benchmarks call it directly)."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from pathlib import Path

import numpy as np
from PIL import Image

from handsynth.data import (
    DatasetWriter,
    atomic_write_file,
    dataset_root,
    encode_file,
    read_dataset,
    write_metadata,
)
from handsynth.data.folder import refuse_input_as_output
from handsynth.errors import UserError
from handsynth.progress import progress
from handsynth.render.maps import load_map
from handsynth.viz import contact_sheet
from handsynth.world.config import WorldConfig, sample_id
from handsynth.world.scene import WorldGenerator

SHEET_ROWS = 8

_worker_generator = None


def _init_worker(config: WorldConfig) -> None:
    global _worker_generator
    # Ctrl-C is the parent's to handle (it stops the pool and reports once): no traceback per worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Parallel workers already fill the cores: one rasteriser thread each (Mesa llvmpipe), unless set.
    os.environ.setdefault("LP_NUM_THREADS", "1")
    _worker_generator = WorldGenerator(config)


def _encoded(generator, index: int):
    """Generate sample ``index`` and encode its files to bytes here, in the worker (PNG is CPU work)."""
    sample, files = generator.generate(index)
    return sample, {rel: encode_file(rel, content) for rel, content in files.items()}


def _work(index: int):
    return _encoded(_worker_generator, index)


def render_world(
    config: WorldConfig,
    n: int,
    out: str | Path,
    start: int = 0,
    workers: int = 1,
    sheet_rows: int = SHEET_ROWS,
    overwrite: bool = False,
) -> Path:
    """Write samples ``start .. start+n-1`` of ``config`` into ``out`` (resumable); returns the contact sheet.

    Sample ``i`` depends only on (seed, domain, i), so any number of ``workers`` (processes, each with
    its own GL context) writes the same files; records are appended in index order.
    """
    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    if start < 0:
        raise UserError(f"--start must be >= 0, got {start}")
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    if config.poses:
        refuse_input_as_output(out, dataset_root(config.poses), "photos", "the --poses folder")
    writer = DatasetWriter(out, config=config.to_dict(), overwrite=overwrite, lock=True)
    todo = [i for i in range(start, start + n) if not writer.has(sample_id(config.domain, i))]
    bar = progress(total=n, initial=n - len(todo), desc=f"world {config.domain}", unit="img")
    if todo and workers == 1:
        gen = WorldGenerator(config)
        try:
            for i in todo:
                writer.write(*_encoded(gen, i))
                bar.update()
        finally:
            gen.release()
    elif todo:
        with mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(config,)) as pool:
            for sample, files in pool.imap(_work, todo, chunksize=2):
                writer.write(sample, files)
                bar.update()
    bar.close()
    _index_order(Path(out))
    return write_contact_sheet(out, rows=sheet_rows)


def _index_order(out: Path) -> None:
    """Rewrite ``metadata.jsonl`` in sample-index order when shards (``--start``) ran out of order.

    Why: records are appended as they are made, so rendering samples 15.. before 0.. into one folder
    gave another record order, and with it another contact sheet and another training data order,
    than one run; the docs promise the same files however the work was split.
    """
    samples = read_dataset(out)
    ordered = sorted(samples, key=lambda s: int(s.id.rpartition("_")[2]))
    if [s.id for s in ordered] != [s.id for s in samples]:
        write_metadata(out, ordered)


def write_contact_sheet(folder: str | Path, rows: int = SHEET_ROWS, cell: int = 160) -> Path:
    """A sheet of the folder's first samples: photo, local crop, mesh and local mesh, caption below."""
    root = Path(folder)
    samples = read_dataset(root)[:rows]
    grid, captions = [], []
    titles = ["photo", "local crop", "mesh", "local mesh"]
    for s in samples:
        row = [np.asarray(Image.open(root / s.file_name).convert("RGB"))]
        if s.local is not None and s.local.file_name:
            row.append(np.asarray(Image.open(root / s.local.file_name).convert("RGB")))
        if "mesh" in s.conditions:
            row.append(load_map("mesh", root / s.conditions["mesh"]))
        if s.local is not None and "mesh" in s.local.conditions:
            row.append(load_map("mesh", root / s.local.conditions["mesh"]))
        grid.append(row)
        captions.append(s.prompt)
    sheet = contact_sheet(
        grid, column_titles=titles[: max(len(r) for r in grid)], row_captions=captions, cell=cell
    )
    path = root / "contact_sheet.png"
    atomic_write_file(path, sheet)
    return path
