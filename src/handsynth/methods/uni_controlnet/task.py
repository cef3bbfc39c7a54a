"""Uni-ControlNet training on the shared loop (:func:`handsynth.diffusion.training.run_training`).

Per step (released training recipe): the prompt is dropped with ``data.drop_text_prob``; the condition
maps are all kept (``keep_all_maps_prob``), all zeroed (``drop_all_maps_prob``) or each zeroed with
``drop_each_map_prob``; then the usual epsilon (or v) regression of the frozen UNet plus the adapter's
residuals. Every random draw comes from the loop's per-batch generator, so a resumed run draws the
same as the uninterrupted one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from handsynth.config import CONFIG_NAME, save_config
from handsynth.methods.record_task import RecordTrainTask
from handsynth.methods.uni_controlnet.config import WEIGHTS_DIR, UniControlNetConfig
from handsynth.methods.uni_controlnet.data import (
    UniControlNetDataset,
    condition_channels,
    map_channels,
    open_image,
)

if TYPE_CHECKING:
    from accelerate import Accelerator

    from handsynth.methods.uni_controlnet.adapter import UniControlAdapter


class UniControlNetTask(RecordTrainTask):
    """The :class:`~handsynth.diffusion.training.TrainTask` of Uni-ControlNet's local adapter."""

    weights_dir = WEIGHTS_DIR

    def __init__(self, cfg: UniControlNetConfig, data: str | Path) -> None:
        self.cfg = cfg.check()
        super().__init__(cfg.model.base_model, data, cfg.data.max_samples, cfg.model.base_config)
        m = cfg.model
        self._dataset = UniControlNetDataset(self.samples, self.root, m.resolution, m.maps, m.missing_maps)

    # -- TrainTask API --
    def build(self, accelerator: Accelerator) -> torch.nn.Module:
        from handsynth.diffusion.base import load_base
        from handsynth.diffusion.schedulers import training_scheduler
        from handsynth.methods.uni_controlnet.adapter import UniControlAdapter

        m = self.cfg.model
        self.accelerator = accelerator
        base = load_base(m.base_model, base_config=m.base_config)
        adapter = UniControlAdapter.from_unet(
            base.unet,
            m.maps,
            condition_channels(m.maps),
            m.inject_channels,
            m.stem_channels,
            base.vae_scale_factor,
        )
        adapter.train()
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
            accelerator.mixed_precision, torch.float32
        )
        base.to(accelerator.device, dtype)
        if self.cfg.train.gradient_checkpointing:
            base.unet.enable_gradient_checkpointing()
            adapter.enable_gradient_checkpointing()
        self.base = base
        self.scheduler = training_scheduler(base.scheduler_config)
        return adapter

    def drop_conditions(
        self, prompts: list[str], cond: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[list[str], torch.Tensor]:
        """The released recipe's text and condition dropout (zeroed maps), drawn from ``generator``."""
        d = self.cfg.data
        n = len(prompts)
        text_u = torch.rand(n, generator=generator).tolist()
        all_u = torch.rand(n, generator=generator).tolist()
        each_u = torch.rand(n, len(self.cfg.model.maps), generator=generator).tolist()
        prompts = ["" if u < d.drop_text_prob else p for p, u in zip(prompts, text_u)]
        keep = torch.ones(cond.shape[:2])
        bounds = np.cumsum([0, *(map_channels(m) for m in self.cfg.model.maps)])
        for b in range(n):
            if all_u[b] < d.keep_all_maps_prob:
                continue
            if all_u[b] < d.keep_all_maps_prob + d.drop_all_maps_prob:
                keep[b] = 0
                continue
            for k, u in enumerate(each_u[b]):
                if u < d.drop_each_map_prob:
                    keep[b, bounds[k] : bounds[k + 1]] = 0
        return prompts, cond * keep[:, :, None, None].to(cond)

    def loss(
        self, model: torch.nn.Module, batch: dict, step: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        from handsynth.diffusion.controlnet import controlled_unet_forward
        from handsynth.diffusion.encoding import encode_images, tokenize
        from handsynth.diffusion.schedulers import training_target

        base = self.base
        dev = base.unet.device
        x0 = encode_images(base, batch["image"].to(dev), generator=generator).float()
        prompts, cond = self.drop_conditions(list(batch["prompt"]), batch["cond"], generator)
        with torch.no_grad():
            text = base.text_encoder(tokenize(base.tokenizer, prompts).to(dev))[0]
        n = x0.shape[0]
        noise = torch.randn(x0.shape, generator=generator, device="cpu").to(dev)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (n,), generator=generator).to(dev)
        xt = self.scheduler.add_noise(x0, noise, t)
        target = training_target(self.scheduler, x0, noise, t)
        pred = controlled_unet_forward(base.unet, model, xt, t, text, cond.to(dev, dtype=xt.dtype)).float()
        loss = F.mse_loss(pred, target.float())
        return loss, {"maps_kept": float((cond.flatten(1).abs().sum(1) > 0).float().mean())}

    def validate(self, model: torch.nn.Module, step: int) -> dict[str, np.ndarray]:
        """The first validation samples through the generator's sampling loop: maps | image."""
        from handsynth.diffusion.schedulers import sampling_scheduler
        from handsynth.methods.interface import GenRequest, SamplingConfig, WorkItem
        from handsynth.methods.uni_controlnet.generator import UniControlSampler

        v, res = self.cfg.validation, self.cfg.model.resolution
        sampling = SamplingConfig(steps=v.num_inference_steps, guidance=v.guidance_scale, scheduler=v.sampler)
        sampler = UniControlSampler(
            self.base,
            model,
            sampling_scheduler(self.base.scheduler_config, v.sampler),
            sampling,
            maps=self.cfg.model.maps,
        )
        out = {}
        ds = self._dataset
        for i in range(min(v.num_samples, len(ds))):
            s = ds.samples[i]
            work = WorkItem(index=i, sample=s, prompt_index=0, out_id=s.id, prompt=s.prompt, seed=v.seed)
            maps = {m: open_image(ds.root / s.conditions[m]) for m in ds.maps if m in s.conditions}
            request = GenRequest(item=work, width=res, height=res, conditions=maps)
            image = sampler([request])[0].image
            cond = ds[i]["cond"][:3].permute(1, 2, 0).numpy()
            tiles = [(np.clip(cond, 0, 1) * 255).astype(np.uint8), np.asarray(image.convert("RGB"))]
            out[f"sample_{s.id}"] = np.concatenate(tiles, axis=1)
        return out

    def save(self, model: UniControlAdapter, folder: Path) -> None:
        model.save_pretrained(Path(folder) / WEIGHTS_DIR)
        from handsynth.methods.attentionhand.training import config_for_run_folder

        save_config(config_for_run_folder(self.cfg, folder), Path(folder) / CONFIG_NAME)  # base run-relative
