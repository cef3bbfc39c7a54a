"""Our ControlNet sampling loop: diffusers' ControlNet pipeline step for step, plus what it lacks.

Why our own loop: AttentionHand's ``global+local`` mode denoises the local hand crop together with the
global image (one batched forward through the shared weights) and blends it back into the hand box
after every step, and TAS refines the latents during the first steps. Neither fits the stock pipeline.
With ``mode='global'`` and no refinement this loop computes exactly what
``StableDiffusionControlNetPipeline`` computes (tested against it; benchmarked for overhead).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from handsynth.generate.method import GenRequest, GenResult, SamplingConfig, encode_prompts, generators

if TYPE_CHECKING:
    from diffusers import ControlNetModel, SchedulerMixin

    from handsynth.diffusion.base import BaseModel
    from handsynth.diffusion.controlnet import GuidanceModule
    from handsynth.diffusion.tas import TASConfig

MODES = ("global", "global+local")


@dataclass
class LocalBlend:
    """How the local branch goes back into the global latents after each step."""

    weight: float = 0.5  # 1: the local branch replaces the hand box; 0: branches never meet


@dataclass
class TASOptions:
    """TAS at inference: the stage's settings (shared with training) and the A&E-style schedule."""

    stage: object  # handsynth.diffusion.tas.TASConfig
    inference: object  # handsynth.diffusion.tas.TASInferenceConfig
    capture_maps: bool = True  # keep hand-token maps for the overlays


def _to_pil(images: torch.Tensor) -> list[Image.Image]:
    arr = (images.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
    return [Image.fromarray(a) for a in arr]


def paste_local(
    global_latents: torch.Tensor,
    local_latents: torch.Tensor,
    boxes: list[list[float]],
    scale: int,
    weight: float,
) -> torch.Tensor:
    """Resize each local latent to its box (in latent pixels) and blend it into the global latent there.

    ``boxes`` are ``[x, y, side]`` in image pixels; parts of a box past the image border are dropped.
    """
    out = global_latents.clone()
    _, _, h, w = out.shape
    for b, box in enumerate(boxes):
        x, y, side = (v / scale for v in box)
        s = max(1, int(round(side)))
        x0, y0 = int(round(x)), int(round(y))
        gx0, gy0, gx1, gy1 = max(x0, 0), max(y0, 0), min(x0 + s, w), min(y0 + s, h)
        if gx1 <= gx0 or gy1 <= gy0:
            continue  # box entirely outside the image
        patch = F.interpolate(
            local_latents[b : b + 1].float(),
            size=(s, s),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        ).to(out.dtype)
        region = patch[0, :, gy0 - y0 : gy1 - y0, gx0 - x0 : gx1 - x0]
        out[b, :, gy0:gy1, gx0:gx1] = (1 - weight) * out[b, :, gy0:gy1, gx0:gx1] + weight * region
    return out


def hand_token_maps(
    maps: torch.Tensor, indices: list[list[int]], lengths: list[int], stage: TASConfig
) -> list[dict]:
    """Per sample, token position -> its refined (softmax over prompt tokens) map, as TAS sees it."""
    from handsynth.diffusion.tas import token_probabilities

    out = []
    for b, idx in enumerate(indices):
        probs, start = token_probabilities(maps[b].float(), lengths[b], stage)
        out.append({i: probs[..., i - start].cpu().numpy() for i in idx if 0 <= i - start < probs.shape[-1]})
    return out


class ControlNetSampler:
    """Classifier-free-guided ControlNet sampling (the unconditional half keeps the condition image).

    ``base`` is a :class:`handsynth.diffusion.base.BaseModel`; ``guidance`` a diffusers
    ``ControlNetModel`` or the shared :class:`handsynth.diffusion.controlnet.GuidanceModule` (a
    ``local`` net there serves the local branch: the separated-weights ablation).
    ``mode='global+local'`` needs square requests with local maps and a box.
    """

    def __init__(
        self,
        base: BaseModel,
        guidance: ControlNetModel | GuidanceModule,
        scheduler: SchedulerMixin,
        sampling: SamplingConfig,
        condition: str = "mesh",
        conditioning_scale: float = 1.0,
        mode: str = "global",
        local_blend: LocalBlend | None = None,
        tas: TASOptions | None = None,
    ) -> None:
        from diffusers.image_processor import VaeImageProcessor

        from handsynth.diffusion.controlnet import SHARED, GuidanceModule

        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not isinstance(guidance, GuidanceModule):
            guidance = GuidanceModule({SHARED: guidance})
        self.base = base
        self.guidance = guidance
        self.scheduler = scheduler
        self.sampling = sampling
        self.condition = condition
        self.conditioning_scale = conditioning_scale
        self.mode = mode
        self.local_blend = local_blend or LocalBlend()
        self.tas = tas if tas is not None and getattr(tas.inference, "enabled", False) else None
        self.store = None
        if self.tas is not None:
            from handsynth.diffusion.attention import install_attention_store

            self.store = install_attention_store(base.unet)
        self.image_processor = VaeImageProcessor(
            vae_scale_factor=base.vae_scale_factor, do_convert_rgb=True, do_normalize=False
        )
        self._step_kwargs = set(inspect.signature(scheduler.step).parameters)

    @property
    def device(self) -> torch.device:
        return self.base.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.base.unet.dtype

    def _control(self, images: list[Image.Image], width: int, height: int) -> torch.Tensor:
        x = self.image_processor.preprocess(images, height=height, width=width).to(dtype=torch.float32)
        return x.to(device=self.device, dtype=next(self.guidance.parameters()).dtype)

    def control_tensor(
        self, requests: list[GenRequest], width: int, height: int, local: bool = False
    ) -> torch.Tensor:
        """The guidance module's condition input for a batch (a method reading several maps overrides)."""
        maps = [(r.local_conditions if local else r.conditions)[self.condition] for r in requests]
        return self._control(maps, width, height)

    def _initial_noise(self, requests: list[GenRequest], shape: tuple[int, ...]) -> list[torch.Tensor]:
        """Per request: the global noise, then (global+local) the local noise, from the request's seed.

        Drawn in fp32 on the CPU so an image depends on its seed only (not on device, dtype or batch),
        and the global noise of ``global+local`` equals that of ``global``.
        """
        gens = generators(requests)
        one = (1, *shape[1:])
        glob = torch.cat([torch.randn(one, generator=g, dtype=torch.float32) for g in gens])
        out = [glob]
        if self.mode == "global+local":
            out.append(torch.cat([torch.randn(one, generator=g, dtype=torch.float32) for g in gens]))
        sigma = self.scheduler.init_noise_sigma
        return [(x * sigma).to(device=self.device, dtype=self.dtype) for x in out]

    def _groups(self, n: int, guided: bool) -> list[tuple[str, int]] | None:
        """Branch of each contiguous block of the batch (only matters with separate local weights)."""
        if self.mode != "global+local" or "local" not in self.guidance.nets:
            return None
        half = [("global", n), ("local", n)]
        return half * 2 if guided else half

    def _forward(self, latents, t, embeds, control, groups):
        from handsynth.diffusion.controlnet import controlled_unet_forward

        model_in = self.scheduler.scale_model_input(latents, t)
        return controlled_unet_forward(
            self.base.unet, self.guidance, model_in, t, embeds, control, groups, self.conditioning_scale
        )

    def _tas_step(self, latents, t, i, cond, control, groups, indices, lengths):
        """TAS on the conditional branch (bare φ_d or φ_d + φ_g, as the stage config says)."""
        from handsynth.diffusion.tas import tas_inference_step

        stage = self.tas.stage
        controlled = getattr(stage, "unet", "bare") == "controlled"

        def forward(x):
            if controlled:
                return self._forward(x, t, cond, control, groups)
            return self.base.unet(
                self.scheduler.scale_model_input(x, t), t, encoder_hidden_states=cond
            ).sample

        num_train = self.scheduler.config.num_train_timesteps
        latents, _ = tas_inference_step(
            forward,
            self.store,
            latents,
            t,
            i,
            indices,
            lengths,
            stage,
            self.tas.inference,
            num_train,
            num_steps=self.sampling.steps,
        )
        return latents, forward

    def _capture(self, forward, latents, indices, lengths) -> list[dict]:
        from handsynth.diffusion.attention import run_and_capture
        from handsynth.diffusion.tas import query_resolution

        stage = self.tas.stage
        hw = query_resolution(stage, tuple(latents.shape[-2:]))
        with torch.no_grad():
            maps = run_and_capture(forward, self.store, latents, hw, stop_early=True)
        return hand_token_maps(maps, indices, lengths, stage)

    @torch.no_grad()
    def __call__(self, requests: list[GenRequest]) -> list[GenResult]:
        sampling = self.sampling
        width, height = requests[0].width, requests[0].height
        n = len(requests)
        guided = sampling.guidance > 1.0
        local = self.mode == "global+local"
        base = self.base
        f = base.vae_scale_factor

        cond = encode_prompts(base, [r.prompt for r in requests], self.device).to(self.dtype)
        control = self.control_tensor(requests, width, height)
        if local:
            control = torch.cat([control, self.control_tensor(requests, width, height, local=True)])
            cond_all = torch.cat([cond, cond])
        else:
            cond_all = cond
        if guided:
            neg = encode_prompts(base, [sampling.negative_prompt] * n, self.device).to(self.dtype)
            embeds = torch.cat([torch.cat([neg, neg]) if local else neg, cond_all])
            control_in = torch.cat([control, control])
        else:
            embeds, control_in = cond_all, control
        groups = self._groups(n, guided)
        cond_groups = self._groups(n, False)

        self.scheduler.set_timesteps(sampling.steps, device=self.device)
        shape = (n, base.unet.config.in_channels, height // f, width // f)
        latents = torch.cat(self._initial_noise(requests, shape))
        step_kwargs = {"eta": sampling.eta} if "eta" in self._step_kwargs else {}
        if "generator" in self._step_kwargs:
            # Step noise (DDPM, Euler ancestral, DDIM with eta > 0) per sample, from a generator seeded
            # apart from the initial noise -- the list form diffusers' pipelines accept, so a seed's image
            # does not depend on its batch and equals the pipeline's for the same generators.
            gens = generators(requests)
            for g, r in zip(gens, requests):
                g.manual_seed((r.seed + 1) % (1 << 63))
            step_kwargs["generator"] = gens * (2 if local else 1)
        boxes = [r.box for r in requests] if local else None
        if self.tas is not None:
            from handsynth.diffusion.encoding import prompt_lengths
            from handsynth.text.tokenizer import encode_prompts as token_ids

            ids = token_ids([r.prompt for r in requests], base.tokenizer)
            lengths = prompt_lengths(ids, base.tokenizer.eos_token_id)
            indices = [list(r.item.hand_token_indices) for r in requests]
            if local:
                lengths, indices = lengths * 2, indices * 2
        attention = None
        last_tas = -1
        if self.tas is not None:  # A&E's 50-step schedule, scaled to this sampler's steps
            last_tas = min(self.tas.inference.for_steps(sampling.steps).max_steps, sampling.steps) - 1

        for i, t in enumerate(self.scheduler.timesteps):
            if i <= last_tas:
                latents, forward = self._tas_step(
                    latents, t, i, cond_all, control, cond_groups, indices, lengths
                )
                if i == last_tas and self.tas.capture_maps:
                    attention = self._capture(forward, latents, indices, lengths)[:n]
            model_in = torch.cat([latents] * 2) if guided else latents
            noise = self._forward(model_in, t, embeds, control_in, groups)
            if guided:
                uncond, text = noise.chunk(2)
                noise = uncond + sampling.guidance * (text - uncond)
            latents = self.scheduler.step(noise, t, latents, **step_kwargs, return_dict=False)[0]
            if local:
                glob, loc = latents.chunk(2)
                latents = torch.cat([paste_local(glob, loc, boxes, f, self.local_blend.weight), loc])

        images = base.vae.decode(latents.to(base.vae.dtype) / base.latent_scale, return_dict=False)[0]
        pil = _to_pil(images / 2 + 0.5)
        results = [GenResult(image=pil[b]) for b in range(n)]
        for b in range(n):
            if local:
                results[b].local_image = pil[n + b]
            if attention is not None:
                results[b].attention = attention[b]
        return results
