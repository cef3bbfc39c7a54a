"""Output paths that cannot be used: one sentence naming the path, nothing written, no traceback."""

from __future__ import annotations

import errno
import os

import pytest
from hostile_helpers import generate_argv, posed_record, record, refused, write_folder


@pytest.mark.parametrize(
    "argv",
    [
        ["render", "--maps", "mesh"],
        ["world", "render", "--domain", "lab", "--n", "1"],
        ["poses", "sample", "--n", "1"],
    ],
    ids=["render", "world-render", "poses-sample"],
)
def test_out_that_is_an_existing_file(tmp_path, capsys, argv):
    poses = write_folder(tmp_path / "poses", [posed_record(0)], images=False)
    out = tmp_path / "taken.txt"
    out.write_text("mine")
    extra = ["--in", poses] if argv[0] == "render" else []
    refused([*argv, *extra, "--out", out], capsys, str(out), unchanged=(poses, out))
    assert out.read_text() == "mine"


def test_generate_out_that_is_an_existing_file(tmp_path, capsys):
    poses = write_folder(tmp_path / "poses", [record(0)], images=False)
    out = tmp_path / "taken.txt"
    out.write_text("mine")
    refused(
        generate_argv(poses, out),
        capsys,
        str(out),
        unchanged=(poses, out),
    )


def _read_only(monkeypatch, folder):
    """Make ``folder`` read-only for the checks (root ignores permission bits, so access() is patched)."""
    real = os.access

    def access(path, mode, *a, **k):
        inside = str(os.path.abspath(path)).startswith(str(folder))
        return False if inside and mode & os.W_OK else real(path, mode, *a, **k)

    monkeypatch.setattr(os, "access", access)


@pytest.mark.parametrize("command", [["prompts"], ["caption", "--backend", "template"], ["tag"]])
def test_read_only_dataset_is_refused_before_work(tmp_path, capsys, monkeypatch, command):
    folder = write_folder(tmp_path / "d", [record(0), record(1)])
    _read_only(monkeypatch, folder)
    refused([*command, "--in", folder], capsys, "read-only", unchanged=(folder,))


def test_read_only_output_folder_is_refused(tmp_path, capsys, monkeypatch):
    write_folder(tmp_path / "poses", [record(0)], images=False)
    out = tmp_path / "ro"
    out.mkdir()
    _read_only(monkeypatch, out)
    refused(
        ["world", "render", "--domain", "lab", "--n", "1", "--out", out],
        capsys,
        "not writable",
        unchanged=(out,),
    )


def test_os_errors_become_one_sentence():
    from handsynth.cli import describe_os_error

    err = PermissionError(errno.EACCES, "Permission denied", "/data/x")
    assert (
        describe_os_error(err) == "/data/x: permission denied; check the permissions or choose another folder"
    )
    assert "read-only" in describe_os_error(OSError(errno.EROFS, "Read-only file system", "/mnt"))
    assert "no space" in describe_os_error(OSError(errno.ENOSPC, "No space left on device"))


def test_oversized_record_is_refused_by_render(tmp_path, capsys):
    poses = write_folder(tmp_path / "poses", [posed_record(0, width=50_000, height=64)], images=False)
    out = tmp_path / "out"
    refused(
        ["render", "--in", poses, "--out", out, "--maps", "mesh"],
        capsys,
        "record r000",
        "50000x64",
        unchanged=(poses,),
    )
    assert not out.exists()


def test_oversized_record_is_refused_by_generate(tmp_path, capsys):
    poses = write_folder(tmp_path / "poses", [record(0, width=50_000, height=64)], images=False)
    out = tmp_path / "out"
    refused(
        generate_argv(poses, out),
        capsys,
        "r000",
        "50000x64",
        unchanged=(poses,),
    )
    assert not out.exists()
