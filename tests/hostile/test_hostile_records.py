"""Hostile records: no record lost to a missing final newline, no path leaving the dataset folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hostile_helpers import record, refused, run_cli, snapshot, write_folder

from handsynth.data import DatasetWriter, Sample, read_dataset
from handsynth.data.folder import iter_records


def test_last_record_without_newline_is_read(tmp_path):
    folder = write_folder(tmp_path / "d", [record(0), record(1)], final_newline=False)
    assert [s.id for s in read_dataset(folder)] == ["r000", "r001"]


def test_unparsable_last_line_is_skipped_with_a_warning(tmp_path, caplog):
    folder = write_folder(tmp_path / "d", [record(0)])
    with open(folder / "metadata.jsonl", "a") as f:
        f.write('{"id": "r001", "wid')
    assert [s.id for s in read_dataset(folder)] == ["r000"]
    assert "torn last line" in caplog.text


@pytest.mark.parametrize("command", [["prompts", "--seed", "1"], ["caption", "--backend", "template"]])
def test_rewriting_commands_keep_a_record_without_final_newline(tmp_path, capsys, command):
    folder = write_folder(tmp_path / "d", [record(0), record(1), record(2)], final_newline=False)
    rc, _, err = run_cli([*command, "--in", folder], capsys)
    assert rc == 0, err
    samples = read_dataset(folder)
    assert [s.id for s in samples] == ["r000", "r001", "r002"]
    assert all(s.prompt for s in samples)


def test_rewriting_a_file_with_a_torn_line_keeps_a_backup(tmp_path, capsys):
    folder = write_folder(tmp_path / "d", [record(0)])
    original = (folder / "metadata.jsonl").read_bytes() + b'{"id": "r001", "wid'
    (folder / "metadata.jsonl").write_bytes(original)
    rc, _, err = run_cli(["prompts", "--in", folder], capsys)
    assert rc == 0, err
    assert (folder / "metadata.jsonl.bak").read_bytes() == original


def test_writer_resume_keeps_a_complete_last_record(tmp_path):
    folder = write_folder(tmp_path / "d", [record(0)], final_newline=False)
    writer = DatasetWriter(folder)
    assert writer.has("r000")
    writer.write(Sample.from_dict(record(1, image=False)))
    assert [s.id for s in read_dataset(folder)] == ["r000", "r001"]


def test_invalid_utf8_names_the_line(tmp_path, capsys):
    folder = write_folder(tmp_path / "d", [record(0), record(1)])
    data = (folder / "metadata.jsonl").read_bytes().replace(b'"prompt": ""', b'"prompt": "\xff\xfe"', 1)
    (folder / "metadata.jsonl").write_bytes(data)
    refused(["prompts", "--in", folder], capsys, "metadata.jsonl:1", "UTF-8", unchanged=(folder,))


ESCAPES = [
    ("conditions", {"conditions": {"mesh": "/etc/hostname"}}, "conditions.mesh"),
    ("conditions", {"conditions": {"mesh": "../../../../etc/hostname"}}, "conditions.mesh"),
    (
        "local",
        {"local": {"box": [0, 0, 64], "size": 64, "conditions": {"mesh": "../x.png"}}},
        "local.conditions.mesh",
    ),
    ("local", {"local": {"box": [0, 0, 64], "size": 64, "file_name": "/etc/hostname"}}, "local.file_name"),
    ("file_name", {"file_name": "images/../../secret.png"}, "file_name"),
]


@pytest.mark.parametrize(("kind", "over", "field"), ESCAPES, ids=[f for _, _, f in ESCAPES])
def test_paths_leaving_the_folder_are_refused(tmp_path, capsys, kind, over, field):
    folder = write_folder(tmp_path / "d", [record(0), record(1, **over)])
    with pytest.raises(Exception, match=field.replace(".", r"\.")):
        read_dataset(folder)
    refused(["prompts", "--in", folder], capsys, field, "metadata.jsonl:2", unchanged=(folder,))


def test_symlink_out_of_the_folder_is_refused(tmp_path, capsys):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "id_rsa").write_bytes(b"not yours")
    folder = write_folder(tmp_path / "d", [record(0, conditions={"mesh": "conditions/mesh.png"})])
    (folder / "conditions").mkdir()
    os.symlink(secret / "id_rsa", folder / "conditions" / "mesh.png")
    refused(["prompts", "--in", folder], capsys, "conditions.mesh", "outside", unchanged=(folder,))


def test_image_linked_from_elsewhere_is_read(tmp_path):
    """`handsynth prepare --link symlink` links each image to the dataset as its authors shipped it."""
    shipped = tmp_path / "FreiHAND" / "rgb"
    shipped.mkdir(parents=True)
    folder = write_folder(tmp_path / "d", [record(0)])
    (folder / "images" / "r000.png").rename(shipped / "00000000.png")
    os.symlink(shipped / "00000000.png", folder / "images" / "r000.png")
    assert [s.id for s in read_dataset(folder)] == ["r000"]


def test_symlink_inside_the_folder_is_fine(tmp_path):
    folder = write_folder(tmp_path / "d", [record(0, conditions={"mesh": "alias.png"})])
    os.symlink(folder / "images" / "r000.png", folder / "alias.png")
    assert [s.id for s in iter_records(folder)] == ["r000"]


def test_jsonl_file_records_resolve_against_its_folder(tmp_path):
    folder = write_folder(tmp_path / "d", [record(0)])
    renamed = folder / "train.jsonl"
    (folder / "metadata.jsonl").rename(renamed)
    assert [s.file_name for s in read_dataset(renamed)] == ["images/r000.png"]
    assert snapshot(folder)  # the folder still holds its files


def test_deeply_nested_record_is_an_error_not_a_crash(tmp_path, capsys):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "metadata.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n")
    refused(["prompts", "--in", folder], capsys, "metadata.jsonl:1", unchanged=(folder,))


def test_records_stay_json(tmp_path):
    """A record is one JSON object per line: read back exactly what was written."""
    folder = write_folder(tmp_path / "d", [record(0, prompt="a hand")])
    line = (folder / "metadata.jsonl").read_text().splitlines()[0]
    assert json.loads(line)["prompt"] == "a hand"
    assert Path(folder / "images" / "r000.png").is_file()


def test_symlinked_folder_out_of_the_dataset_is_refused(tmp_path, capsys):
    keys = tmp_path / "ssh"
    keys.mkdir()
    (keys / "id_rsa").write_bytes(b"not yours")
    folder = write_folder(tmp_path / "d", [record(0, conditions={"mesh": "keys/id_rsa"})])
    os.symlink(keys, folder / "keys")
    refused(["prompts", "--in", folder], capsys, "conditions.mesh", "outside", unchanged=(folder,))


def test_symlinked_image_folder_is_read(tmp_path):
    """`prepare --render` shares the imported images with OUT/render through render/images -> ../images."""
    out = write_folder(tmp_path / "out", [record(0)])
    render = write_folder(out / "render", [record(0)], images=False)
    os.symlink("../images", render / "images")
    assert [s.file_name for s in read_dataset(render)] == ["images/r000.png"]
