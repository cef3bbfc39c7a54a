"""The demo job and the command registry."""

from __future__ import annotations

from handsynth.cli import build_parser, main
from handsynth.data import read_dataset


def test_every_stage_registers_its_commands():
    names = set(build_parser()._subparsers._group_actions[0].choices)
    assert {
        "poses",
        "mano",
        "render",
        "tag",
        "caption",
        "train",
        "generate",
        "evaluate",
        "recon",
        "study",
        "world",
        "demo",
    } <= names


def test_demo_renders_and_resumes(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--n", "3", "--size", "96"]) == 0
    out = capsys.readouterr().out
    assert "contact_sheet" in out and (tmp_path / "conditions" / "contact_sheet.png").exists()
    samples = read_dataset(tmp_path / "conditions")
    assert len(samples) == 3 and sum(len(s.hands) == 2 for s in samples) == 1
    assert main(["demo", "--out", str(tmp_path), "--n", "3", "--size", "96"]) == 0
    assert len(read_dataset(tmp_path / "conditions")) == 3


def test_demo_overwrite_removes_only_what_a_demo_wrote(tmp_path):
    from handsynth.demo import DEMO_OUTPUTS, _remove_demo_outputs

    for name in DEMO_OUTPUTS:
        if "." in name:
            (tmp_path / name).write_text("old")
        else:
            (tmp_path / name / "sub").mkdir(parents=True)
    (tmp_path / "mine.txt").write_text("keep")
    _remove_demo_outputs(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_demo_refuses_a_size_its_model_cannot_draw_before_any_work(tmp_path, capsys):
    from handsynth.cli import main

    assert main(["demo", "--size", "16", "--n", "2", "--out", str(tmp_path / "d")]) == 2
    assert "size 16x16 is not a multiple of" in capsys.readouterr().err and not (tmp_path / "d").exists()
