"""`handsynth train` end to end: loop features, user errors before output, and a 2-process gloo run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from handsynth.cli import main

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "configs" / "attentionhand_tiny.yaml")
FAST = [
    "--set",
    "model.resolution=64",
    "--set",
    "train.validate_every=0",
    "--set",
    "train.checkpoint_every=0",
]


def _log(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]


def test_cli_trains_with_loop_features(tiny_dataset, tmp_path, capsys):
    """EMA, gradient accumulation, gradient checkpointing, 8-bit Adam fallback, warm-up, bf16."""
    run = tmp_path / "run"
    sets = [
        "train.ema=true",
        "train.ema_decay=0.5",
        "train.gradient_accumulation_steps=2",
        "train.gradient_checkpointing=true",
        "train.use_8bit_adam=true",
        "train.lr_scheduler=linear",
        "train.lr_warmup_steps=2",
        "train.learning_rate=1e-4",
        "train.mixed_precision=bf16",
    ]
    args = [
        "train",
        "--config",
        TINY,
        "--in",
        str(tiny_dataset),
        "--out",
        str(run),
        "--max-steps",
        "3",
        *FAST,
    ]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 0
    log = _log(run)
    assert [r["step"] for r in log] == [1, 2, 3]
    assert log[0]["lr"] == pytest.approx(0.5e-4) and log[1]["lr"] == pytest.approx(1e-4)  # warm-up then decay
    assert log[2]["lr"] < log[1]["lr"]
    assert (run / "controlnet" / "config.json").exists()
    ids = [
        json.loads(x)["ids"]
        for x in (run / "logs" / "process_0.jsonl").read_text().splitlines()
        if "ids" in x
    ]
    assert len(ids) == 6  # 3 optimizer steps x 2 accumulated micro-batches
    assert "trained 3 steps" in capsys.readouterr().out


def test_user_errors_come_before_any_output(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    base = ["train", "--config", TINY, "--in", str(tiny_dataset), "--out", str(run)]
    assert main([*base, "--set", "tas.iterationz=3"]) == 2
    assert "tas.iterationz" in capsys.readouterr().err
    assert main([*base, "--base-model", str(tmp_path / "no_sd_here")]) == 2
    assert "not a complete diffusers Stable Diffusion folder" in capsys.readouterr().err
    assert main([*base, "--set", "model.branches=[both]"]) == 2
    assert main(["train", "--config", TINY, "--in", str(tmp_path / "nodata"), "--out", str(run)]) == 2
    assert not run.exists()


def test_two_process_gloo_run_trains_one_set_of_weights(tiny_dataset, tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2` on CPU forms a gloo group: both processes train
    on different samples and end with identical weights, saved once."""
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [
        accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517",
        "-m", "handsynth.cli", "train", "--config", TINY, "--in", str(tiny_dataset), "--out", str(run),
        "--max-steps", "2", *FAST,
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs = {}
    for rank in (0, 1):
        lines = [json.loads(x) for x in (run / "logs" / f"process_{rank}.jsonl").read_text().splitlines()]
        logs[rank] = lines
    ids = {r: [i for x in logs[r] if "ids" in x for i in x["ids"]] for r in (0, 1)}
    assert len(ids[0]) == 2 and len(ids[1]) == 2 and not set(ids[0]) & set(ids[1])
    digests = {logs[r][-1]["final_params_sha256"] for r in (0, 1)}
    assert len(digests) == 1
    assert sorted(p.name for p in run.iterdir() if p.name.startswith("controlnet")) == ["controlnet"]
    assert proc.stdout.count("trained 2 steps") == 1


def test_a_run_resumes_with_a_raised_budget_and_rescaled_bookkeeping_but_not_other_settings(tmp_path):
    """A budget raised 10x rescales how often it logs and checkpoints: that resumes; a new learning rate
    would change what the weights are, and is refused naming the key."""
    from handsynth.config import CONFIG_NAME, load_config, save_config
    from handsynth.errors import UserError
    from handsynth.methods.cli import _check_run_folder
    from handsynth.methods.handbooster.config import HandBoosterConfig

    repo = Path(__file__).resolve().parents[2]
    cfg = load_config(HandBoosterConfig, repo / "configs" / "handbooster_tiny.yaml")
    save_config(cfg, tmp_path / CONFIG_NAME)
    more = ["train.max_steps=4000", "train.checkpoint_every=2000", "train.log_every=200"]
    more += ["validation.num_samples=3", "validation.timestep_spacing=trailing"]  # only the sheets
    raised = load_config(HandBoosterConfig, repo / "configs" / "handbooster_tiny.yaml", more)
    _check_run_folder(tmp_path, raised, "auto")  # no error
    other = load_config(
        HandBoosterConfig, repo / "configs" / "handbooster_tiny.yaml", ["train.learning_rate=0.5"]
    )
    with pytest.raises(UserError, match=r"different settings \(train.learning_rate\)"):
        _check_run_folder(tmp_path, other, "auto")
