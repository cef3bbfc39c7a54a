"""What a new user meets first: --version, defaults in every --help, --threads, deprecated spellings."""

from __future__ import annotations

import argparse

import pytest
import torch

from handsynth.cli import build_parser, main
from handsynth.cli_common import CommandParser, add_deprecated_alias
from handsynth.runtime import configure_threads, is_small_unet, parse_threads, small_base


def _all_parsers(parser: argparse.ArgumentParser, path=()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _all_parsers(sub, (*path, name))


def test_version(capsys):
    assert main(["--version"]) == 0  # argparse's exit is turned into the return code
    out = capsys.readouterr().out
    assert out.startswith("handsynth ") and out.split()[1][0].isdigit()


def test_every_help_shows_option_defaults():
    """Each (sub-)command's help names the default of every option that has a meaningful one."""
    checked = 0
    for path, parser in _all_parsers(build_parser()):
        assert isinstance(parser, CommandParser), path
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            d = action.default  # by identity: a default of 0 (== False) must be shown too
            if not action.option_strings or d is None or d is False or d is argparse.SUPPRESS:
                continue
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            assert "default" in (action.help or "") or f"(default: {action.default})" in text, (
                path,
                action.option_strings,
            )
            checked += 1
    assert checked > 50
    sample = dict(_all_parsers(build_parser()))[("poses", "sample")]
    assert "(default: 0)" in " ".join(sample.format_help().split())  # --seed


@pytest.mark.parametrize(
    "command",
    [["generate"], ["demo"], ["train"], ["evaluate", "images"], ["recon", "train"], ["recon", "eval"]],
)
def test_torch_commands_take_threads(command):
    parser = build_parser()
    sub = dict(_all_parsers(parser))[tuple(command)]
    action = next(a for a in sub._actions if "--threads" in a.option_strings)
    assert action.default == "auto" and action.type("3") == 3


def test_threads_values():
    assert parse_threads("auto") == "auto" and parse_threads("2") == 2
    for bad in ("0", "-1", "two"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_threads(bad)


def test_threads_auto_is_one_for_small_models_on_cpu(tmp_path):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert configure_threads("auto", "cpu", small_model=False) == 2  # torch's choice kept
        assert configure_threads("auto", "cuda:0", small_model=True) == 2  # threads matter on the CPU only
        assert configure_threads("auto", "cpu", small_model=True) == 1
        assert configure_threads(3, "cpu", small_model=True) == 3  # an explicit count always wins
    finally:
        torch.set_num_threads(before)
    assert is_small_unet({"block_out_channels": [32, 64, 64]})
    assert not is_small_unet({"block_out_channels": [320, 640, 1280, 1280]}) and not is_small_unet(None)
    big = tmp_path / "sd" / "unet"
    big.mkdir(parents=True)
    (big / "config.json").write_text('{"block_out_channels": [320, 640, 1280, 1280]}')
    assert small_base(["tiny"]) and not small_base([tmp_path / "sd"]) and not small_base(["org/model"])


def test_deprecated_alias_warns_and_fills_the_same_option(capsys):
    p = CommandParser(prog="x")
    p.add_argument("--in", dest="inp", required=True, help="input")
    add_deprecated_alias(p, "--data", "--in")
    assert p.parse_args(["--in", "a"]).inp == "a" and "deprecated" not in capsys.readouterr().err
    assert p.parse_args(["--data", "b"]).inp == "b"
    assert "--data is deprecated; use --in" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        p.parse_args([])  # still required under either spelling


def test_one_name_per_concept_across_commands():
    """Input data is --in and the MANO folder --mano-dir everywhere; the old spellings still parse."""
    parsers = dict(_all_parsers(build_parser()))
    for path, parser in parsers.items():
        names = {o for a in parser._actions for o in a.option_strings}
        if "--data" in names or "--hand-model-path" in names:
            primary = {a.option_strings[0] for a in parser._actions if a.option_strings}
            assert "--data" not in primary and "--hand-model-path" not in primary, path
    args = parsers[("train",)].parse_args(["--data", "d", "--out", "o"])
    assert args.data == "d"
    args = parsers[("recon", "toy-data")].parse_args(["--out", "o", "--hand-model-path", "m"])
    assert args.mano_dir == "m"


def test_ctrl_c_is_one_line_and_exit_130(tmp_path, capsys, monkeypatch):
    import handsynth.data.folder as folder

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    src = tmp_path / "p.jsonl"
    assert main(["poses", "sample", "--n", "2", "--out", str(src)]) == 0
    monkeypatch.setattr(folder, "read_dataset", interrupted)
    capsys.readouterr()
    assert main(["poses", "fps", "--in", str(src), "--per-object", "1", "--out", str(tmp_path / "o")]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "handsynth: interrupted; rerun the same command to continue (finished work is kept)"


def test_a_user_error_from_a_dataloader_worker_is_its_own_sentence():
    import torch

    from handsynth.cli import user_message
    from handsynth.data.records import RecordError
    from handsynth.errors import UserError

    class Broken(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 2

        def __getitem__(self, i):
            raise RecordError("record x: image images/x.png is missing")

    with pytest.raises(UserError) as err:
        next(iter(torch.utils.data.DataLoader(Broken(), num_workers=1)))
    assert "Original Traceback" in str(err.value)  # what torch hands back
    assert user_message(err.value) == "record x: image images/x.png is missing"
    assert user_message(UserError("plain: a: b")) == "plain: a: b"
