"""The job's background writer: samples whole and in order, shared files once, errors not lost."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from handsynth.data import DatasetWriter, read_dataset
from handsynth.generate import job as job_module
from handsynth.generate.job import SampleWriter
from handsynth.generate.plan import WorkItem
from handsynth.methods.synthetic import write_synthetic_dataset


def _items(tmp_path, n=3):
    samples = read_dataset(write_synthetic_dataset(tmp_path / "in", n=1, size=32))
    return [
        WorkItem(index=i, sample=samples[0], prompt_index=i, prompt="a hand", seed=i, out_id=f"x_{i}")
        for i in range(n)
    ]


def _record(item):
    import copy

    rec = copy.deepcopy(item.sample)
    rec.id, rec.file_name = item.out_id, f"images/{item.out_id}.png"
    return rec


def test_writes_files_then_records_in_order_and_shared_files_once(tmp_path, monkeypatch):
    writes = []
    real = job_module.atomic_write_file
    monkeypatch.setattr(job_module, "atomic_write_file", lambda p, c: (writes.append(p.name), real(p, c)))
    out = tmp_path / "out"
    part = DatasetWriter(out / "part")
    writer = SampleWriter(out, part, max_pending=1)
    shared = {"conditions/mesh/pose.png": Image.new("RGB", (8, 8))}
    for it in _items(tmp_path):
        own = {f"images/{it.out_id}.png": np.full((8, 8, 3), it.index, np.uint8)}
        writer.submit(it, _record(it), shared, own)
    writer.close()
    assert writer.count == 3 and [s.id for s in read_dataset(out / "part")] == ["x_0", "x_1", "x_2"]
    assert writes == ["pose.png", "x_0.png", "x_1.png", "x_2.png"]  # the pose's map once
    assert np.asarray(Image.open(out / "images/x_2.png")).max() == 2


def test_an_error_on_the_writer_thread_reaches_the_caller(tmp_path):
    out = tmp_path / "out"
    writer = SampleWriter(out, DatasetWriter(out / "part"))
    it = _items(tmp_path, 1)[0]
    writer.submit(it, _record(it), {}, {"images/bad.xyz": object()})  # no encoder for this
    with pytest.raises(Exception):  # noqa: B017 - whatever the encoder raises, it is not swallowed
        writer.close()
    assert not (out / "part" / "metadata.jsonl").exists() or read_dataset(out / "part") == []
