"""The training tracker is a config value (accelerate's log_with); tensorboard is optional."""

from __future__ import annotations

import importlib.util

import pytest

from handsynth.diffusion import training
from handsynth.diffusion.training import TrainConfig, resolve_tracker
from handsynth.errors import UserError


def _installed(monkeypatch, present: set[str]) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: (
            (real(name, *a) if name in present else None)
            if name in ("tensorboard", "wandb")
            else real(name, *a)
        ),
    )


def test_tracker_values(monkeypatch):
    assert TrainConfig().tracker == "auto"
    assert resolve_tracker("none") is None
    _installed(monkeypatch, set())
    assert resolve_tracker("auto") is None  # no tensorboard: logs go to process_*.jsonl only
    with pytest.raises(UserError, match="pip install wandb"):
        resolve_tracker("wandb")
    with pytest.raises(UserError, match="pip install tensorboard"):
        resolve_tracker("tensorboard")
    with pytest.raises(UserError, match="choose from auto, tensorboard, wandb, none"):
        resolve_tracker("mlflow")


def test_auto_uses_tensorboard_when_installed(monkeypatch):
    pytest.importorskip("tensorboard")
    _installed(monkeypatch, {"tensorboard"})
    assert resolve_tracker("auto") == "tensorboard" == resolve_tracker("tensorboard")
    assert "tensorboard" in training.TRACKERS
