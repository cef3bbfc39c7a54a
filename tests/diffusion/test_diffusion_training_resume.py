"""The shared training loop after a run that died: a checkpoint cut short mid-save and a run stopped
before its first checkpoint. A toy task (a linear layer) keeps each run well under a second."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset

from handsynth.diffusion.training import TRAIN_LOG, TrainConfig, latest_checkpoint, run_training


class _Points(Dataset):
    def __init__(self, n: int = 6) -> None:
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(n, 2, generator=g)
        self.y = self.x @ torch.tensor([[1.5], [-0.5]])

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"id": f"p{i}", "x": self.x[i], "y": self.y[i]}


class ToyTask:
    """Least squares with noise drawn from the loop's generator: a resumed run must draw the same."""

    def __init__(self, die_at: int | None = None, die_validating: int | None = None) -> None:
        self.die_at, self.die_validating = die_at, die_validating

    def build(self, accelerator) -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Linear(2, 1)

    def dataset(self) -> Dataset:
        return _Points()

    def collate(self, items: list) -> dict:
        return {
            "ids": [it["id"] for it in items],
            "x": torch.stack([it["x"] for it in items]),
            "y": torch.stack([it["y"] for it in items]),
        }

    def loss(self, model, batch, step, generator=None):
        if step == self.die_at:
            raise KeyboardInterrupt  # the run stops here, as a Ctrl-C or a kill would stop it
        noise = torch.randn(batch["y"].shape, generator=generator) * 0.01
        loss = torch.nn.functional.mse_loss(model(batch["x"]), batch["y"] + noise)
        return loss, {}

    def validate(self, model, step):
        if step == self.die_validating:
            raise KeyboardInterrupt
        w = model.weight.detach()
        return {"sample": np.full((4, 4, 3), int(abs(float(w.sum())) * 100) % 256, np.uint8)}

    def save(self, model, folder: Path) -> None:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "toy.safetensors"))

    def batch_ids(self, batch) -> list[str]:
        return batch["ids"]


def _cfg(checkpoint_every: int, validate_every: int = 0) -> TrainConfig:
    return TrainConfig(
        max_steps=8,
        batch_size=2,
        learning_rate=0.05,
        checkpoint_every=checkpoint_every,
        validate_every=validate_every,
        checkpoints_total_limit=None,
        tracker="none",
    )


def _steps(path: Path) -> list:
    return [json.loads(x).get("step") for x in path.read_text().splitlines()]


def test_a_checkpoint_cut_short_mid_save_is_not_resumed_from(tmp_path, monkeypatch):
    """A kill while step 6 is being saved leaves its files half written; the rerun must continue from
    step 3 (the last whole checkpoint) and end on the uninterrupted run's weights."""
    from accelerate import Accelerator

    whole = tmp_path / "whole"
    run_training(ToyTask(), _cfg(3), whole, resume=None)

    save_state = Accelerator.save_state

    def dies_while_saving(self, output_dir, *args, **kwargs):
        saved = save_state(self, output_dir, *args, **kwargs)
        if "6" in Path(output_dir).name:
            (Path(output_dir) / "optimizer.bin").write_bytes(b"")  # what a kill mid-write leaves
            raise KeyboardInterrupt
        return saved

    cut = tmp_path / "cut"
    monkeypatch.setattr(Accelerator, "save_state", dies_while_saving)
    with pytest.raises(KeyboardInterrupt):
        run_training(ToyTask(), _cfg(3), cut, resume=None)
    monkeypatch.setattr(Accelerator, "save_state", save_state)
    assert latest_checkpoint(cut).name == "step_3"

    run_training(ToyTask(), _cfg(3), cut, resume="auto")
    a, b = load_file(whole / "toy.safetensors"), load_file(cut / "toy.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert sorted(p.name for p in (cut / "checkpoints").iterdir()) == ["step_3", "step_6"]
    assert _steps(cut / TRAIN_LOG) == list(range(1, 9))


def test_a_run_stopped_before_its_first_checkpoint_logs_each_step_once(tmp_path):
    """With no checkpoint to resume from, the rerun starts at step 0: the steps the stopped run logged
    are not in the logs twice (train_log.jsonl and the per-process data log)."""
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_training(ToyTask(die_at=3), _cfg(0), run, resume=None)
    assert _steps(run / TRAIN_LOG) == [1, 2, 3]

    run_training(ToyTask(), _cfg(0), run, resume="auto")
    assert _steps(run / TRAIN_LOG) == list(range(1, 9))
    assert _steps(run / "logs" / "process_0.jsonl") == [*range(8), 8]  # 8: the final digest line


def test_a_resumed_run_logs_the_steps_after_its_checkpoint_once(tmp_path):
    """Stopped at step 5 with a checkpoint at 3: steps 4 and 5 are taken (and logged) again, once."""
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_training(ToyTask(die_at=5), _cfg(3), run, resume=None)
    run_training(ToyTask(), _cfg(3), run, resume="auto")
    assert _steps(run / TRAIN_LOG) == list(range(1, 9))
    assert _steps(run / "logs" / "process_0.jsonl") == [*range(8), 8]


def test_a_finished_run_rerun_from_an_earlier_checkpoint_keeps_one_final_digest(tmp_path):
    """8 steps with checkpoints at 3 and 6: a rerun resumes at 6, takes steps 7 and 8 again and writes
    its digest; the first run's digest line (after step 8) must go with the steps it followed."""
    run = tmp_path / "run"
    run_training(ToyTask(), _cfg(3), run, resume=None)
    run_training(ToyTask(), _cfg(3), run, resume="auto")
    lines = [json.loads(x) for x in (run / "logs" / "process_0.jsonl").read_text().splitlines()]
    assert [x.get("step") for x in lines] == [*range(8), 8]
    assert sum("final_params_sha256" in x for x in lines) == 1


def test_a_run_killed_while_validating_validates_that_step_on_the_rerun(tmp_path):
    """Killed while validating step 3 (checkpoints every 3 steps): the rerun must not resume from a
    step-3 checkpoint that has no validation images; every step's images match a straight run's."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run_training(ToyTask(), _cfg(3, validate_every=3), whole, resume=None)
    with pytest.raises(KeyboardInterrupt):
        run_training(ToyTask(die_validating=3), _cfg(3, validate_every=3), cut, resume=None)
    run_training(ToyTask(), _cfg(3, validate_every=3), cut, resume="auto")
    for step in (3, 6):
        png = f"validation/step_{step}/sample.png"
        assert (cut / png).read_bytes() == (whole / png).read_bytes(), png
    assert not list((cut / "validation").glob(".*"))  # no temporary folder left


def test_a_checkpoint_is_also_written_when_its_minutes_have_passed(tmp_path, monkeypatch):
    """train.checkpoint_every_minutes: with step checkpoints off, a clock that moves 4 minutes a step
    saves every third step at 10 minutes (steps 3 and 6); a run killed at step 8 resumes from step 6 and
    ends on the uninterrupted run's weights."""
    from handsynth import save_clock

    whole = tmp_path / "whole"
    run_training(ToyTask(), _cfg(0), whole, resume=None)

    now = [0.0]

    class Loss(ToyTask):
        def loss(self, model, batch, step, generator=None):
            now[0] += 240.0  # every step takes four minutes
            return super().loss(model, batch, step, generator)

    monkeypatch.setattr(save_clock.time, "monotonic", lambda: now[0])
    cfg = _cfg(0)
    cfg.checkpoint_every_minutes = 10
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_training(Loss(die_at=7), cfg, run, resume=None)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_3", "step_6"]
    run_training(Loss(), cfg, run, resume="auto")
    a, b = load_file(whole / "toy.safetensors"), load_file(run / "toy.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    cfg.checkpoint_every_minutes = 0  # off: no checkpoint whatever the clock says
    run_training(Loss(), cfg, tmp_path / "off", resume=None)
    assert not (tmp_path / "off" / "checkpoints").exists() or not any(
        (tmp_path / "off" / "checkpoints").iterdir()
    )
