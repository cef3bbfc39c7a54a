"""HSA (SesaHand's hand structure attention bias): exact no-op at beta 0, more hand-token mass inside the
mask only, half-precision and CFG batches, learnable beta, and capture through the attention store."""

from __future__ import annotations

import pytest
import torch

from handsynth.diffusion.attention import install_attention_store, remove_attention_store
from handsynth.diffusion.hand_bias import (
    HandBiasAttnProcessor,
    HSAConfig,
    install_hand_bias,
    query_grid,
    remove_hand_bias,
)


def seeded(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


FIRST = "down_blocks.0.attentions.0.transformer_blocks.0.attn2"  # the first cross-attention of the UNet


def _mask(n: int, h: int, w: int) -> torch.Tensor:
    """Hand in the left half (soft edge column), nothing elsewhere."""
    m = torch.zeros(n, h, w)
    m[:, :, : w // 2] = 1.0
    m[:, :, w // 2] = 0.5
    return m


def _forward(unet, text, lat, t=500):
    with torch.no_grad():
        return unet(lat, torch.full((lat.shape[0],), t), encoder_hidden_states=text).sample


def test_query_grid_handles_non_square_latents():
    assert query_grid((16, 24), 16 * 24) == (16, 24)
    assert query_grid((16, 24), 8 * 12) == (8, 12)
    assert query_grid((15, 9), 8 * 5) == (8, 5)  # ceil rounding of odd sizes
    with pytest.raises(ValueError, match="no level"):
        query_grid((16, 16), 50)


def test_beta_zero_equals_stock_and_uninstall_restores(fresh_unet, hand_text):
    lat = seeded(2, 4, 16, 16)
    text = hand_text["embeds"]
    stock = _forward(fresh_unet, text, lat)
    hsa = install_hand_bias(fresh_unet, HSAConfig(bias=0.0))
    n = sum(isinstance(p, HandBiasAttnProcessor) for p in fresh_unet.attn_processors.values())
    assert n == 10  # every cross-attention layer, no self-attention layer
    with hsa.conditioning(_mask(2, 16, 16), hand_text["indices"]):
        assert torch.equal(_forward(fresh_unet, text, lat), stock)
    remove_hand_bias(hsa)
    hsa = install_hand_bias(fresh_unet, HSAConfig(bias=0.0, learnable="per_layer"))  # bias path, beta 0
    with hsa.conditioning(_mask(2, 16, 16), hand_text["indices"]):
        assert torch.allclose(_forward(fresh_unet, text, lat), stock, atol=1e-6)
    remove_hand_bias(hsa)
    assert not any(isinstance(p, HandBiasAttnProcessor) for p in fresh_unet.attn_processors.values())
    assert torch.equal(_forward(fresh_unet, text, lat), stock)


def test_bias_raises_hand_mass_inside_mask_and_leaves_outside_exact(fresh_unet, hand_text):
    """At the first cross-attention layer: hand tokens gain mass inside the mask, other queries match exactly."""
    lat = seeded(2, 4, 16, 16)
    text, indices = hand_text["embeds"], hand_text["indices"]
    mask = _mask(2, 16, 16)
    attn = fresh_unet.get_submodule(FIRST)
    captured = {}

    def probs_with(beta: float) -> torch.Tensor:
        hsa = install_hand_bias(fresh_unet, HSAConfig(bias=beta, learnable="per_layer"))
        store = install_attention_store(fresh_unet)
        inner = attn.processor.inner
        seen = []
        original_add = store.add
        store.add = lambda name, probs, heads: (
            seen.append((name, probs.detach())) or original_add(name, probs, heads)
        )
        with hsa.conditioning(mask, indices), store.capture((16, 16)):
            out = _forward(fresh_unet, text, lat)
        assert inner.__class__.__name__ == "StoringAttnProcessor"  # the store sits inside HSA
        remove_attention_store(fresh_unet)
        remove_hand_bias(hsa)
        captured[beta] = out
        first = [p for name, p in seen if name == FIRST][0]
        return first.reshape(2, attn.heads, 256, -1)

    p0, p2 = probs_with(0.0), probs_with(2.0)
    inside = mask.reshape(2, 256) > 0
    for b, idx in enumerate(indices):
        mass0, mass2 = p0[b][..., idx].sum(-1), p2[b][..., idx].sum(-1)  # (heads, Q)
        assert (mass2[:, inside[b]] > mass0[:, inside[b]]).all()
        assert torch.equal(p2[b][:, ~inside[b]], p0[b][:, ~inside[b]])
    # half weight on the soft edge column: less gain than the full-weight columns next to it
    gain = (p2[0][..., indices[0]].sum(-1) - p0[0][..., indices[0]].sum(-1)).mean(0).reshape(16, 16)
    assert (gain[:, 8] < gain[:, 7]).all() and (gain[:, 8] > 0).all()
    assert not torch.allclose(captured[0.0], captured[2.0])


def test_hard_mask_and_non_square_latents(fresh_unet, hand_text):
    lat = seeded(2, 4, 16, 24)
    hsa = install_hand_bias(fresh_unet, HSAConfig(bias=1.0, mask="hard"))
    mask = _mask(2, 128, 192)  # pixel-resolution mask, area-resampled per layer
    with hsa.conditioning(mask, hand_text["indices"]):
        out = _forward(fresh_unet, hand_text["embeds"], lat)
        weights = hsa._query_weights(4 * 6, torch.device("cpu"))
    assert out.shape == lat.shape and torch.isfinite(out).all()
    assert set(weights.unique().tolist()) <= {0.0, 1.0}
    assert weights.reshape(2, 4, 6)[0, 0].tolist() == [1, 1, 1, 0, 0, 0]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision(fresh_unet, hand_text, dtype):
    lat = seeded(2, 4, 16, 16)
    unet = fresh_unet.to(dtype)
    hsa = install_hand_bias(unet, HSAConfig(bias=1.0))
    with hsa.conditioning(_mask(2, 16, 16), hand_text["indices"]):
        out = _forward(unet, hand_text["embeds"].to(dtype), lat.to(dtype))
    plain = _forward(unet, hand_text["embeds"].to(dtype), lat.to(dtype))
    assert out.dtype == dtype and torch.isfinite(out.float()).all()
    assert not torch.equal(out, plain)


@pytest.mark.parametrize("uncond", ["none", "same"])
def test_cfg_batch_biases_the_conditional_half(fresh_unet, hand_text, uncond):
    """[uncond, cond] batch: the conditional half equals its single run; the uncond half follows the switch."""
    lat = seeded(2, 4, 16, 16)
    text, indices, mask = hand_text["embeds"], hand_text["indices"], _mask(2, 16, 16)
    neg = seeded(*text.shape, seed=3)  # not zeros: identical keys would make any bias a no-op
    plain_uncond = _forward(fresh_unet, neg, lat)
    hsa = install_hand_bias(fresh_unet, HSAConfig(bias=1.0, cfg_uncond=uncond))
    with hsa.conditioning(mask, indices):
        single = _forward(fresh_unet, text, lat)
        both = _forward(fresh_unet, torch.cat([neg, text]), torch.cat([lat, lat]))
        if uncond == "same":
            biased_uncond = _forward(fresh_unet, neg, lat)
    assert torch.allclose(both[2:], single, atol=1e-5)
    if uncond == "none":
        assert torch.allclose(both[:2], plain_uncond, atol=1e-5)
    else:
        assert torch.allclose(both[:2], biased_uncond, atol=1e-5)
        assert not torch.allclose(both[:2], plain_uncond, atol=1e-4)


def test_learnable_beta_gets_a_gradient_and_latents_none(fresh_unet, hand_text):
    lat = seeded(2, 4, 16, 16)
    hsa = install_hand_bias(fresh_unet, HSAConfig(bias=1.0, learnable="per_layer", schedule="timestep"))
    assert len(list(hsa.parameters())) == 10
    with hsa.conditioning(_mask(2, 16, 16), hand_text["indices"]):
        out = fresh_unet(lat, torch.tensor([999, 0]), encoder_hidden_states=hand_text["embeds"]).sample
        scale = hsa._schedule(2, torch.device("cpu"))
    out.square().mean().backward()
    grads = [p.grad for p in hsa.parameters()]
    assert all(g is not None and torch.isfinite(g) for g in grads) and any(g.abs() > 0 for g in grads)
    assert scale.tolist() == [1.0, 0.5]  # timestep schedule: 1 at t=T-1, schedule_min at t=0
    with hsa.conditioning(_mask(2, 16, 16), hand_text["indices"], timesteps=torch.tensor([999, 0])):
        assert hsa._schedule(4, torch.device("cpu")).tolist() == [1.0, 0.5, 1.0, 0.5]  # CFG batch


def test_store_installed_first_also_sits_inside(fresh_unet, hand_text):
    store = install_attention_store(fresh_unet)
    hsa = install_hand_bias(fresh_unet, HSAConfig(bias=1.0))
    lat = seeded(2, 4, 16, 16)
    with hsa.conditioning(_mask(2, 16, 16), hand_text["indices"]), store.capture((16, 16)):
        _forward(fresh_unet, hand_text["embeds"], lat)
    assert store.num_layers == 3  # 16x16 layers: down_blocks.0, up_blocks.3 (2)
    remove_hand_bias(hsa)
    assert all(
        p.__class__.__name__ == "StoringAttnProcessor"
        for n, p in fresh_unet.attn_processors.items()
        if "attn2" in n
    )


def test_bad_inputs_are_named(fresh_unet, hand_text):
    hsa = install_hand_bias(fresh_unet, HSAConfig())
    with pytest.raises(ValueError, match="one per sample"), hsa.conditioning(_mask(3, 16, 16), [[1]] * 2):
        pass
    with pytest.raises(ValueError, match=r"\[0, 1\]"), hsa.conditioning(_mask(2, 16, 16) * 2, [[1]] * 2):
        pass
    lat = seeded(2, 4, 16, 16)
    with pytest.raises(ValueError, match="beyond the 77"), hsa.conditioning(_mask(2, 16, 16), [[80], [1]]):
        _forward(fresh_unet, hand_text["embeds"], lat)
    with pytest.raises(ValueError, match="hsa.mask"):
        HSAConfig(mask="fuzzy")
    with pytest.raises(ValueError, match="already has HSA"):
        install_hand_bias(fresh_unet)


def test_controlnet_and_unet_share_one_handle(fresh_unet, hand_text):
    """Installed on both nets: every cross-attention layer of each, one beta per layer, one uninstall."""
    from diffusers import ControlNetModel

    controlnet = ControlNetModel.from_unet(fresh_unet, conditioning_channels=3)
    torch.nn.init.normal_(controlnet.controlnet_mid_block.weight, generator=torch.Generator().manual_seed(2))
    lat, cond = seeded(2, 4, 16, 16), seeded(2, 3, 128, 128, seed=1)
    t, text = torch.tensor([500, 500]), hand_text["embeds"]

    def residuals():
        with torch.no_grad():
            return controlnet(lat, t, text, controlnet_cond=cond, return_dict=False)[1]

    plain = residuals()
    hsa = install_hand_bias({"unet": fresh_unet, "controlnet": controlnet}, HSAConfig(learnable="per_layer"))
    assert len(hsa.betas) == 10 + 4  # the ControlNet copies the UNet's encoder: 3 down + mid
    saved = {**fresh_unet.state_dict(), **controlnet.state_dict()}
    assert not any("hand_bias" in k or "betas" in k for k in saved)  # saved nets stay plain diffusers
    with hsa.conditioning(_mask(2, 16, 16), hand_text["indices"]):
        biased = residuals()
    assert not torch.allclose(plain, biased)
    remove_hand_bias(hsa)
    assert torch.equal(residuals(), plain)
    assert not any(isinstance(p, HandBiasAttnProcessor) for p in controlnet.attn_processors.values())


def test_gradient_checkpointing_recomputes_with_the_bias(fresh_unet, hand_text):
    """Backward inside the conditioning block: checkpointed recomputation sees the same bias."""
    lat, t = seeded(2, 4, 16, 16), torch.tensor([500, 500])
    hsa = install_hand_bias(fresh_unet, HSAConfig(bias=1.0, learnable="per_layer"))
    grads = []
    for checkpointing in (False, True):
        if checkpointing:
            fresh_unet.enable_gradient_checkpointing()
        fresh_unet.train()
        hsa.zero_grad(set_to_none=True)
        with hsa.conditioning(_mask(2, 16, 16), hand_text["indices"]):
            out = fresh_unet(lat, t, encoder_hidden_states=hand_text["embeds"]).sample
            out.square().mean().backward()
        grads.append(torch.stack([p.grad for p in hsa.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6) and grads[0].abs().sum() > 0


def test_own_sdpa_path_equals_the_generic_mask_route(fresh_unet, hand_text, monkeypatch):
    """HSA's broadcast-bias SDPA (inner = stock SDPA) computes what the per-head mask route computes."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    import handsynth.diffusion.hand_bias as hand_bias

    calls = []
    original = hand_bias._biased_sdpa
    monkeypatch.setattr(hand_bias, "_biased_sdpa", lambda *a: calls.append(1) or original(*a))

    class Opaque(AttnProcessor2_0):  # not exactly AttnProcessor2_0: HSA must use the attention_mask route
        pass

    lat, text = seeded(2, 4, 16, 16), hand_text["embeds"]
    mask, indices = _mask(2, 16, 16), hand_text["indices"]
    hsa = install_hand_bias(fresh_unet, HSAConfig(bias=1.5))
    with hsa.conditioning(mask, indices):
        own = _forward(fresh_unet, text, lat)
        both = _forward(fresh_unet, torch.cat([text, text]), torch.cat([lat, lat]))
    assert len(calls) == 2 * 10  # every cross-attention layer took the broadcast path
    for proc in fresh_unet.attn_processors.values():
        if isinstance(proc, HandBiasAttnProcessor):
            proc.inner = Opaque()
    with hsa.conditioning(mask, indices):
        generic = _forward(fresh_unet, text, lat)
        generic_both = _forward(fresh_unet, torch.cat([text, text]), torch.cat([lat, lat]))
    assert len(calls) == 20
    assert torch.allclose(own, generic, atol=1e-5) and torch.allclose(both, generic_both, atol=1e-5)
