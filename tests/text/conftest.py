"""Shared fixtures for the text stage: an isolated tokenizer cache and small dataset folders."""

from __future__ import annotations

import numpy as np
import pytest

from handsynth.data.folder import DatasetWriter
from handsynth.data.records import Sample


@pytest.fixture(scope="session", autouse=True)
def _text_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the built CLIP tokenizer out of the user's home during tests."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HANDSYNTH_CACHE", str(tmp_path_factory.mktemp("handsynth_cache")))
    yield
    mp.undo()


def make_record(
    i: int, sides=("right",), prompt: str = "", obj: str | None = None, image: bool = True
) -> Sample:
    hands = [
        {
            "side": side,
            "model": "openhand",
            "global_orient": [0.0, 0.0, 0.0],
            "hand_pose": [0.0] * 45,
            "betas": [0.0] * 10,
            "transl": [0.05 * k, 0.0, 0.5],
            "joints_3d": [[0.01 * j, 0.0, 0.5] for j in range(21)],
            "joints_2d": [[10.0 + j, 12.0 + k * 5] for j in range(21)],
            "bbox": [8.0 + 20 * k, 10.0, 20.0, 20.0],
        }
        for k, side in enumerate(sides)
    ]
    d = {
        "id": f"r{i:03d}",
        "width": 32,
        "height": 32,
        "camera": {"K": [[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]]},
        "hands": hands,
        "prompt": prompt,
        "source": {"generator": "test"},
    }
    if image:
        d["file_name"] = f"images/r{i:03d}.png"
    if obj:
        d["object"] = {"name": obj}
    return Sample.from_dict(d)


def write_dataset(folder, records: list[Sample]) -> None:
    w = DatasetWriter(folder)
    rng = np.random.default_rng(0)
    for r in records:
        files = {r.file_name: rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)} if r.file_name else {}
        w.write(r, files)


@pytest.fixture
def dataset(tmp_path):
    """Four records: right hand, left hand + object, two hands, two hands + object."""
    recs = [
        make_record(0, ("right",)),
        make_record(1, ("left",), obj="006_mustard_bottle"),
        make_record(2, ("left", "right")),
        make_record(3, ("left", "right"), obj="apple"),
    ]
    folder = tmp_path / "ds"
    write_dataset(folder, recs)
    return folder


@pytest.fixture
def record():
    """The record factory: ``record(i, sides=("right",), prompt="", obj=None, image=True)``."""
    return make_record


@pytest.fixture
def write_records():
    return write_dataset
