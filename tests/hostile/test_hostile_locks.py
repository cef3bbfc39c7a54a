"""Two runs into one folder: the second is refused at once, naming the first; nothing is written."""

from __future__ import annotations

import pytest
from hostile_helpers import generate_argv, posed_record, record, refused, run_cli, write_folder


def FolderLock(*args, **kwargs):
    from handsynth.data.lock import FolderLock as lock

    return lock(*args, **kwargs)


@pytest.fixture
def poses(tmp_path):
    return write_folder(tmp_path / "poses", [posed_record(0)], images=False)


def _commands(poses, out):
    return {
        "render": ["render", "--in", poses, "--out", out, "--maps", "mesh", "--size", "64"],
        "world-render": ["world", "render", "--domain", "lab", "--n", "1", "--size", "64", "--out", out],
        "generate": generate_argv(poses, out),
    }


@pytest.mark.parametrize("name", ["render", "world-render", "generate"])
def test_second_run_into_a_locked_folder_is_refused(tmp_path, capsys, poses, name):
    out = tmp_path / "out"
    argv = _commands(poses, out)[name]
    with FolderLock(out, command="handsynth first-run"):
        refused(argv, capsys, str(out), "first-run", unchanged=(out, poses))
    assert not (out / "metadata.jsonl").exists()


def test_caption_refuses_while_the_dataset_is_locked(tmp_path, capsys):
    folder = write_folder(tmp_path / "d", [record(0)])
    with FolderLock(folder, command="handsynth caption --in d"):
        refused(
            ["caption", "--backend", "template", "--in", folder],
            capsys,
            "another handsynth run",
            unchanged=(folder,),
        )
    rc, _, err = run_cli(["caption", "--backend", "template", "--in", folder], capsys)
    assert rc == 0, err  # released: the same command now runs


def test_render_runs_after_the_lock_is_released(tmp_path, capsys, poses):
    out = tmp_path / "out"
    FolderLock(out, command="x").release()
    rc, _, err = run_cli(_commands(poses, out)["render"], capsys)
    assert rc == 0, err
    rc, _, err = run_cli(_commands(poses, out)["render"], capsys)  # its own lock was released at the end
    assert rc == 0, err


def test_ranks_of_one_run_do_not_collide(tmp_path):
    with FolderLock(tmp_path / "out", rank=0), FolderLock(tmp_path / "out", rank=1):
        pass
