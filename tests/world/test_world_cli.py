"""``handsynth world render``: argument checks, dataset folders, resume, workers, contact sheet."""

from __future__ import annotations

import argparse
import hashlib
import os

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import pytest

from handsynth.data import read_dataset
from handsynth.errors import UserError
from handsynth.world.cli import config_from_args, register
from handsynth.world.dataset import render_world


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="handsynth")
    register(p.add_subparsers(dest="command"))
    return p.parse_args(argv)


def digest(folder) -> dict[str, str]:
    """sha256 of every file in a dataset folder (except the contact sheet's name-independent bits)."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            path = os.path.join(root, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return out


ARGS = ["world", "render", "--domain", "wild", "--size", "48", "--seed", "3", "--maps", "mesh"]


def test_cli_writes_a_readable_dataset_and_resumes(tmp_path):
    out = tmp_path / "w"
    args = parse([*ARGS, "--n", "3", "--out", str(out)])
    assert args.func(args) == 0
    first = digest(out)
    samples = read_dataset(out)
    assert [s.id for s in samples] == ["wild_000000", "wild_000001", "wild_000002"]
    assert (out / "contact_sheet.png").exists()
    for s in samples:
        assert (out / s.file_name).exists() and (out / s.conditions["mesh"]).exists()
        assert (out / s.local.file_name).exists() and (out / s.local.conditions["mesh"]).exists()
        assert s.prompt and s.hands[0].side in s.prompt
    # Resume with more: the first three files are untouched, two are added.
    args = parse([*ARGS, "--n", "5", "--out", str(out)])
    assert args.func(args) == 0
    second = digest(out)
    assert all(second[k] == v for k, v in first.items() if k != "contact_sheet.png" and k != "metadata.jsonl")
    assert len(read_dataset(out)) == 5
    # Another setting in the same folder is refused, naming the setting.
    args = parse([*ARGS[:-2], "--maps", "seg", "--n", "5", "--out", str(out)])
    with pytest.raises(UserError, match="maps"):
        args.func(args)
    # ... unless restarted: the folder then holds the new settings' records only
    args = parse([*ARGS[:-2], "--maps", "seg", "--n", "2", "--out", str(out), "--overwrite"])
    assert args.func(args) == 0
    samples = read_dataset(out)
    assert len(samples) == 2 and all(set(s.conditions) == {"seg"} for s in samples)
    args = parse([*ARGS, "--n", "1", "--poses", str(out), "--out", str(out), "--overwrite"])
    with pytest.raises(UserError, match="is the --poses folder"):
        args.func(args)
    assert len(read_dataset(out)) == 2


def test_workers_write_the_same_files(tmp_path):
    cfg = config_from_args(parse([*ARGS, "--n", "4", "--out", "unused"]))
    render_world(cfg, 4, tmp_path / "one", workers=1)
    render_world(cfg, 4, tmp_path / "two", workers=2)
    a, b = digest(tmp_path / "one"), digest(tmp_path / "two")
    assert a == b


def test_shards_rendered_out_of_order_give_the_files_of_one_run(tmp_path):
    """--start shards into one folder, the second half first: the same files as one run, records
    (and so the contact sheet and any training order) in sample order."""
    cfg = config_from_args(parse([*ARGS, "--n", "4", "--out", "unused"]))
    render_world(cfg, 4, tmp_path / "one")
    render_world(cfg, 2, tmp_path / "shards", start=2)
    render_world(cfg, 2, tmp_path / "shards", start=0)
    a, b = digest(tmp_path / "one"), digest(tmp_path / "shards")
    assert a == b


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--maps", "mesh,colour"], "colour"),
        (["--hand-model", "mano"], "--mano-dir"),
        (["--n", "0"], "--n"),
        (["--object-prob", "1.5"], "--object-prob"),
        (["--size", "8"], "size"),
        (["--supersample", "7"], "--supersample"),
        (["--hand-fraction", "big"], "--hand-fraction"),
        (["--hand-fraction", "0.7,0.4"], "hand fraction"),
    ],
)
def test_bad_arguments_fail_before_writing(tmp_path, capsys, extra, match):
    out = tmp_path / "bad"
    base = ["world", "render", "--domain", "lab", "--n", "2", "--out", str(out)]
    try:
        args = parse(base + extra)
    except SystemExit as exc:  # refused while parsing (handsynth.cli_args): argparse names the flag
        assert exc.code == 2 and match in capsys.readouterr().err
    else:
        with pytest.raises(UserError, match=match):
            args.func(args)
    assert not out.exists()


def test_unknown_domain_is_an_argparse_error():
    with pytest.raises(SystemExit):
        parse(["world", "render", "--domain", "studio", "--n", "1", "--out", "x"])


def test_poses_with_too_few_records_fail_before_writing(tmp_path):
    (tmp_path / "poses.jsonl").write_text("")
    out = tmp_path / "bad"
    args = parse(
        [
            "world",
            "render",
            "--domain",
            "wild",
            "--n",
            "2",
            "--out",
            str(out),
            "--poses",
            str(tmp_path / "poses.jsonl"),
        ]
    )
    with pytest.raises(UserError, match="--poses"):
        args.func(args)
    assert not out.exists()
