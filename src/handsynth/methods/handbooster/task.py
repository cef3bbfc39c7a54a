"""HandBooster training on the shared loop (:func:`handsynth.diffusion.training.run_training`).

Per step (paper Eq. 2): x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps; the UNet predicts x0 from x_t, the
condition channels and the orientation (replaced by the learned null vector with
``orientation.drop_prob``); the loss is ``mean(w * abar_t / (1 - abar_t) * |x0_hat - x0|^p)`` with w = 1 on
hand / object pixels and ``loss.background_weight`` elsewhere. With w = 1 and p = 2 this is exactly the
epsilon-space MSE of the implied noise prediction (the SNR-weighted x0 loss is the usual eps loss).
Every random draw comes from the loop's per-batch generator, so a resumed run draws what the
uninterrupted one drew.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from handsynth.config import CONFIG_NAME, save_config
from handsynth.methods.handbooster.config import CONDITION_CHANNELS, HandBoosterConfig, LossConfig
from handsynth.methods.handbooster.data import HandBoosterDataset
from handsynth.methods.record_task import RecordTrainTask

if TYPE_CHECKING:
    from accelerate import Accelerator
    from diffusers import DDPMScheduler

    from handsynth.methods.handbooster.model import HandBoosterModel


def snr(scheduler: DDPMScheduler, t: torch.Tensor) -> torch.Tensor:
    """abar_t / (1 - abar_t) for integer timesteps ``t`` (B,)."""
    a = scheduler.alphas_cumprod.to(t.device)[t.long()].float()
    return a / (1 - a)


def x0_loss(
    pred: torch.Tensor,
    x0: torch.Tensor,
    t: torch.Tensor,
    weight: torch.Tensor,
    scheduler: DDPMScheduler,
    cfg: LossConfig,
) -> torch.Tensor:
    """Eq. 2: the SNR- and pixel-weighted x0 error (``loss.type`` l2 squared, l1 absolute)."""
    s = snr(scheduler, t)
    if cfg.min_snr_gamma is not None:
        s = s.clamp(max=cfg.min_snr_gamma)
    diff = pred.float() - x0.float()
    err = diff.square() if cfg.type == "l2" else diff.abs()
    return (weight.to(err) * s.view(-1, 1, 1, 1) * err).mean()


class HandBoosterTask(RecordTrainTask):
    """The :class:`~handsynth.diffusion.training.TrainTask` of the HandBooster UNet + orientation MLP."""

    weights_dir = "unet"

    def __init__(self, cfg: HandBoosterConfig, data: str | Path) -> None:
        self.cfg = cfg.check()
        super().__init__(None, data, cfg.data.max_samples)
        self._dataset = HandBoosterDataset(self.samples, self.root, cfg)

    def batch_ids(self, batch: dict) -> list[str]:
        return list(batch["id"])

    # -- TrainTask API --
    def build(self, accelerator: Accelerator) -> torch.nn.Module:
        from handsynth.diffusion.schedulers import training_scheduler
        from handsynth.methods.handbooster.model import HandBoosterModel

        self.accelerator = accelerator
        self.scheduler = training_scheduler(self.cfg.scheduler_config())
        torch.manual_seed(self.cfg.train.seed)  # the initial weights are a function of the seed
        model = HandBoosterModel(self.cfg).to(accelerator.device)
        if self.cfg.train.gradient_checkpointing:
            model.unet.enable_gradient_checkpointing()
        return model.train()

    def noisy_batch(
        self, batch: dict, generator: torch.Generator | None, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x0, noise, t, drop) of one batch, every draw from ``generator``."""
        x0 = batch["image"].to(device)
        n = x0.shape[0]
        noise = torch.randn(x0.shape, generator=generator).to(device)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (n,), generator=generator).to(device)
        drop = (torch.rand(n, generator=generator) < self.cfg.orientation.drop_prob).to(device)
        return x0, noise, t, drop

    def loss(
        self, model: torch.nn.Module, batch: dict, step: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        device = next(model.parameters()).device
        x0, noise, t, drop = self.noisy_batch(batch, generator, device)
        xt = self.scheduler.add_noise(x0, noise, t)
        pred = model(xt, t, batch["conditions"].to(device), batch["quaternion"].to(device), drop)
        loss = x0_loss(pred, x0, t, batch["weight"].to(device), self.scheduler, self.cfg.loss)
        return loss, {"orientation_dropped": float(drop.float().mean())}

    def validate(self, model: HandBoosterModel, step: int) -> dict[str, np.ndarray]:
        """conditions | generated | real for the first validation items (the generator's sampler)."""
        from handsynth.methods.handbooster.generator import denoise, sampler_scheduler

        v = self.cfg.validation
        ds = self._dataset
        out = {}
        for i in range(min(v.num_samples, len(ds))):
            item = ds[i]
            scheduler = sampler_scheduler(self.cfg, "ddim", v.num_inference_steps, v.timestep_spacing)
            x = denoise(
                model,
                scheduler,
                item["conditions"][None],
                item["quaternion"][None],
                [torch.Generator().manual_seed(v.seed + i)],
                v.guidance_scale,
                v.eta,
            )
            first = CONDITION_CHANNELS[self.cfg.model.conditions[0]]  # the first map, as a picture
            tiles = [item["conditions"][:first], x[0].cpu(), item["image"]]
            out[f"sample_{item['id']}"] = np.concatenate([to_uint8(t) for t in tiles], axis=1)
        return out

    def save(self, model: HandBoosterModel, folder: Path) -> None:
        model.save(folder)
        save_config(self.cfg, Path(folder) / CONFIG_NAME)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) uint8 (a 1-channel map is repeated)."""
    x = x.detach().float()
    if x.shape[0] == 1:
        x = x.repeat(3, 1, 1)
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
