"""Text attention stage (TAS, AttentionHand Eq. 2-4): refine hand-token attention, update the latent.

Given cross-attention maps A (B, h, w, T) of the frozen UNet at the TAS query resolution:

1. keep the prompt tokens (drop the start token and the end/padding tokens), multiply by 100 and
   softmax over tokens;
2. for each hand-related token n, smooth its h x w map with a fixed 3x3 Gaussian (sigma 0.5, reflect
   padding) and take s_n = max over pixels;
3. L_TAS = max_n (1 - s_n) (clamped at 0, as Attend-and-Excite does);
4. X_t <- X_t - alpha_t * dL_TAS/dX_t, repeated up to ``iterations`` times, stopping early for the
   samples whose loss is already at or below ``loss_threshold``.

Gradients are taken with ``torch.autograd.grad`` with respect to the latent only, so no weight ever
receives a gradient from TAS. The ablation switches of the paper (Gaussian none/random/fixed, the
load-balancing loss L_LB, alpha random) and the released code's settings (alpha
20*sqrt(linspace(1, 0.5, 50)), A&E's ``[1:-1]`` token window) are options of :class:`TASConfig`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

from handsynth.diffusion.attention import AttentionStore, run_and_capture


@dataclass
class TASConfig:
    """Options of the text attention stage (defaults: the paper's setting, see docs/attentionhand.md)."""

    enabled: bool = True
    iterations: int = 1  # latent updates per training step (released code: 50)
    # A sample stops updating once L_TAS <= this. 0 (default): never, as the paper and the released code.
    loss_threshold: float = 0.0
    resolution: int | None = None  # query side length of the maps read; None: latent side / 4
    # ae (default): A&E's and the released code's [1:-1] (end token and padding stay in the softmax);
    # prompt: our narrower window, start + end + padding dropped (the paper does not say).
    token_window: Literal["prompt", "ae"] = "ae"
    # What eps_theta(X_hat_t) regresses in training. epsilon (default): the ORIGINAL noise eps, as the
    # paper's Eq. 7-8 and the released code; the implied x0 then moves along -grad L_TAS. residual: the
    # noise X_hat_t holds, eps_hat = (X_hat_t - sqrt(abar) X_0) / sqrt(1 - abar), as the paper's prose
    # says; the model then just denoises a shifted latent and TAS is nearly inert (docs/attentionhand.md).
    target: Literal["epsilon", "residual"] = "epsilon"
    softmax_scale: float = 100.0
    gaussian: Literal["fixed", "none", "random"] = "fixed"
    kernel: Literal["ae", "textbook"] = (
        "ae"  # ae: exp(-((x-mu)/(2 sigma))^2); textbook: exp(-(x-mu)^2/(2 sigma^2))
    )
    kernel_size: int = 3
    sigma: float = 0.5
    random_sigma: list[float] = field(default_factory=lambda: [0.1, 2.0])  # range for gaussian=random
    loss: Literal["tas", "lb"] = "tas"  # lb: load-balancing loss (ablation)
    clamp: bool = True  # max(0, 1 - s_n), as A&E
    alpha: Literal["paper", "released", "random", "constant"] = "paper"
    alpha_max: float = 20.0  # paper: alpha_t decreases with t from 20 (t = T) to 10 (t = 0)
    alpha_min: float = 10.0
    random_alpha: list[float] = field(default_factory=lambda: [0.0, 40.0])  # range for alpha=random
    released_schedule_len: int = 50  # released code: 20*sqrt(linspace(1, 0.5, 50))[k], k = iteration
    unet: Literal["bare", "controlled"] = "bare"  # bare: phi_d alone (paper / released code)
    stop_early: bool = True  # end the UNet forward after the last block whose attention TAS reads
    # TAS leaves samples with t below this alone: eps_hat - eps = dX / sqrt(1 - abar_t) grows ~30x as
    # t -> 0 (0 = the paper: every t; A&E only alters the early, high-t sampling steps).
    min_timestep: int = 0


@dataclass
class TASResult:
    """Updated latents and what TAS saw (losses are per sample, detached)."""

    latents: torch.Tensor
    loss_before: torch.Tensor
    loss_last: torch.Tensor  # the loss at the last forward that ran
    iterations: int
    maps: torch.Tensor  # refined-or-raw maps (B, h, w, T) of the first forward, detached, for logging


def query_resolution(cfg: TASConfig, latent_hw: tuple[int, int]) -> tuple[int, int]:
    """The TAS query grid: ``cfg.resolution`` or a quarter of the latent (16x16 for 64x64 SD latents)."""
    if cfg.resolution is not None:
        return (cfg.resolution, cfg.resolution)
    return (math.ceil(latent_hw[0] / 4), math.ceil(latent_hw[1] / 4))


# -- refinement -----------------------------------------------------------------------------------------
def gaussian_kernel(size: int = 3, sigma: float = 0.5, formula: str = "ae") -> torch.Tensor:
    """Normalised 2D Gaussian kernel; ``ae`` is the Attend-and-Excite/AttentionHand code's formula."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    if formula == "ae":
        g = torch.exp(-((x / (2 * sigma)) ** 2))
    elif formula == "textbook":
        g = torch.exp(-(x**2) / (2 * sigma**2))
    else:
        raise ValueError(f"unknown Gaussian formula {formula!r}")
    k = torch.outer(g, g)
    return (k / k.sum()).float()


def smooth(maps: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Smooth (N, h, w) maps with ``kernel`` (reflect padding, same size out).

    Reflection needs a side longer than the padding: maps that small (1x1 at the lowest attention
    resolution of a small image) are padded by replication instead, which leaves a 1x1 map unchanged."""
    pad = kernel.shape[-1] // 2
    x = maps.unsqueeze(1)
    if pad:
        mode = "reflect" if min(x.shape[-2:]) > pad else "replicate"
        x = F.pad(x, (pad, pad, pad, pad), mode=mode)
    return F.conv2d(x, kernel.to(x)[None, None]).squeeze(1)


def token_window(length: int, num_tokens: int, mode: str) -> tuple[int, int]:
    """[start, end) of the token positions kept before the softmax (``length``: position of EOS)."""
    if mode == "prompt":
        return 1, max(length, 2)
    if mode == "ae":
        return 1, num_tokens - 1
    raise ValueError(f"unknown token window {mode!r}")


def token_probabilities(maps: torch.Tensor, length: int, cfg: TASConfig) -> tuple[torch.Tensor, int]:
    """One sample's maps (h, w, T) -> softmax(100 * A) over the kept tokens, and the window start."""
    start, end = token_window(length, maps.shape[-1], cfg.token_window)
    return torch.softmax(maps[..., start:end] * cfg.softmax_scale, dim=-1), start


def _kernel_for(cfg: TASConfig, generator: torch.Generator | None) -> torch.Tensor | None:
    if cfg.gaussian == "none":
        return None
    sigma = cfg.sigma
    if cfg.gaussian == "random":
        lo, hi = cfg.random_sigma
        sigma = lo + (hi - lo) * torch.rand((), generator=generator).item()
    return gaussian_kernel(cfg.kernel_size, sigma, cfg.kernel)


def token_scores(
    maps: torch.Tensor,
    indices: list[list[int]],
    lengths: list[int],
    cfg: TASConfig,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """s_n per sample: max over pixels of the refined map of each selected token (positions in the
    77-token sequence, start token = 0). Tokens outside the kept window are ignored."""
    out = []
    for b, idx in enumerate(indices):
        probs, start = token_probabilities(maps[b], lengths[b], cfg)
        keep = [i - start for i in idx if 0 <= i - start < probs.shape[-1]]
        if not keep:
            out.append(maps.new_zeros(0))
            continue
        sel = probs[..., keep].permute(2, 0, 1)  # (K, h, w)
        kernel = _kernel_for(cfg, generator)
        if kernel is not None:
            sel = smooth(sel, kernel)
        out.append(sel.flatten(1).amax(dim=1))
    return out


def tas_loss(scores: list[torch.Tensor], clamp: bool = True) -> torch.Tensor:
    """L_TAS = max_n (1 - s_n) per sample (B,); 0 for a sample without hand tokens."""
    losses = []
    for s in scores:
        if s.numel() == 0:
            losses.append(s.new_zeros(()))
            continue
        loss = (1 - s).amax()
        losses.append(loss.clamp(min=0) if clamp else loss)
    return torch.stack(losses)


def lb_loss(maps: torch.Tensor, indices: list[list[int]], lengths: list[int], cfg: TASConfig) -> torch.Tensor:
    """Load-balancing loss (Switch Transformer) with prompt tokens as experts and pixels as inputs.

    L_LB = N * sum_n f_n * P_n over the N kept tokens, f_n = share of pixels whose top token is n
    (no gradient), P_n = mean probability of n over pixels. It flattens the map to 1D, which is why
    the paper reports it loses spatial information. A sample without hand tokens gets 0 (no update).
    """
    losses = []
    for b, idx in enumerate(indices):
        if not idx:
            losses.append(maps.new_zeros(()))
            continue
        probs, _ = token_probabilities(maps[b], lengths[b], cfg)
        p = probs.reshape(-1, probs.shape[-1])  # (pixels, N)
        n = p.shape[-1]
        f = F.one_hot(p.argmax(-1), n).float().mean(0).detach()
        losses.append(n * (f * p.mean(0)).sum())
    return torch.stack(losses)


def compute_loss(
    maps: torch.Tensor,
    indices: list[list[int]],
    lengths: list[int],
    cfg: TASConfig,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The configured TAS objective per sample (B,)."""
    if cfg.loss == "lb":
        return lb_loss(maps, indices, lengths, cfg)
    return tas_loss(token_scores(maps, indices, lengths, cfg, generator), cfg.clamp)


# -- step sizes -----------------------------------------------------------------------------------------
def alpha_for(
    t: torch.Tensor,
    iteration: int,
    cfg: TASConfig,
    num_train_timesteps: int = 1000,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """alpha per sample (B,): ``paper`` 20 -> 10 as t goes T -> 0; ``released`` by iteration index."""
    t = t.float().reshape(-1)
    if cfg.alpha == "paper":
        frac = t / max(num_train_timesteps - 1, 1)
        return cfg.alpha_min + (cfg.alpha_max - cfg.alpha_min) * frac
    if cfg.alpha == "released":
        k = min(iteration, cfg.released_schedule_len - 1)
        scale = 1.0 - 0.5 * k / max(cfg.released_schedule_len - 1, 1)  # linspace(1, 0.5, L)[k]
        return torch.full_like(t, cfg.alpha_max * math.sqrt(scale))
    if cfg.alpha == "random":
        lo, hi = cfg.random_alpha
        return lo + (hi - lo) * torch.rand(t.shape, generator=generator).to(t)
    if cfg.alpha == "constant":
        return torch.full_like(t, cfg.alpha_max)
    raise ValueError(f"unknown alpha schedule {cfg.alpha!r}")


# -- the stage ------------------------------------------------------------------------------------------
def tas_refine(
    forward: Callable[[torch.Tensor], object],
    store: AttentionStore,
    latents: torch.Tensor,
    t: torch.Tensor,
    indices: list[list[int]],
    lengths: list[int],
    cfg: TASConfig,
    num_train_timesteps: int = 1000,
    generator: torch.Generator | None = None,
    iterations: int | None = None,
) -> TASResult:
    """Run TAS on a batch of noisy latents: ``forward(x)`` must run the UNet on x (with the store installed).

    Samples are independent (the UNet has no batch statistics), so one batched forward/backward on
    ``loss.sum()`` gives every sample its own gradient.
    """
    iterations = cfg.iterations if iterations is None else iterations
    query_hw = query_resolution(cfg, tuple(latents.shape[-2:]))
    has_tokens = torch.tensor([len(i) > 0 for i in indices], device=latents.device)
    has_tokens &= t.reshape(-1).to(latents.device) >= cfg.min_timestep
    x = latents.detach()
    loss_before = loss_last = latents.new_zeros(latents.shape[0])
    first_maps = None
    done = 0
    for k in range(max(iterations, 0)):
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            maps = run_and_capture(forward, store, x, query_hw, stop_early=cfg.stop_early)
            loss = compute_loss(maps, indices, lengths, cfg, generator)
            if k == 0:
                loss_before, first_maps = loss.detach(), maps.detach()
            loss_last = loss.detach()
            active = has_tokens & (loss_last > cfg.loss_threshold)
            if not bool(active.any()):
                break
            (grad,) = torch.autograd.grad(loss.sum(), [x])
        alpha = alpha_for(t, k, cfg, num_train_timesteps, generator).to(grad) * active.to(grad)
        x = x.detach() - alpha.view(-1, *([1] * (x.ndim - 1))) * grad
        done += 1
    if first_maps is None:
        first_maps = latents.new_zeros(0)
    return TASResult(x.detach(), loss_before, loss_last, done, first_maps)


@torch.no_grad()
def measure_loss(
    forward: Callable[[torch.Tensor], object],
    store: AttentionStore,
    latents: torch.Tensor,
    indices: list[list[int]],
    lengths: list[int],
    cfg: TASConfig,
) -> torch.Tensor:
    """L_TAS per sample at ``latents`` (no update; for logging and benchmarks)."""
    query_hw = query_resolution(cfg, tuple(latents.shape[-2:]))
    maps = run_and_capture(forward, store, latents, query_hw, stop_early=cfg.stop_early)
    return compute_loss(maps, indices, lengths, cfg)


def residual_noise(
    noisy_latents: torch.Tensor, x0: torch.Tensor, alphas_cumprod_t: torch.Tensor
) -> torch.Tensor:
    """eps_hat = (X_hat_t - sqrt(abar_t) X_0) / sqrt(1 - abar_t): the noise that X_hat_t actually holds."""
    a = alphas_cumprod_t.to(noisy_latents).view(-1, *([1] * (noisy_latents.ndim - 1)))
    return (noisy_latents - a.sqrt() * x0) / (1 - a).sqrt()


def training_noise(
    cfg: TASConfig,
    noise: torch.Tensor,
    refined: torch.Tensor,
    x0: torch.Tensor,
    alphas_cumprod_t: torch.Tensor,
) -> torch.Tensor:
    """The noise the network regresses on the TAS-updated latent ``refined``: ``cfg.target`` decides
    between the original ``noise`` (Eq. 7-8, released code) and the residual noise eps_hat (prose)."""
    if cfg.target == "epsilon":
        return noise
    if cfg.target == "residual":
        return residual_noise(refined, x0, alphas_cumprod_t)
    raise ValueError(f"unknown TAS target {cfg.target!r}; choose epsilon or residual")


# -- inference (Attend-and-Excite style) --------------------------------------------------------------------
@dataclass
class TASInferenceConfig:
    """TAS during sampling: update the latent in the first ``max_steps`` denoising steps, with iterative
    refinement until the loss reaches ``1 - thresholds[i]`` at the listed step indices (A&E defaults)."""

    enabled: bool = False
    max_steps: int = 25
    thresholds: dict[int, float] = field(default_factory=lambda: {0: 0.05, 10: 0.5, 20: 0.8})
    max_refinement_iterations: int = 20
    # max_steps and the threshold steps are A&E's, counted on a 50-step sampler; a sampler with another
    # step count uses the same fractions of the trajectory (see ``for_steps``).
    schedule_steps: int = 50

    def for_steps(self, num_steps: int) -> TASInferenceConfig:
        """This schedule in the step indices of a ``num_steps`` sampler (same trajectory fractions).

        20 DDIM steps: TAS in the first 10 steps, refinement at steps 0, 4 and 8 (A&E at 50: 25; 0, 10, 20).
        """
        if num_steps == self.schedule_steps:
            return self
        scale = num_steps / self.schedule_steps
        thresholds: dict[int, float] = {}
        for k, v in sorted(self.thresholds.items()):
            thresholds.setdefault(min(int(round(k * scale)), num_steps - 1), v)
        return TASInferenceConfig(
            enabled=self.enabled,
            max_steps=max(1, int(round(self.max_steps * scale))) if self.max_steps > 0 else 0,
            thresholds=thresholds,
            max_refinement_iterations=self.max_refinement_iterations,
            schedule_steps=num_steps,
        )


def tas_inference_step(
    forward: Callable[[torch.Tensor], object],
    store: AttentionStore,
    latents: torch.Tensor,
    t: torch.Tensor,
    step_index: int,
    indices: list[list[int]],
    lengths: list[int],
    cfg: TASConfig,
    inference: TASInferenceConfig,
    num_train_timesteps: int = 1000,
    num_steps: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One denoising step's TAS: returns the updated latents and the per-sample loss after refinement.

    ``forward(x)`` runs the conditional UNet branch on x. ``num_steps``: the sampler's step count; the
    schedule (``max_steps``, threshold steps) is scaled to it by trajectory fraction
    (:meth:`TASInferenceConfig.for_steps`). With the ``released`` alpha schedule the step's fraction of
    the trajectory plays the role of the iteration index, as in A&E's pipeline.
    """
    if num_steps is not None:
        inference = inference.for_steps(num_steps)
    if step_index >= inference.max_steps:
        return latents, latents.new_zeros(latents.shape[0])
    t = torch.as_tensor(t, device=latents.device).reshape(-1).expand(latents.shape[0])
    threshold = inference.thresholds.get(step_index)
    x = latents
    if threshold is not None:
        refine_cfg = TASConfig(**{**cfg.__dict__, "loss_threshold": 1.0 - threshold})
        # Iterate with a fixed alpha for this step (A&E: the step's own step size, repeated).
        res = tas_refine(
            forward,
            store,
            x,
            t,
            indices,
            lengths,
            _fixed_alpha(refine_cfg, step_index, inference.schedule_steps),
            num_train_timesteps,
            iterations=inference.max_refinement_iterations,
        )
        x = res.latents
    single = TASConfig(**{**cfg.__dict__, "loss_threshold": 0.0})
    res = tas_refine(
        forward,
        store,
        x,
        t,
        indices,
        lengths,
        _fixed_alpha(single, step_index, inference.schedule_steps),
        num_train_timesteps,
        iterations=1,
    )
    return res.latents, res.loss_last


def _fixed_alpha(cfg: TASConfig, step_index: int, num_steps: int) -> TASConfig:
    """A copy of ``cfg`` whose ``released`` schedule, 20*sqrt(linspace(1, 0.5, num_steps)), is read at
    ``step_index`` for every iteration (A&E spreads it over the sampler's own steps)."""
    if cfg.alpha != "released":
        return cfg
    scale = 1.0 - 0.5 * min(step_index, num_steps - 1) / max(num_steps - 1, 1)
    return TASConfig(**{**cfg.__dict__, "alpha": "constant", "alpha_max": cfg.alpha_max * math.sqrt(scale)})
