"""``recon train`` refuses bad settings (flags or --config) in one sentence before writing anything; a
failed start leaves --out untouched; progress in a log is whole lines."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import shutil

import pytest
from recon_helpers import StandInHand, make_dataset

from handsynth.cli import main
from handsynth.recon.config import RULES, TrainConfig, flag_name

TINY = ["--width", "0.125", "--img-size", "48", "--hidden", "16", "--num-workers", "0", "--no-augment"]
TINY += ["--batch-size", "4", "--steps", "2", "--warmup", "0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    return make_dataset(tmp_path_factory.mktemp("recon_checks") / "ds", 4, seed=3, size=64)


@pytest.fixture(autouse=True)
def _standin(monkeypatch) -> None:
    train_module = importlib.import_module("handsynth.recon.train")  # not handsynth.recon's lazy train()
    monkeypatch.setattr(train_module, "load_hand_model_for", lambda cfg: StandInHand())


def _train(data, out, *extra: str) -> list[str]:
    return ["recon", "train", "--in", str(data), "--out", str(out), *TINY, *extra]


def _one_sentence_error(capsys) -> str:
    """The error line (argparse prints its usage above it; a UserError is the only line)."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    last = err.splitlines()[-1]
    assert re.match(r"handsynth( recon train)?: error: ", last), err
    return last


# Each of these used to give a traceback, train a NaN loss, or silently do nothing.
BAD_FLAGS = [
    ("--backbone", "foo"),
    ("--lr", "-1"),
    ("--batch-size", "0"),
    ("--num-workers", "-1"),
    ("--save-every", "0"),
    ("--log-every", "0"),
    ("--mixed-precision", "foo"),
    ("--log-with", "foo"),
    ("--steps", "0"),
    ("--steps", "-5"),
    ("--expand", "0"),
    ("--width", "0"),
    ("--hidden", "0"),
    ("--img-size", "7"),
    ("--img-size", "31"),
    ("--warmup", "-1"),
    ("--image-cache-mb", "-1"),
    ("--seed", "-1"),
    ("--keep-last", "0"),
    ("--hand-model", "foo"),
    ("--cam-scale0", "0"),
    ("--loss-joints3d", "-1"),
    ("--aug-scale", "1"),
    ("--aug-color", "2"),
]


@pytest.mark.parametrize(("flag", "value"), BAD_FLAGS, ids=[f"{f}={v}" for f, v in BAD_FLAGS])
def test_bad_flag_is_one_sentence_naming_it_and_writes_nothing(data, tmp_path, capsys, flag, value) -> None:
    out = tmp_path / "run"
    assert main(_train(data, out, flag, value)) == 2
    assert flag in _one_sentence_error(capsys)
    assert not out.exists()


# The same limits reach settings from a YAML file (and the Python API), which argparse never sees.
BAD_YAML = [
    ("steps: 0", "--steps"),
    ("lr: -1.0", "--lr"),
    ("log_with: foo", "--log-with"),
    ("mixed_precision: fp32", "--mixed-precision"),
    ("model: {backbone: resnet50}", "--backbone"),
    ("model: {img_size: 16}", "--img-size"),
    ("model: {expand: 0.0}", "--expand"),
    ("aug: {rot_deg: -5.0}", "--aug-rot-deg"),
    ("loss: {reg: -1.0}", "--loss-reg"),
]


@pytest.mark.parametrize(("yaml", "flag"), BAD_YAML, ids=[y for y, _ in BAD_YAML])
def test_bad_config_file_value_is_refused_naming_the_flag(data, tmp_path, capsys, yaml, flag) -> None:
    (tmp_path / "cfg.yaml").write_text(yaml + "\n")
    out = tmp_path / "run"
    assert (
        main(["recon", "train", "--config", str(tmp_path / "cfg.yaml"), "--in", str(data), "--out", str(out)])
        == 2
    )
    assert flag in _one_sentence_error(capsys)
    assert not out.exists()


def test_cross_checks_and_missing_tracker_package(data, tmp_path, capsys, monkeypatch) -> None:
    """Batch size 1 at a crop of one backbone stride would crash in BatchNorm; a tracker whose package
    is missing would crash inside accelerate."""
    out = tmp_path / "run"
    assert main(_train(data, out, "--batch-size", "1", "--img-size", "32")) == 2
    assert "--batch-size 1 needs --img-size above 32" in _one_sentence_error(capsys)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "wandb" else find_spec(n, *a))
    assert main(_train(data, out, "--log-with", "wandb")) == 2
    assert "--log-with wandb needs the wandb package" in _one_sentence_error(capsys)
    assert not out.exists()


def test_defaults_pass_and_every_rule_names_a_real_flag(capsys) -> None:
    TrainConfig().check()
    help_text = _help(capsys)
    for group, name in RULES:
        assert flag_name(group, name) in help_text, (group, name)
    for shown in ("--backbone {resnet18,resnet34}", "--mixed-precision {no,fp16,bf16}", "{openhand,mano}"):
        assert shown in help_text


def _help(capsys) -> str:
    capsys.readouterr()
    assert main(["recon", "train", "--help"]) == 0
    return " ".join(capsys.readouterr().out.split())


def test_failed_start_leaves_out_so_the_corrected_command_runs(data, tmp_path, capsys) -> None:
    """A dataset with no hands fails after argparse; it used to leave train_config.json behind, and the
    corrected command into the same --out was refused as 'a run with different settings (data)'."""
    empty = tmp_path / "empty"
    shutil.copytree(data, empty)
    meta = empty / "metadata.jsonl"
    meta.write_text(
        "".join(json.dumps({**json.loads(r), "hands": []}) + "\n" for r in meta.read_text().splitlines())
    )
    out = tmp_path / "run"
    assert main(_train(empty, out)) == 2
    assert "dataset #1 of --in has no hands" in _one_sentence_error(capsys)
    assert not out.exists() or not any(out.iterdir())
    assert main(_train(data, out)) == 0
    assert json.loads((out / "train_config.json").read_text())["data"] == [str(data)]

    # Images that cannot be read fail at the first batch: still nothing written.
    broken = tmp_path / "broken"
    shutil.copytree(data, broken)
    shutil.rmtree(broken / "images")
    assert main(_train(broken, tmp_path / "b")) == 2
    assert "does not exist" in _one_sentence_error(capsys)
    assert not (tmp_path / "b").exists()

    # --overwrite removes the old run only once the new one has started.
    before = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert main(_train(empty, out, "--overwrite", "--lr", "1e-2")) == 2
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == before
    assert json.loads((out / "train_config.json").read_text())["lr"] != 1e-2
    assert main(_train(data, out, "--overwrite", "--lr", "1e-2", "--steps", "1")) == 0
    assert json.loads((out / "train_config.json").read_text())["lr"] == 1e-2
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step_0000001"]


def test_progress_in_a_log_is_whole_lines_with_the_loss(data, tmp_path, capsys, monkeypatch) -> None:
    """stderr captured (not a terminal), as in ``recon train ... 2> log``: no carriage-return bar."""
    monkeypatch.setenv("HANDSYNTH_PROGRESS_INTERVAL", "0")
    assert main(_train(data, tmp_path / "run", "--steps", "3")) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("recon train: ")]
    assert len(lines) >= 3, err
    assert re.match(r"recon train: 3/3 \(100%\) .*, loss=\d+\.\d{4}$", lines[-1]), lines[-1]


def test_a_warmup_longer_than_the_run_is_allowed_with_a_warning(caplog) -> None:
    with caplog.at_level("WARNING"):
        TrainConfig(steps=10, warmup=50).check()
    assert "--warmup 50 is longer than --steps 10" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        TrainConfig(steps=100, warmup=50).check()
    assert "warmup" not in caplog.text
