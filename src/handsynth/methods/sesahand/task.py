"""SesaHand training on the shared loop (:func:`handsynth.diffusion.training.run_training`).

Per step: x_t from the image latent, epsilon (or v, as the base says) regression of the frozen UNet plus
the :class:`~handsynth.methods.sesahand.fusion.StructuralFusion` residuals, with HSA biasing every
cross-attention of the UNet and the trunk (``hsa.enabled``). Every random draw comes from the loop's
per-batch generator, so a resumed run draws the same as the uninterrupted one.

HSA's per-batch state stays active from one :meth:`SesaHandTask.loss` call to the next, so the
backward pass the loop runs after ``loss`` (and a gradient-checkpointing recompute) sees the same bias.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from handsynth.config import CONFIG_NAME, save_config
from handsynth.diffusion.attention import install_attention_store
from handsynth.diffusion.base import load_base
from handsynth.diffusion.controlnet import controlled_unet_forward
from handsynth.diffusion.encoding import encode_images, prompt_lengths, tokenize
from handsynth.diffusion.hand_bias import install_hand_bias
from handsynth.diffusion.schedulers import sampling_scheduler, training_scheduler, training_target
from handsynth.methods.attentionhand.training import apply_tas, config_for_run_folder, tas_forward
from handsynth.methods.interface import GenRequest, SamplingConfig, WorkItem
from handsynth.methods.record_task import RecordTrainTask
from handsynth.methods.sesahand.config import SesaHandConfig
from handsynth.methods.sesahand.data import SesaHandDataset, stream_channels
from handsynth.methods.sesahand.fusion import StructuralFusion
from handsynth.methods.sesahand.generator import SesaHandSampler
from handsynth.methods.uni_controlnet.data import open_image

if TYPE_CHECKING:
    from accelerate import Accelerator


class SesaHandTask(RecordTrainTask):
    """The :class:`~handsynth.diffusion.training.TrainTask` of SesaHand."""

    def __init__(self, cfg: SesaHandConfig, data: str | Path) -> None:
        self.cfg = cfg.check()
        super().__init__(cfg.model.base_model, data, cfg.data.max_samples, cfg.model.base_config)
        m = cfg.model
        self._dataset = SesaHandDataset(
            self.samples, self.root, m.resolution, cfg.stream_maps(), cfg.data.prompt_field, cfg.hsa.enabled
        )
        self.hsa = None
        self.store = None  # the UNet's attention store (tas.enabled)
        self._active = None  # the open HSA conditioning block of the last loss() call

    # -- TrainTask API --
    def build(self, accelerator: Accelerator) -> torch.nn.Module:
        cfg = self.cfg
        self.accelerator = accelerator
        base = load_base(cfg.model.base_model, base_config=cfg.model.base_config)
        model = StructuralFusion.from_unet(
            base.unet,
            stream_channels(cfg.stream_maps()),
            cfg.fusion,
            cfg.model.conditioning_embedding_out_channels,
        )
        model.train()
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
            accelerator.mixed_precision, torch.float32
        )
        base.to(accelerator.device, dtype)
        model.to(accelerator.device)
        if cfg.train.gradient_checkpointing:
            base.unet.enable_gradient_checkpointing()
            model.enable_gradient_checkpointing()
        if self.tas_on:
            self.store = install_attention_store(base.unet)
        if cfg.hsa.enabled:
            self.hsa = install_hand_bias(
                {"unet": base.unet, "controlnet": model.controlnet}, cfg.hsa.to_hsa()
            )
            if cfg.hsa.learnable != "none":
                model.hsa = self.hsa  # the per-layer betas train (and save) with the module
        self.base = base
        self.scheduler = training_scheduler(base.scheduler_config)
        return model

    @property
    def tas_on(self) -> bool:
        return self.cfg.tas.enabled and self.cfg.tas.iterations > 0

    def _tas(self, model, batch_parts: tuple, generator: torch.Generator | None) -> tuple:
        """AttentionHand's TAS on this step's latents (its code, phi_d alone or phi_d + the fusion)."""
        xt, t, x0, noise, text, cond, prompts, indices = batch_parts
        unet, acc = self.base.unet, self.accelerator
        controlled = None
        fusion = acc.unwrap_model(model) if acc is not None else model
        if self.cfg.tas.unet == "controlled":

            def controlled(x: torch.Tensor):
                return controlled_unet_forward(unet, fusion, x, t, text, cond.to(x.dtype))

        forward = tas_forward(unet, t, text, controlled, (fusion,), acc)
        lengths = prompt_lengths(tokenize(self.base.tokenizer, prompts), self.base.tokenizer.eos_token_id)
        return apply_tas(
            self.cfg.tas, self.store, forward, self.scheduler, xt, t, x0, noise, indices, lengths, generator
        )

    def _release_hsa(self) -> None:
        if self._active is not None:
            self._active.__exit__(None, None, None)
            self._active = None

    def loss(
        self, model: torch.nn.Module, batch: dict, step: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        base = self.base
        dev = base.unet.device
        prompts, indices = list(batch["prompt"]), [list(i) for i in batch["indices"]]
        p = self.cfg.data.empty_prompt_prob
        if p > 0:
            drop = (torch.rand(len(prompts), generator=generator) < p).tolist()
            prompts = ["" if d else q for q, d in zip(prompts, drop)]
            indices = [[] if d else i for i, d in zip(indices, drop)]
        x0 = encode_images(base, batch["image"].to(dev), generator=generator).float()
        with torch.no_grad():
            text = base.text_encoder(tokenize(base.tokenizer, prompts).to(dev))[0]
        n = x0.shape[0]
        noise = torch.randn(x0.shape, generator=generator, device="cpu").to(dev)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (n,), generator=generator).to(dev)
        xt = self.scheduler.add_noise(x0, noise, t)
        cond = batch["cond"].to(dev, dtype=xt.dtype)
        self._release_hsa()  # TAS reads the unbiased attention (HSA and TAS are alternatives)
        logs = {"hand_token_share": float(np.mean([bool(i) for i in indices]))}
        target_noise = noise
        if self.tas_on:
            parts = (xt, t, x0, noise, text, cond, prompts, indices)
            xt, target_noise, tas_logs = self._tas(model, parts, generator)
            logs.update(tas_logs)
        target = training_target(self.scheduler, x0, target_noise, t)
        if self.hsa is not None:
            self._active = self.hsa.conditioning(
                batch["hand_mask"].to(dev), indices, latent_hw=tuple(xt.shape[-2:]), timesteps=t
            )
            self._active.__enter__()
        pred = controlled_unet_forward(base.unet, model, xt, t, text, cond).float()
        loss = F.mse_loss(pred, target.float())
        return loss, logs

    def sampler(self, model: StructuralFusion):
        """The generator's sampling loop on this run's base and module (validation)."""

        v = self.cfg.validation
        sampling = SamplingConfig(steps=v.num_inference_steps, guidance=v.guidance_scale, scheduler=v.sampler)
        return SesaHandSampler(
            self.base,
            model,
            sampling_scheduler(self.base.scheduler_config, v.sampler),
            sampling,
            stream_maps=self.cfg.stream_maps(),
            hsa=self.hsa,
        )

    def validate(self, model: torch.nn.Module, step: int) -> dict[str, np.ndarray]:
        """The first validation samples through the generator's loop: fine maps | image."""

        self._release_hsa()
        v, res = self.cfg.validation, self.cfg.model.resolution
        sampler = self.sampler(model)
        out = {}
        ds = self._dataset
        for i in range(min(v.num_samples, len(ds))):
            s = ds.samples[i]
            work = WorkItem(index=i, sample=s, prompt_index=0, out_id=s.id, prompt=ds.prompts[i], seed=v.seed)
            work.hand_token_indices = list(ds.indices[i])
            maps = {m: open_image(ds.root / s.conditions[m]).convert("RGB") for m in ds.maps}
            image = sampler([GenRequest(item=work, width=res, height=res, conditions=maps)])[0].image
            cond = ds[i]["cond"][:3].permute(1, 2, 0).numpy()
            tiles = [(np.clip(cond, 0, 1) * 255).astype(np.uint8), np.asarray(image.convert("RGB"))]
            out[f"sample_{s.id}"] = np.concatenate(tiles, axis=1)
        return out

    def save(self, model: StructuralFusion, folder: Path) -> None:
        self._release_hsa()
        model.save(folder)
        save_config(config_for_run_folder(self.cfg, folder), Path(folder) / CONFIG_NAME)  # base run-relative
