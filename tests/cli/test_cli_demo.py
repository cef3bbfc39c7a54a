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
