"""The training loop: mixed record datasets -> ReconModel, with accelerate, checkpoints and resume.

Runs as one process by default and under ``accelerate launch`` unchanged: each process draws its own
ratio-mixed stream (seeded by rank) and gradients are synchronised by accelerate's DDP wrapper. A run
folder that already holds checkpoints is resumed from the latest one, provided the settings that shape
the result (data, model, optimiser, losses, seed) are the same; bookkeeping fields may change.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from handsynth.data.folder import truncate_step_log
from handsynth.data.settings import refuse_other_settings
from handsynth.errors import UserError
from handsynth.progress import progress as progress_bar
from handsynth.recon.checkpoint import list_checkpoints, load_weights, save_checkpoint
from handsynth.recon.config import TrainConfig
from handsynth.recon.data import HandCrops, MixedCrops
from handsynth.recon.losses import recon_loss
from handsynth.recon.model import ReconModel, load_hand_model_for
from handsynth.recon.sampler import RatioSampler, parse_data_spec
from handsynth.save_clock import SaveClock

log = logging.getLogger(__name__)

# Fields that may differ between a run and its resume (they do not change what is learnt).
RESUMABLE_CHANGES = {
    "steps",
    "save_every",
    "save_every_minutes",
    "log_every",
    "num_workers",
    "image_cache_mb",
    "keep_last",
    "log_with",
    "out",
}


def build_datasets(
    cfg: TrainConfig, hand_mean: np.ndarray | None = None
) -> tuple[MixedCrops, list[float], list[str]]:
    """The mixed per-hand dataset, its ratios and dataset paths, from ``cfg.data`` specs; ``hand_mean``:
    the right hand model's mean pose, for records with absolute poses (:class:`HandCrops`)."""
    from handsynth.data.folder import dataset_root, read_dataset

    if not cfg.data:
        raise UserError("no training data: pass --in PATH[:RATIO] at least once (e.g. --in real:1.0)")
    parts, ratios, paths = [], [], []
    aug = cfg.aug if cfg.augment else None
    for spec in cfg.data:
        path, ratio = parse_data_spec(spec)
        samples = read_dataset(path)
        parts.append(
            HandCrops(
                samples,
                dataset_root(path),
                cfg.model.img_size,
                cfg.model.expand,
                cfg.model.hand_model,
                aug,
                cfg.image_cache_mb,
                hand_mean,
            )
        )
        ratios.append(ratio)
        paths.append(path)
    return MixedCrops(parts), ratios, paths


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up then cosine decay to 1% of the base rate."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress))


# Model settings that may differ between an --init run and the fine-tune (a file location, not the net).
INIT_IGNORED = {"hand_model_path"}


def init_weights(cfg: TrainConfig) -> dict[str, torch.Tensor] | None:
    """The network weights ``cfg.init`` names (None without it), checked against ``cfg.model``: a folder
    that is not a recon run or checkpoint, or one trained with other model settings, is one UserError."""
    if not cfg.init:
        return None
    how = "pass a `handsynth recon train` run folder (checkpoints/step_*) or one of its checkpoint folders"
    try:
        saved, state, _ = load_weights(cfg.init)
    except (UserError, OSError, KeyError, TypeError, ValueError):
        raise UserError(f"--init {cfg.init} is not a reconstruction run: {how}") from None
    diff = [
        f"{k}={getattr(saved, k)!r} there, {getattr(cfg.model, k)!r} here"
        for k in saved.to_dict()
        if k not in INIT_IGNORED and getattr(saved, k) != getattr(cfg.model, k)
    ]
    if diff:
        raise UserError(
            f"--init {cfg.init} was trained with other model settings ({'; '.join(diff)}); "
            "pass the same model flags (or drop --init)"
        )
    return state


def build_model(cfg: TrainConfig, hand_model: nn.Module, init: dict[str, torch.Tensor] | None) -> ReconModel:
    """The network a run starts from: seeded fresh weights, or exactly ``init``'s (fine-tuning)."""
    torch.manual_seed(cfg.seed)
    model = ReconModel(cfg.model, hand_model)
    if init is not None:
        missing, unexpected = model.net.load_state_dict(init, strict=False)
        if missing or unexpected:
            raise UserError(
                f"--init {cfg.init}: its weights do not fit this network (missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}); pass a run trained with the same model settings"
            )
    return model


def _check_resume(out: Path, cfg: TrainConfig) -> None:
    saved_path = out / "train_config.json"
    if not saved_path.exists():
        return
    old, new = json.loads(saved_path.read_text()), json.loads(json.dumps(cfg.to_dict()))
    how = "use a new --out folder or pass --overwrite to start it again"
    refuse_other_settings(out, old, new, how, ignore=RESUMABLE_CHANGES)


def train(
    cfg: TrainConfig, hand_model: nn.Module | None = None, overwrite: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Train (or resume) a run in ``cfg.out``; returns a summary (final step, last losses, checkpoint)."""
    from accelerate import Accelerator

    cfg.check()
    out = Path(cfg.out)
    if not overwrite:
        _check_resume(out, cfg)
    # Nothing in ``out`` is written or removed before the first batch is drawn (_start): a failed start
    # that left train_config.json would refuse the corrected command as "a run with different settings".
    if hand_model is None:
        hand_model = load_hand_model_for(cfg.model)
    mean = getattr(hand_model, "hand_mean", None)
    dataset, ratios, paths = build_datasets(cfg, None if mean is None else mean.double().cpu().numpy())
    init = init_weights(cfg)

    acc = Accelerator(
        mixed_precision=cfg.mixed_precision, log_with=cfg.log_with, project_dir=str(out / "logs")
    )
    sampler = RatioSampler(  # refuses a dataset with no hands
        [len(p) for p in dataset.parts], ratios, cfg.seed, acc.process_index, acc.num_processes
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        drop_last=True,
        pin_memory=acc.device.type == "cuda",
        persistent_workers=False,
    )
    model = build_model(cfg, hand_model, init)  # a resumed run then loads its own checkpoint over it
    optimizer = torch.optim.AdamW(model.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg.warmup, cfg.steps))

    step = 0
    counts = [0] * len(paths)  # hands drawn from each dataset by this process, over the whole run
    cks = [] if overwrite else list_checkpoints(out)  # --overwrite: removed once the run starts
    if cks:
        step, ck = cks[-1]
        from safetensors.torch import load_file

        model.net.load_state_dict(load_file(str(ck / "model.safetensors")))
        trainer_state = torch.load(ck / "trainer.pt", map_location="cpu", weights_only=False)
        optimizer.load_state_dict(trainer_state["optimizer"])
        scheduler.load_state_dict(trainer_state["scheduler"])
        saved = json.loads((ck / "state.json").read_text())
        counts = [int(saved.get("draws", {}).get(p, 0)) for p in paths]
        log.info("resuming %s from step %d", out, step)
    sampler.start = step * cfg.batch_size  # read when the loader starts iterating
    model, optimizer = acc.prepare(model, optimizer)
    inner = acc.unwrap_model(model)
    model.train()
    inner.hand_model.eval()

    last: dict[str, float] = {}
    bar = progress_bar(
        total=cfg.steps,
        initial=step,
        desc="recon train",
        unit="step",
        disable=not (progress and acc.is_main_process),
    )
    started = False
    clock = SaveClock(cfg.save_every_minutes)
    it = iter(loader)
    try:
        while step < cfg.steps:
            batch = next(it)
            if not started:  # the first batch decoded: the data is usable, the run has begun
                started = _start(acc, out, cfg, overwrite, step)
            batch = {k: v.to(acc.device, non_blocking=True) for k, v in batch.items()}
            with acc.autocast():
                pred = model(batch["image"])
                loss, parts = recon_loss(pred, batch, inner.hand_model, cfg.loss)
            optimizer.zero_grad(set_to_none=True)
            acc.backward(loss)
            if cfg.grad_clip > 0:
                acc.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            for d in batch["dataset"].tolist():
                counts[d] += 1
            last = {"loss": float(loss.detach()), **parts}
            bar.update(1)
            bar.set_postfix(loss=f"{last['loss']:.4f}")
            if step % cfg.log_every == 0 or step == cfg.steps:
                rec = {
                    "step": step,
                    "lr": scheduler.get_last_lr()[0],
                    **last,
                    "draws": dict(zip(paths, counts)),
                }
                if acc.is_main_process:
                    with open(out / "train_log.jsonl", "a", encoding="utf-8") as f:
                        f.write(json.dumps(rec) + "\n")
                if cfg.log_with:
                    acc.log({k: v for k, v in rec.items() if isinstance(v, float)}, step=step)
            if step % cfg.save_every == 0 or step == cfg.steps or clock.due(acc):
                _save(acc, out, inner, optimizer, scheduler, cfg, step, dict(zip(paths, counts)))
                clock.reset()
        if not started:  # a finished run asked for no more steps: its settings are still recorded
            started = _start(acc, out, cfg, overwrite, step)
    finally:
        bar.close()
        if cfg.log_with and started:
            acc.end_training()
        if acc.num_processes == 1:  # let a later run in this process pick other settings (as the loop does)
            from accelerate.state import AcceleratorState

            AcceleratorState._reset_state(reset_partial_state=True)
    final = list_checkpoints(out)
    return {"step": step, "last": last, "checkpoint": str(final[-1][1]) if final else None, "draws": counts}


def _start(acc: Any, out: Path, cfg: TrainConfig, overwrite: bool, step: int) -> bool:
    """Remove the old run (``overwrite``), record the settings (what a resume is compared with) and start
    the trackers; called once every input has proven usable, so a failed start leaves ``out`` as it was.

    The log is cut back to ``step``, the checkpoint the run starts from: the steps an interrupted run
    logged after it (all of them when it had none) are taken again and must be logged once.
    """
    if acc.is_main_process:
        for name in ("checkpoints", "train_log.jsonl", "train_config.json") if overwrite else ():
            p = out / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        truncate_step_log(out / "train_log.jsonl", step)
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    if cfg.log_with:
        acc.init_trackers("recon", config={k: str(v) for k, v in cfg.to_dict().items()})
    return True


def _save(
    acc: Any,
    out: Path,
    inner: ReconModel,
    optimizer: Any,
    scheduler: Any,
    cfg: TrainConfig,
    step: int,
    draws: dict,
) -> None:
    acc.wait_for_everyone()
    if acc.is_main_process:
        folder = out / "checkpoints" / f"step_{step:07d}"
        save_checkpoint(
            folder,
            inner.net,
            cfg.model,
            train_cfg=cfg.to_dict(),
            trainer_state={"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
            state={"step": step, "draws": draws},
        )
        for _, old in list_checkpoints(out)[: -max(1, cfg.keep_last)]:
            shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()
