"""Run folders name their base relative to themselves, so moved runs and the embedded model load
from any working directory; ``--checkpoint default`` names the embedded model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from handsynth.diffusion.base import base_for_run, base_from_run
from handsynth.errors import UserError
from handsynth.micro.assets import default_model


def test_relative_base_resolves_against_the_run_folder(tmp_path, monkeypatch):
    (tmp_path / "pack" / "base").mkdir(parents=True)
    run = tmp_path / "pack" / "run"
    run.mkdir()
    monkeypatch.chdir(tmp_path)  # "../base" from here names nothing
    assert Path(base_from_run("../base", run)) == (tmp_path / "pack" / "base").resolve()
    assert base_from_run("tiny", run) == "tiny"
    assert base_from_run("org/model", run) == "org/model"  # a hub id stays one
    assert base_from_run(str(tmp_path / "pack" / "base"), run) == str(tmp_path / "pack" / "base")


def test_old_runs_with_cwd_relative_bases_still_load(tmp_path, monkeypatch):
    (tmp_path / "models" / "sd").mkdir(parents=True)
    run = tmp_path / "runs" / "ah"
    run.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert Path(base_from_run("models/sd", run)) == (tmp_path / "models" / "sd").resolve()  # the cwd reading


def test_train_stores_local_bases_relative_to_the_run(tmp_path, monkeypatch):
    from handsynth.methods.attentionhand.training import AttentionHandConfig, config_for_run_folder

    (tmp_path / "models" / "sd").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    cfg = AttentionHandConfig()
    cfg.model.base_model = "models/sd"
    stored = config_for_run_folder(cfg, tmp_path / "runs" / "ah")
    assert stored.model.base_model == "../../models/sd" and cfg.model.base_model == "models/sd"
    assert base_for_run("tiny", tmp_path) == "tiny" and base_for_run("org/model", tmp_path) == "org/model"
    # moving runs/ and models/ together keeps the link
    shutil.move(tmp_path / "models", tmp_path / "moved" / "models")
    (tmp_path / "moved" / "runs" / "ah").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "moved" / "runs")
    resolved = base_from_run(stored.model.base_model, tmp_path / "moved" / "runs" / "ah")
    assert Path(resolved) == (tmp_path / "moved" / "models" / "sd").resolve()


def test_embedded_checkpoint_by_path_or_name_from_any_directory(tmp_path, monkeypatch):
    from handsynth.methods.attentionhand.generator import AttentionHandGenerator

    monkeypatch.chdir(tmp_path)
    model = default_model()
    for spec in ("default", str(model.checkpoint)):
        gen = AttentionHandGenerator(spec)
        assert Path(gen.base_model) == model.base.resolve()
        assert Path(str(gen.checkpoint)) == model.checkpoint
        gen.check()  # configs of base and module agree: no "incomplete folder" error


def test_missing_base_error_names_the_hf_command(tmp_path):
    from handsynth.diffusion.base import resolve_base

    with pytest.raises(UserError, match="`hf download "):
        resolve_base(str(tmp_path / "nothing-here"))


def test_resuming_a_run_saved_with_a_cwd_relative_base_is_not_refused(tmp_path, monkeypatch):
    """Runs written before bases were stored relative to the run folder still resume."""
    import yaml

    from handsynth.config import to_dict
    from handsynth.methods.attentionhand.training import (
        CONFIG_NAME,
        AttentionHandConfig,
        config_for_run_folder,
    )
    from handsynth.methods.cli import _check_run_folder

    (tmp_path / "models" / "sd").mkdir(parents=True)
    run = tmp_path / "runs" / "ah"
    run.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    cfg = AttentionHandConfig()
    cfg.model.base_model = "models/sd"
    (run / CONFIG_NAME).write_text(yaml.safe_dump(to_dict(cfg)))  # the old way: cwd-relative
    _check_run_folder(run, config_for_run_folder(cfg, run), "auto")  # no error
    cfg.model.base_model = "tiny"
    with pytest.raises(UserError, match="model.base_model"):
        _check_run_folder(run, config_for_run_folder(cfg, run), "auto")


def test_generate_with_the_embedded_model_draws_at_its_own_size(tmp_path):
    from handsynth.cli import main
    from handsynth.data import read_dataset

    size = int(default_model().info.get("size", 64))
    assert main(["poses", "sample", "--n", "1", "--size", "256", "--out", str(tmp_path / "p.jsonl")]) == 0
    argv = ["generate", "--method", "attentionhand", "--checkpoint", "default", "--in", str(tmp_path / "p.jsonl"),
            "--out", str(tmp_path / "g"), "--steps", "1", "--threads", "1"]  # fmt: skip
    assert main(argv) == 0
    (rec,) = read_dataset(tmp_path / "g")
    assert (rec.width, rec.height) == (size, size) != (256, 256)


def test_a_hub_id_this_machine_cannot_load_says_so(monkeypatch):
    from diffusers import UNet2DConditionModel

    from handsynth.methods.baselines.generators import load_component_config

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="not available on this machine .*--base-model tiny"):
        load_component_config(UNet2DConditionModel, "no-such-org/no-such-model", "base model", "unet")
