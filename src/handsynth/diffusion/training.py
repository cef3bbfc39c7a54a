"""The one training loop: accelerate, checkpoints with full resume, validation, TensorBoard, progress.

A method plugs in as a :class:`TrainTask` (build the trainable module, the dataset, a loss, a
validation, a save); the loop owns everything else, so all methods get the same mixed precision,
gradient accumulation, 8-bit Adam, EMA, lr schedule with warm-up, multi-GPU/multi-node runs
(``accelerate launch``) and resumable checkpoints.

Resume restores model, optimizer, lr scheduler, EMA, every process's RNG states and the data position
(epoch + batches consumed), so a resumed run continues the same run it was cut from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from handsynth.data.folder import truncate_step_log
from handsynth.diffusion.ema import EMA_WARMUPS, ema_due, make_ema
from handsynth.errors import UserError
from handsynth.save_clock import SaveClock

if TYPE_CHECKING:
    from accelerate import Accelerator

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
TRAIN_LOG = "train_log.jsonl"


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping settings shared by every trainable method."""

    max_steps: int = 1000
    batch_size: int = 1  # per process
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-5
    lr_scheduler: str = "constant"  # any diffusers get_scheduler name: constant, linear, cosine, ...
    lr_warmup_steps: int = 0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    use_8bit_adam: bool = False  # bitsandbytes AdamW8bit when installed (else a warning and AdamW)
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    gradient_checkpointing: bool = False
    ema: bool = False
    ema_decay: float = 0.9999
    ema_update_every: int = 1  # optimiser steps between EMA updates (HandBooster: 10)
    ema_warmup: str = "diffusers"  # | ema_pytorch (HandBooster's released trainer) | none: diffusion/ema.py
    seed: int = 0
    checkpoint_every: int = 500
    # also a checkpoint once this many minutes passed since the last one (0: off), so a crash costs at
    # most that much work whatever the step budget; checkpoints do not change the weights
    checkpoint_every_minutes: float = 30.0
    checkpoints_total_limit: int | None = 3
    validate_every: int = 0  # 0: never during training (one validation at the end when > 0)
    log_every: int = 1
    num_workers: int = 0
    allow_tf32: bool = True
    # accelerate's log_with: tensorboard | wandb | none; auto = tensorboard when installed, else none.
    tracker: str = "auto"


TRACKERS = ("auto", "tensorboard", "wandb", "none")
TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}


def resolve_tracker(name: str) -> str | None:
    """The accelerate ``log_with`` value for ``train.tracker`` (None: no tracker); a clear error when
    the named tracker's package is not installed."""
    import importlib.util

    if name not in TRACKERS:
        raise UserError(f"train.tracker {name!r} is unknown; choose from {', '.join(TRACKERS)}")
    if name == "none":
        return None
    if name == "auto":
        return "tensorboard" if importlib.util.find_spec("tensorboard") is not None else None
    if importlib.util.find_spec(TRACKER_PACKAGES[name]) is None:
        raise UserError(
            f"train.tracker {name} needs the {TRACKER_PACKAGES[name]} package: pip install "
            f"{TRACKER_PACKAGES[name]} (or --set train.tracker=none)"
        )
    return name


class TrainTask(Protocol):
    """What a method provides to :func:`run_training`."""

    def build(self, accelerator: Accelerator) -> torch.nn.Module:
        """Load frozen parts onto ``accelerator.device`` and return the trainable module."""

    def dataset(self) -> Dataset: ...

    def collate(self, items: list) -> Any: ...

    def loss(
        self, model: torch.nn.Module, batch: Any, step: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss of one (micro-)batch (random draws from ``generator``), and scalars to log."""

    def validate(self, model: torch.nn.Module, step: int) -> dict[str, np.ndarray]:
        """Images to save and log (name -> HxWx3 uint8)."""

    def save(self, model: torch.nn.Module, folder: Path) -> None:
        """Write the final trained weights (and the method's config) into ``folder``."""

    def batch_ids(self, batch: Any) -> list[str]: ...


class EpochSampler(Sampler[int]):
    """A seeded permutation per epoch: the data order is a pure function of (seed, epoch)."""

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True) -> None:
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.n))
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class LoopState:
    """Step counter and data position, saved in every checkpoint."""

    def __init__(self) -> None:
        self.step = 0
        self.epoch = 0
        self.batches_in_epoch = 0

    def state_dict(self) -> dict:
        return {"step": self.step, "epoch": self.epoch, "batches_in_epoch": self.batches_in_epoch}

    def load_state_dict(self, d: dict) -> None:
        self.step, self.epoch, self.batches_in_epoch = (
            int(d["step"]),
            int(d["epoch"]),
            int(d["batches_in_epoch"]),
        )


def _batch_seed(seed: int, rank: int, epoch: int, batch: int) -> int:
    return (seed * 1_000_003 + rank * 100_003 + epoch * 10_007 + batch) % (2**63 - 1)


def latest_checkpoint(out: Path) -> Path | None:
    """The highest ``checkpoints/step_N`` folder of a run, if any."""
    folder = Path(out) / CHECKPOINTS
    if not folder.is_dir():
        return None
    steps = [(int(m.group(1)), p) for p in folder.iterdir() if (m := re.fullmatch(r"step_(\d+)", p.name))]
    return max(steps)[1] if steps else None


def _optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW
    if cfg.use_8bit_adam:
        try:
            import bitsandbytes as bnb

            cls = bnb.optim.AdamW8bit
        except ImportError:
            log.warning("use_8bit_adam: bitsandbytes is not installed; using torch AdamW")
    return cls(
        params,
        lr=cfg.learning_rate,
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        weight_decay=cfg.adam_weight_decay,
        eps=cfg.adam_epsilon,
    )


def params_digest(module: torch.nn.Module) -> str:
    """sha256 of all parameters (to show processes hold one set of weights)."""
    h = hashlib.sha256()
    for name, p in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


def run_training(task: TrainTask, cfg: TrainConfig, out: str | Path, resume: str | None = "auto") -> dict:
    """Train ``task`` into ``out``; ``resume``: 'auto' (latest checkpoint if any), a checkpoint path, or None."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed
    from diffusers.optimization import get_scheduler

    from handsynth.progress import progress

    out = Path(out)
    log_with = resolve_tracker(cfg.tracker)
    if cfg.ema and cfg.ema_warmup not in EMA_WARMUPS:
        raise UserError(
            f"train.ema_warmup {cfg.ema_warmup!r} is unknown; choose from {', '.join(EMA_WARMUPS)}"
        )
    if not cfg.checkpoint_every_minutes >= 0:
        raise UserError(f"train.checkpoint_every_minutes must be >= 0, got {cfg.checkpoint_every_minutes}")
    resume_from: Path | None = None
    if resume == "auto":
        resume_from = latest_checkpoint(out)
    elif resume:
        resume_from = Path(resume)
        if not resume_from.is_dir():
            raise UserError(
                f"checkpoint {resume_from} does not exist; pass a checkpoints/step_N folder of a run"
            )

    # cpu=True on a machine without an accelerator lets a multi-process launch (accelerate launch
    # --multi_gpu / torchrun) form a gloo process group instead of N independent runs.
    no_gpu = not (torch.cuda.is_available() or torch.backends.mps.is_available())
    accelerator = Accelerator(
        cpu=no_gpu,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        mixed_precision=cfg.mixed_precision,
        log_with=log_with,
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
    )
    if cfg.allow_tf32 and torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
    set_seed(cfg.seed, device_specific=True)  # each process draws its own noise
    main = accelerator.is_main_process

    model = task.build(accelerator)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = _optimizer(params, cfg)
    dataset = task.dataset()
    sampler = EpochSampler(len(dataset), cfg.seed)
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        collate_fn=task.collate,
        num_workers=cfg.num_workers,
    )
    n_proc = accelerator.num_processes
    lr_scheduler = get_scheduler(
        cfg.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=cfg.lr_warmup_steps * n_proc,
        num_training_steps=cfg.max_steps * n_proc,
    )
    model, optimizer, loader, lr_scheduler = accelerator.prepare(model, optimizer, loader, lr_scheduler)
    state = LoopState()
    accelerator.register_for_checkpointing(state)
    ema = None
    if cfg.ema:
        ema = make_ema(
            accelerator.unwrap_model(model).parameters(), cfg.ema_decay, cfg.ema_update_every, cfg.ema_warmup
        )
        accelerator.register_for_checkpointing(ema)

    if resume_from is not None:
        accelerator.load_state(str(resume_from))
        if main:
            log.info("resumed from %s at step %d", resume_from, state.step)
    # The logs keep only the steps the weights hold: a run killed before its first checkpoint starts
    # again at step 0, and one killed after a checkpoint repeats the steps logged since (each once).
    rank_log = out / "logs" / f"process_{accelerator.process_index}.jsonl"
    truncate_step_log(rank_log, state.step - 1)  # its lines carry the step before it was taken
    if main:
        truncate_step_log(out / TRAIN_LOG, state.step)
        out.mkdir(parents=True, exist_ok=True)
        if log_with is not None:
            accelerator.init_trackers("train")
    rank_log.parent.mkdir(parents=True, exist_ok=True)

    steps_per_epoch = math.ceil(len(loader) / cfg.gradient_accumulation_steps)
    clock = SaveClock(cfg.checkpoint_every_minutes)
    bar = progress(total=cfg.max_steps, initial=state.step, disable=not main, desc="train", unit="step")
    last_logs: dict[str, float] = {}
    model.train()
    while state.step < cfg.max_steps:
        # The prepared loader re-applies its own epoch counter to the sampler when iterated: set both.
        epoch_loader = (
            accelerator.skip_first_batches(loader, state.batches_in_epoch)
            if state.batches_in_epoch
            else loader
        )
        for dl in (loader, epoch_loader):
            if hasattr(dl, "set_epoch"):
                dl.set_epoch(state.epoch)
        sampler.set_epoch(state.epoch)
        finished_epoch = True
        for batch in epoch_loader:
            # Every random draw of a step comes from a generator seeded by the data position, so a
            # resumed run draws exactly what the uninterrupted run drew (whatever else used the RNG).
            gen = torch.Generator().manual_seed(
                _batch_seed(cfg.seed, accelerator.process_index, state.epoch, state.batches_in_epoch)
            )
            with accelerator.accumulate(model):
                loss, logs = task.loss(model, batch, state.step, gen)
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            state.batches_in_epoch += 1
            if rank_log is not None:
                with open(rank_log, "a") as f:
                    f.write(json.dumps({"step": state.step, "ids": task.batch_ids(batch)}) + "\n")
            if not accelerator.sync_gradients:
                continue
            state.step += 1
            if ema is not None and ema_due(state.step, cfg.ema_update_every, cfg.ema_warmup):
                ema.step(accelerator.unwrap_model(model).parameters())
            if state.step % cfg.log_every == 0 or state.step == cfg.max_steps:
                mean_loss = accelerator.gather(loss.detach().reshape(1)).float().mean().item()
                last_logs = {"loss": mean_loss, "lr": lr_scheduler.get_last_lr()[0], **logs}
                accelerator.log(last_logs, step=state.step)
                if main:
                    with open(out / TRAIN_LOG, "a") as f:
                        f.write(json.dumps({"step": state.step, **last_logs}) + "\n")
                bar.set_postfix(loss=f"{mean_loss:.4f}")
            bar.update(1)
            # Validation first: a checkpoint then stands for a step whose images are written (a run
            # killed while validating resumes before that step and validates it again, instead of
            # resuming from its checkpoint without them).
            if cfg.validate_every > 0 and state.step % cfg.validate_every == 0:
                _validate(accelerator, task, model, ema, out, state.step)
            if (cfg.checkpoint_every > 0 and state.step % cfg.checkpoint_every == 0) or clock.due(
                accelerator
            ):
                _checkpoint(accelerator, out, state.step, cfg.checkpoints_total_limit)
                clock.reset()
            if state.step >= cfg.max_steps:
                finished_epoch = state.batches_in_epoch >= len(loader)
                break
        if finished_epoch:
            state.epoch += 1
            state.batches_in_epoch = 0
    bar.close()

    accelerator.wait_for_everyone()
    unwrapped = accelerator.unwrap_model(model)
    digest = params_digest(unwrapped)
    if rank_log is not None:
        with open(rank_log, "a") as f:
            # with its step, so a rerun that resumes before it (and takes the steps again) cuts it
            f.write(json.dumps({"step": state.step, "final_params_sha256": digest}) + "\n")
    if main:
        if ema is not None:
            ema.store(unwrapped.parameters())
            ema.copy_to(unwrapped.parameters())
        task.save(unwrapped, out)
        if ema is not None:
            ema.restore(unwrapped.parameters())
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if n_proc == 1:  # let a later run in this process pick other settings (mixed precision, cpu)
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(reset_partial_state=True)
    return {
        "step": state.step,
        "steps_per_epoch": steps_per_epoch,
        "params_sha256": digest,
        "last": last_logs,
        "num_processes": n_proc,
        "is_main_process": main,
    }


def _checkpoint(accelerator, out: Path, step: int, limit: int | None) -> None:
    """Save the state under a temporary name and rename it whole: a run killed mid-save must not leave a
    half ``step_N`` that the next run would pick as its latest checkpoint and fail to load."""
    folder = out / CHECKPOINTS / f"step_{step}"
    tmp = folder.with_name(f".{folder.name}.tmp")
    if accelerator.is_main_process:
        for stale in (out / CHECKPOINTS).glob(".step_*.tmp"):  # saves a kill cut short
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()  # every process's files (its RNG states) are in tmp
    if accelerator.is_main_process:
        _publish(tmp, folder)
    accelerator.wait_for_everyone()
    if accelerator.is_local_main_process and tmp.is_dir():  # a node that does not share the main's disk
        _publish(tmp, folder)
    if accelerator.is_main_process and limit:
        steps = sorted(
            (int(m.group(1)), p)
            for p in (out / CHECKPOINTS).iterdir()
            if (m := re.fullmatch(r"step_(\d+)", p.name))
        )
        for _, p in steps[:-limit]:
            shutil.rmtree(p, ignore_errors=True)


def _publish(tmp: Path, folder: Path) -> None:
    """Flush ``tmp``'s files to disk, then rename it to ``folder`` (replacing an older save of that step)."""
    for f in tmp.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)


def _validate(accelerator, task: TrainTask, model, ema, out: Path, step: int) -> None:
    if not accelerator.is_main_process:
        accelerator.wait_for_everyone()
        return
    from PIL import Image

    unwrapped = accelerator.unwrap_model(model)
    if ema is not None:
        ema.store(unwrapped.parameters())
        ema.copy_to(unwrapped.parameters())
    was_training = unwrapped.training
    unwrapped.eval()
    try:
        images = task.validate(unwrapped, step)
    finally:
        if was_training:
            unwrapped.train()
        if ema is not None:
            ema.restore(unwrapped.parameters())
    folder = out / "validation" / f"step_{step}"
    tmp = folder.with_name(f".{folder.name}.tmp")  # renamed when every image is in: never half a step
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    writer = None
    if accelerator.trackers:
        try:
            writer = accelerator.get_tracker("tensorboard", unwrap=True)
        except Exception:
            writer = None
    for name, img in images.items():
        Image.fromarray(img).save(tmp / f"{name}.png")
        if writer is not None and hasattr(writer, "add_image"):
            writer.add_image(f"validation/{name}", img, step, dataformats="HWC")
    _publish(tmp, folder)
    accelerator.wait_for_everyone()
