"""Atomic writes: whole files only, and the permissions a plain ``open`` would give (not mkstemp's 0600)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from handsynth.atomic import atomic_open, atomic_write_bytes, file_mode
from handsynth.data.folder import DatasetWriter
from handsynth.data.records import Sample


@pytest.fixture
def umask():
    def set_mask(mask: int) -> None:
        os.umask(mask)
        file_mode.cache_clear()

    old = os.umask(0o022)
    yield set_mask
    os.umask(old)
    file_mode.cache_clear()


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_follow_the_umask(tmp_path, umask):
    for mask, want in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        umask(mask)
        p = tmp_path / f"m{mask:o}" / "a.bin"
        atomic_write_bytes(p, b"x")
        with open(tmp_path / f"plain{mask:o}", "wb"):
            pass
        assert _mode(p) == want == _mode(tmp_path / f"plain{mask:o}")
    umask(0o022)
    w = DatasetWriter(tmp_path / "ds")
    K = [[4.0, 0, 2], [0, 4.0, 2], [0, 0, 1]]
    rec = {"id": "r0", "width": 4, "height": 4, "camera": {"K": K}, "image": "images/r0.png", "hands": []}
    w.write(Sample.from_dict(rec), {"images/r0.png": np.zeros((4, 4, 3), np.uint8)})
    assert _mode(tmp_path / "ds" / "images" / "r0.png") == 0o644


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "f.txt"
    atomic_write_bytes(p, b"old")
    with pytest.raises(RuntimeError), atomic_open(p) as f:
        f.write(b"half")
        raise RuntimeError("killed")
    assert p.read_bytes() == b"old" and sorted(x.name for x in tmp_path.iterdir()) == ["f.txt"]
