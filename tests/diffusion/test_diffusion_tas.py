"""TAS: loss against references (formula, diffusers' Attend-and-Excite code), switches, latent update."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from handsynth.diffusion.attention import install_attention_store
from handsynth.diffusion.tas import (
    TASConfig,
    TASInferenceConfig,
    alpha_for,
    compute_loss,
    gaussian_kernel,
    lb_loss,
    measure_loss,
    residual_noise,
    tas_inference_step,
    tas_loss,
    tas_refine,
    token_scores,
)


def _ref_kernel(size: int, sigma: float, formula: str) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-((x / (2 * sigma)) ** 2)) if formula == "ae" else np.exp(-(x**2) / (2 * sigma**2))
    k = np.outer(g, g)
    return k / k.sum()


def _ref_loss(
    maps: np.ndarray, indices, lengths, formula="ae", smooth=True, clamp=True, window="ae"
) -> list[float]:
    """Straightforward per-pixel loops: window, x100, softmax, reflect-padded 3x3 Gaussian, max, max(1-s).

    Windows: ``ae`` keeps positions 1..T-2 (A&E's [1:-1]); ``prompt`` keeps 1..EOS-1."""
    out = []
    k = _ref_kernel(3, 0.5, formula)
    for b, idx in enumerate(indices):
        end = lengths[b] if window == "prompt" else maps.shape[-1] - 1
        a = maps[b][:, :, 1:end].astype(np.float64) * 100
        e = np.exp(a - a.max(-1, keepdims=True))
        p = e / e.sum(-1, keepdims=True)
        scores = []
        for i in idx:
            m = p[:, :, i - 1]
            if smooth:
                padded = np.pad(m, 1, mode="reflect")
                h, w = m.shape
                m = np.array([[(padded[y : y + 3, x : x + 3] * k).sum() for x in range(w)] for y in range(h)])
            scores.append(m.max())
        losses = [1 - s for s in scores]
        loss = max(losses)
        out.append(max(loss, 0.0) if clamp else loss)
    return out


@pytest.fixture()
def maps():
    g = torch.Generator().manual_seed(3)
    raw = torch.rand(2, 6, 6, 77, generator=g) * 0.05
    return torch.softmax(raw * 40, dim=-1)  # attention-like rows that sum to 1


@pytest.mark.parametrize("window", ["ae", "prompt"])
@pytest.mark.parametrize("formula", ["ae", "textbook"])
def test_tas_loss_matches_reference_loops(maps, formula, window):
    indices, lengths = [[3, 9], [4]], [11, 6]
    cfg = TASConfig(kernel=formula, token_window=window)
    ours = compute_loss(maps, indices, lengths, cfg)
    ref = _ref_loss(maps.numpy(), indices, lengths, formula, window=window)
    assert np.allclose(ours.numpy(), ref, atol=1e-6)


def test_gaussian_none_is_raw_max_and_kernels_differ(maps):
    indices, lengths = [[3, 9], [4]], [11, 6]
    none = compute_loss(maps, indices, lengths, TASConfig(gaussian="none"))
    ref = _ref_loss(maps.numpy(), indices, lengths, smooth=False)
    assert np.allclose(none.numpy(), ref, atol=1e-6)
    assert not np.allclose(gaussian_kernel(3, 0.5, "ae"), gaussian_kernel(3, 0.5, "textbook"))
    assert np.allclose(gaussian_kernel(3, 0.5, "ae").numpy(), _ref_kernel(3, 0.5, "ae"), atol=1e-7)


def test_gaussian_random_draws_sigma_in_range(maps):
    cfg = TASConfig(gaussian="random", random_sigma=[0.3, 3.0])
    indices, lengths = [[3]], [11]
    a = token_scores(maps[:1], indices, lengths, cfg, torch.Generator().manual_seed(0))[0]
    b = token_scores(maps[:1], indices, lengths, cfg, torch.Generator().manual_seed(1))[0]
    assert not torch.allclose(a, b)
    # The random filter is the fixed one with sigma drawn uniformly from the range.
    sigma = 0.3 + 2.7 * torch.rand((), generator=torch.Generator().manual_seed(0)).item()
    fixed = token_scores(maps[:1], indices, lengths, TASConfig(sigma=sigma))[0]
    assert torch.allclose(a, fixed)


def test_matches_diffusers_attend_and_excite(maps):
    """With A&E's token window ([1:-1]) our s_n equal diffusers' own Attend-and-Excite code."""
    from diffusers.pipelines.deprecated.stable_diffusion_attend_and_excite.pipeline_stable_diffusion_attend_and_excite import (
        StableDiffusionAttendAndExcitePipeline as AE,
    )

    idx = [3, 9, 12]
    ref = AE._compute_max_attention_per_index(maps[0].clone(), idx)
    ours = token_scores(maps[:1], [idx], [11], TASConfig(token_window="ae"))[0]
    assert torch.allclose(ours, torch.stack(ref), atol=1e-6)
    assert math.isclose(float(tas_loss([ours])[0]), float(AE._compute_loss(ref)), abs_tol=1e-6)


def test_loss_edge_cases(maps):
    # No hand tokens: zero loss; tokens truncated past the prompt are ignored; clamp at 0.
    out = compute_loss(maps, [[], [70]], [11, 6], TASConfig(token_window="prompt"))
    assert out.tolist() == [0.0, 0.0]
    s = [torch.tensor([1.2, 0.9])]
    assert float(tas_loss(s, clamp=True)[0]) == pytest.approx(0.1)
    assert float(tas_loss([torch.tensor([1.2])], clamp=False)[0]) == pytest.approx(-0.2)


def test_smoothing_maps_smaller_than_the_kernel():
    # A 64-pixel image's lowest attention resolution is 1x1: reflection cannot pad it (torch refuses),
    # replication leaves it unchanged; a 2x2 map still uses reflection (the A&E formula).
    from handsynth.diffusion.tas import smooth

    k = gaussian_kernel(3, 0.5)
    one = torch.rand(4, 1, 1)
    assert torch.allclose(smooth(one, k), one)
    two = torch.rand(2, 2, 2)
    padded = np.pad(two.numpy(), ((0, 0), (1, 1), (1, 1)), mode="reflect")
    want = np.stack(
        [
            [[(padded[n, i : i + 3, j : j + 3] * k.numpy()).sum() for j in range(2)] for i in range(2)]
            for n in range(2)
        ]
    )
    assert np.allclose(smooth(two, k).numpy(), want, atol=1e-6)
    probs = torch.rand(1, 1, 1, 77)  # token_scores on a 1x1 map (batch, h, w, tokens)
    (s,) = token_scores(probs, [[2]], [5], TASConfig())
    assert torch.isfinite(s).all() and s.shape == (1,)


def test_load_balancing_loss_formula(maps):
    cfg = TASConfig(loss="lb", token_window="prompt")
    out = lb_loss(maps, [[3], []], [11, 6], cfg)
    p = torch.softmax(maps[0, :, :, 1:11] * 100, -1).reshape(-1, 10)
    f = torch.bincount(p.argmax(-1), minlength=10).float() / p.shape[0]
    assert float(out[0]) == pytest.approx(float(10 * (f * p.mean(0)).sum()), rel=1e-5)
    assert float(out[1]) == 0.0
    assert torch.equal(compute_loss(maps, [[3], []], [11, 6], cfg), out)


def test_alpha_schedules():
    t = torch.tensor([999, 0, 500])
    paper = alpha_for(t, 0, TASConfig(alpha="paper"), 1000)
    assert paper.tolist() == pytest.approx([20.0, 10.0, 10 + 10 * 500 / 999])
    rel = TASConfig(alpha="released")
    assert alpha_for(t, 0, rel)[0] == pytest.approx(20.0)
    ks = [float(alpha_for(t[:1], k, rel)[0]) for k in range(50)]
    assert ks == pytest.approx((20 * np.sqrt(np.linspace(1.0, 0.5, 50))).tolist())
    rnd = alpha_for(
        torch.zeros(1000, dtype=torch.long),
        0,
        TASConfig(alpha="random"),
        1000,
        torch.Generator().manual_seed(0),
    )
    assert float(rnd.min()) >= 0.0 and float(rnd.max()) <= 40.0 and float(rnd.std()) > 5


def test_capture_resolution_and_one_step_lowers_loss(fresh_unet, hand_text):
    """On the fixed tiny model and seed, one TAS update lowers L_TAS of every sample."""
    store = install_attention_store(fresh_unet)
    lat = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([600, 600])
    text = hand_text["embeds"]

    def forward(x):
        return fresh_unet(x, t, encoder_hidden_states=text)

    cfg = TASConfig(iterations=1, loss_threshold=0.0, alpha="constant", alpha_max=20.0)
    res = tas_refine(forward, store, lat, t, hand_text["indices"], hand_text["lengths"], cfg)
    assert res.maps.shape == (2, 4, 4, 77)  # latent 16 -> queries 4x4 (latent/4)
    after = measure_loss(forward, store, res.latents, hand_text["indices"], hand_text["lengths"], cfg)
    assert res.iterations == 1
    assert torch.all(after < res.loss_before - 1e-4), (res.loss_before, after)
    assert all(p.grad is None for p in fresh_unet.parameters())  # only the latent got a gradient


def test_more_iterations_lower_more_and_threshold_stops(fresh_unet, hand_text):
    store = install_attention_store(fresh_unet)
    lat = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([400, 400])
    text = hand_text["embeds"]
    calls = []

    def forward(x):
        calls.append(1)
        return fresh_unet(x, t, encoder_hidden_states=text)

    args = (hand_text["indices"], hand_text["lengths"])
    one = tas_refine(forward, store, lat, t, *args, TASConfig(iterations=1, loss_threshold=0.0))
    five = tas_refine(forward, store, lat, t, *args, TASConfig(iterations=5, loss_threshold=0.0))
    l1 = measure_loss(forward, store, one.latents, *args, TASConfig())
    l5 = measure_loss(forward, store, five.latents, *args, TASConfig())
    assert float(l5.max()) < float(l1.max())
    calls.clear()
    stopped = tas_refine(forward, store, lat, t, *args, TASConfig(iterations=5, loss_threshold=1.0))
    assert stopped.iterations == 0 and len(calls) == 1 and torch.equal(stopped.latents, lat)


def test_residual_noise_equals_noise_without_update(tiny_base, fresh_unet, hand_text):
    from handsynth.diffusion.schedulers import alphas_cumprod_at, training_scheduler

    sched = training_scheduler(tiny_base.scheduler_config)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 4, 16, 16, generator=g)
    t = torch.tensor([10, 900])
    xt = sched.add_noise(x0, eps, t)
    store = install_attention_store(fresh_unet)

    def forward(x):
        return fresh_unet(x, t, encoder_hidden_states=hand_text["embeds"])

    cfg = TASConfig(alpha="constant", alpha_max=0.0, loss_threshold=0.0)
    res = tas_refine(forward, store, xt, t, hand_text["indices"], hand_text["lengths"], cfg)
    eps_hat = residual_noise(res.latents, x0, alphas_cumprod_at(sched, t))
    assert torch.allclose(eps_hat, eps, atol=1e-4)
    # With an update, eps_hat - eps = (X_hat - X_t) / sqrt(1 - abar_t).
    cfg2 = TASConfig(alpha="constant", alpha_max=20.0, loss_threshold=0.0)
    res2 = tas_refine(forward, store, xt, t, hand_text["indices"], hand_text["lengths"], cfg2)
    a = alphas_cumprod_at(sched, t).view(-1, 1, 1, 1)
    eps_hat2 = residual_noise(res2.latents, x0, alphas_cumprod_at(sched, t))
    assert torch.allclose(eps_hat2 - eps, (res2.latents - xt) / (1 - a).sqrt(), atol=1e-3)
    assert not torch.allclose(eps_hat2, eps, atol=1e-3)


def _one_sample_step(fresh_unet, hand_text):
    """A store on the UNet, one latent, a forward at t = 800 that counts its calls, the hand tokens."""
    store = install_attention_store(fresh_unet)
    lat = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    text = hand_text["embeds"][:1]
    calls = []

    def forward(x):
        calls.append(1)
        return fresh_unet(x, torch.tensor([800]), encoder_hidden_states=text)

    return store, lat, forward, calls, hand_text["indices"][:1], hand_text["lengths"][:1]


def test_inference_step_refines_to_threshold(fresh_unet, hand_text):
    store, lat, forward, calls, idx, lens = _one_sample_step(fresh_unet, hand_text)
    cfg = TASConfig()
    before = measure_loss(forward, store, lat, idx, lens, cfg)
    inf = TASInferenceConfig(thresholds={0: 0.99}, max_refinement_iterations=3, max_steps=2)
    calls.clear()
    new, loss = tas_inference_step(forward, store, lat, 800, 0, idx, lens, cfg, inf)
    assert float(loss[0]) < float(before[0])
    assert len(calls) == 3 + 1  # 3 refinement iterations (threshold out of reach) + the step's own update
    calls.clear()
    same, _ = tas_inference_step(forward, store, lat, 800, 2, idx, lens, cfg, inf)  # past max_steps
    assert torch.equal(same, lat) and not calls


def test_training_targets_match_the_schedulers_own_definitions():
    """epsilon -> the noise, v_prediction -> diffusers' own get_velocity, sample -> x0."""
    from diffusers import DDPMScheduler

    from handsynth.diffusion.schedulers import training_target

    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 4, 8, 8, generator=g)
    t = torch.tensor([0, 500, 999])
    kw = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    for kind, want in (("epsilon", eps), ("sample", x0)):
        assert torch.equal(training_target(DDPMScheduler(prediction_type=kind, **kw), x0, eps, t), want)
    v = DDPMScheduler(prediction_type="v_prediction", **kw)
    torch.testing.assert_close(training_target(v, x0, eps, t), v.get_velocity(x0, eps, t))


def test_tas_skips_timesteps_below_min_timestep(tiny_base, fresh_unet, hand_text):
    store = install_attention_store(fresh_unet)
    t = torch.tensor([500, 499])
    xt = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(1))

    def forward(x):
        return fresh_unet(x, t, encoder_hidden_states=hand_text["embeds"])

    cfg = TASConfig(min_timestep=500, iterations=1, alpha="constant", alpha_max=20.0, loss_threshold=0.0)
    res = tas_refine(forward, store, xt, t, hand_text["indices"], hand_text["lengths"], cfg)
    assert not torch.equal(res.latents[0], xt[0])  # t = 500: refined (the bound is included)
    assert torch.equal(res.latents[1], xt[1])  # t = 499: left alone


def test_training_noise_targets():
    """epsilon: the implied x0 of (X_hat_t, eps) moves by exactly (X_hat_t - X_t)/sqrt(abar_t);
    residual: it is X_0 itself, whatever TAS did (which is why that target makes TAS inert)."""
    from handsynth.diffusion.tas import training_noise

    g = torch.Generator().manual_seed(0)
    x0, eps, shift = (torch.randn(2, 4, 8, 8, generator=g) for _ in range(3))
    abar = torch.tensor([0.3, 0.8])
    a = abar.view(-1, 1, 1, 1)
    xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
    refined = xt + 0.1 * shift

    def implied_x0(noise):
        return (refined - (1 - a).sqrt() * noise) / a.sqrt()

    assert TASConfig().target == "epsilon"
    eps_target = training_noise(TASConfig(), eps, refined, x0, abar)
    assert torch.equal(eps_target, eps)
    assert torch.allclose(implied_x0(eps_target) - x0, (refined - xt) / a.sqrt(), atol=1e-5)
    res_target = training_noise(TASConfig(target="residual"), eps, refined, x0, abar)
    assert torch.allclose(implied_x0(res_target), x0, atol=1e-5)


def test_paper_and_released_defaults():
    cfg = TASConfig()
    assert cfg.token_window == "ae" and cfg.loss_threshold == 0.0 and cfg.target == "epsilon"


def test_inference_schedule_scales_with_sampler_steps():
    inf = TASInferenceConfig()
    assert inf.for_steps(50) == inf  # A&E's own: TAS in steps 0-24, refinement at 0, 10, 20
    twenty = inf.for_steps(20)
    assert twenty.max_steps == 10 and twenty.thresholds == {0: 0.05, 4: 0.5, 8: 0.8}
    assert inf.for_steps(100).max_steps == 50 and inf.for_steps(100).thresholds == {0: 0.05, 20: 0.5, 40: 0.8}


def test_inference_step_uses_the_scaled_schedule(fresh_unet, hand_text):
    store, lat, forward, calls, idx, lens = _one_sample_step(fresh_unet, hand_text)
    inf = TASInferenceConfig(thresholds={0: 0.99, 10: 0.99}, max_refinement_iterations=2)
    ran = {}
    for steps, index in ((20, 4), (20, 10), (50, 4), (50, 10), (50, 25)):
        calls.clear()
        tas_inference_step(forward, store, lat, 800, index, idx, lens, TASConfig(), inf, num_steps=steps)
        ran[steps, index] = len(calls)
    # 20 steps: threshold step 10/50 -> 4, TAS stops after 25/50 -> 10 steps.
    assert ran[20, 4] == 2 + 1 and ran[20, 10] == 0
    # 50 steps: A&E's own step indices.
    assert ran[50, 4] == 1 and ran[50, 10] == 2 + 1 and ran[50, 25] == 0
