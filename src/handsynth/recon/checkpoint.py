"""Checkpoints: a folder per step with the network (safetensors), optimiser/scheduler state and config.

Layout: ``RUN/checkpoints/step_000100/{model.safetensors, config.json, trainer.pt, state.json}``.
``model.safetensors`` + ``config.json`` are all inference needs; ``trainer.pt`` (optimiser, scheduler)
and ``state.json`` (step, draws consumed) let training resume. A folder is written under a temporary
name and renamed, so a killed run never leaves a half checkpoint that a resume would pick up.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from handsynth.errors import UserError
from handsynth.recon.model import ModelConfig

STEP_DIR = re.compile(r"^step_(\d+)$")


def save_checkpoint(
    folder: str | os.PathLike,
    net: torch.nn.Module,
    model_cfg: ModelConfig,
    train_cfg: dict[str, Any] | None = None,
    trainer_state: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder atomically; returns its path."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(tensors, str(tmp / "model.safetensors"))
    cfg = {"model": model_cfg.to_dict(), **({"train": train_cfg} if train_cfg is not None else {})}
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
    if trainer_state is not None:
        torch.save(trainer_state, tmp / "trainer.pt")
    (tmp / "state.json").write_text(json.dumps(state or {}, indent=2))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, folder) of the complete checkpoints of a run, oldest first."""
    ck = Path(run_dir) / "checkpoints"
    if not ck.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ck.iterdir() if (m := STEP_DIR.match(p.name)) and p.is_dir()]
    return sorted(f for f in found if (f[1] / "model.safetensors").exists())


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint folder from either itself or a run folder (its latest checkpoint)."""
    p = Path(path)
    if (p / "model.safetensors").exists() and (p / "config.json").exists():
        return p
    cks = list_checkpoints(p)
    if cks:
        return cks[-1][1]
    raise UserError(
        f"{p} is not a reconstruction checkpoint: expected a folder with model.safetensors and config.json "
        "or a training run folder with checkpoints/step_*"
    )


def load_weights(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """(model config, network state dict, full saved config) of a checkpoint or run folder."""
    ck = resolve_checkpoint(path)
    cfg = json.loads((ck / "config.json").read_text())
    return ModelConfig.from_dict(cfg["model"]), load_file(str(ck / "model.safetensors")), cfg
