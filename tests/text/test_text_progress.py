"""``caption`` and ``tag`` report progress as whole lines when stderr is a log, not tqdm's '\\r' bars."""

from __future__ import annotations

from handsynth.cli import main


def test_caption_and_tag_progress_in_a_log_are_whole_lines(
    tmp_path, record, write_records, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("HANDSYNTH_PROGRESS_INTERVAL", "0")
    folder = tmp_path / "ds"
    # tag shows progress from 200 records on; these need no image (template captions, builtin tagger)
    write_records(folder, [record(i, prompt="a right hand", image=False) for i in range(200)])
    assert main(["caption", "--in", str(folder), "--backend", "template", "--batch-size", "100"]) == 0
    assert main(["tag", "--in", str(folder), "--pos", "builtin"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    assert "caption: 2/2 (100%)" in err and "batch/s" in err
    assert "tag: 200/200 (100%)" in err and "record/s" in err
