"""Every numeric flag of every command is checked (finite, in range) while the command line is parsed."""

from __future__ import annotations

import argparse

import pytest
from hostile_helpers import record, refused, write_folder

from handsynth.cli import build_parser


def _numeric_flags() -> list[tuple[list[str], str, object]]:
    """(sub-command path, flag, type) for every option of every command that takes a number."""
    found = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])
            elif action.option_strings and action.type is not None and action.type is not str:
                found.append((path, action.option_strings[-1], action.type))

    walk(build_parser(), [])
    return found


FLAGS = _numeric_flags()


def test_no_flag_takes_an_unchecked_number():
    unchecked = [f"{' '.join(p)} {flag}" for p, flag, tp in FLAGS if tp in (int, float)]
    assert not unchecked, f"use a handsynth.cli_args type for: {unchecked}"
    assert len(FLAGS) > 50  # every command contributes


@pytest.mark.parametrize(("path", "flag", "tp"), FLAGS, ids=[f"{' '.join(p)} {f}" for p, f, _ in FLAGS])
def test_every_numeric_flag_refuses_nan_and_out_of_range(capsys, path, flag, tp):
    for bad in ("nan", "inf", "-1", "x"):
        try:
            tp(bad)
        except argparse.ArgumentTypeError:
            pass
        else:
            continue  # e.g. -1 is a valid finite number for an unbounded float
        refused([*path, flag, bad], capsys, flag, bad)


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["generate", "--size", "0"], "--size"),
        (["generate", "--limit", "-1"], "--limit"),
        (["generate", "--guidance", "nan"], "--guidance"),
        (["generate", "--size", "100000"], "--size"),
        (["render", "--size", "99999"], "--size"),
        (["world", "render", "--size", "5000"], "--size"),
        (["poses", "sample", "--n", "0"], "--n"),
        (["caption", "--timeout", "inf"], "--timeout"),
        (["study", "serve", "--port", "70000"], "--port"),
        (["world", "render", "--object-prob", "1.5"], "--object-prob"),
        (["recon", "train", "--lr", "nan"], "--lr"),
    ],
)
def test_issue_cases_are_refused_before_any_output(tmp_path, capsys, argv, flag):
    poses = write_folder(tmp_path / "poses", [record(0)])
    out = tmp_path / "out"
    refused([*argv, "--in", poses, "--out", out], capsys, flag, unchanged=(poses, out))
    assert not out.exists()


def test_types_accept_their_range():
    from handsynth import cli_args

    assert cli_args.image_side("512") == 512
    assert cli_args.probability("0") == 0.0 and cli_args.probability("1") == 1.0
    assert cli_args.positive("1e-6") == 1e-6
    assert cli_args.seed("0") == 0
    assert cli_args.finite("-3.5") == -3.5


def test_recon_yaml_config_refuses_nan(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("lr: .nan\n")
    out = tmp_path / "run"
    refused(["recon", "train", "--config", cfg, "--in", tmp_path, "--out", out], capsys, "lr", "finite")
    assert not out.exists()
