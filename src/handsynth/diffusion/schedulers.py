"""The one scheduler setup: training noise schedule and sampling schedulers from the base's config.

Every method reads the base model's own ``scheduler_config`` (betas, timesteps, prediction type), so
a v-prediction base trains with v targets and SD-1.5 keeps its scaled-linear schedule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from diffusers import DDPMScheduler, SchedulerMixin

SAMPLERS = {
    "ddim": "DDIMScheduler",
    "ddpm": "DDPMScheduler",
    "pndm": "PNDMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
}


def training_scheduler(scheduler_config: dict) -> DDPMScheduler:
    """DDPM schedule for training (q-sample, alphas_cumprod) with the base's betas and prediction type."""
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(scheduler_config)


def sampling_scheduler(scheduler_config: dict, name: str = "ddim", latent: bool = True) -> SchedulerMixin:
    """A sampler by short name (ddim, ddpm, pndm, euler, euler_a, dpm++, unipc) from the base's config.

    For latent diffusion (``latent=True``) the sampler is set up exactly as diffusers' Stable Diffusion
    pipelines set it up in their ``__init__``: ``clip_sample`` off and ``steps_offset`` 1. DDIM and DDPM
    default to ``clip_sample=True``, which clips the predicted x0 to [-1, 1] -- right for pixels, but in
    latent space it destroys every image; SD scheduler configs often lack the key (PNDM has no such
    option), so building DDIM from them silently turned clipping on. ``thresholding`` stays as the
    config says (off unless it asks). Pixel-space models (``latent=False``) keep the config as it is.
    """
    import diffusers

    if name not in SAMPLERS:
        from handsynth.errors import UserError

        raise UserError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    cls = getattr(diffusers, SAMPLERS[name])
    # A config read back from a live scheduler lists the keys it defaulted; from_config would drop them.
    config = {k: v for k, v in dict(scheduler_config).items() if k != "_use_default_values"}
    scheduler = cls.from_config(config)
    if latent:
        fixes = {}
        if getattr(scheduler.config, "clip_sample", False) is True:
            fixes["clip_sample"] = False
        if getattr(scheduler.config, "steps_offset", 1) != 1:
            fixes["steps_offset"] = 1
        if fixes:
            scheduler = cls.from_config({**config, **fixes})
    return scheduler


def alphas_cumprod_at(scheduler: SchedulerMixin, t: torch.Tensor) -> torch.Tensor:
    """abar_t for integer timesteps ``t`` (B,), on t's device."""
    return scheduler.alphas_cumprod.to(t.device)[t.long()].float()


def training_target(
    scheduler: SchedulerMixin,
    x0: torch.Tensor,
    noise: torch.Tensor,
    t: torch.Tensor,
    noisy: torch.Tensor | None = None,
) -> torch.Tensor:
    """What the network regresses: eps (epsilon), v (v_prediction) or x0 (sample).

    ``noise`` may be the residual noise eps_hat of a TAS-updated latent; v then uses the same eps_hat,
    so the target stays consistent with the latent the network actually sees.
    """
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        a = alphas_cumprod_at(scheduler, t).to(x0).view(-1, *([1] * (x0.ndim - 1)))
        return a.sqrt() * noise - (1 - a).sqrt() * x0
    if kind == "sample":
        return x0
    raise ValueError(f"unsupported prediction type {kind!r}")
