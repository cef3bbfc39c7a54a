"""Attention store: same maps as diffusers' Attend-and-Excite store, no effect on outputs, early stop."""

from __future__ import annotations

import copy

import torch

from handsynth.diffusion.attention import (
    StoringAttnProcessor,
    install_attention_store,
    remove_attention_store,
    run_and_capture,
)


def _inputs(hand_text, L=16):
    lat = torch.randn(2, 4, L, L, generator=torch.Generator().manual_seed(0))
    return lat, torch.tensor([500, 500]), hand_text["embeds"]


def test_maps_match_attend_and_excite_store(fresh_unet, hand_text):
    """Head- and layer-averaged 4x4 maps equal the ones diffusers' A&E processors collect."""
    from diffusers.pipelines.deprecated.stable_diffusion_attend_and_excite.pipeline_stable_diffusion_attend_and_excite import (
        AttendExciteAttnProcessor,
        AttentionStore,
    )

    lat, t, text = _inputs(hand_text)
    ref_unet = copy.deepcopy(fresh_unet)
    for i in range(2):  # A&E's store handles one sample at a time
        ae = AttentionStore((4, 4))
        procs, n = {}, 0
        for name in ref_unet.attn_processors:
            place = name.split("_")[0] if not name.startswith("mid") else "mid"
            procs[name] = AttendExciteAttnProcessor(ae, place)
            n += 1
        ref_unet.set_attn_processor(procs)
        ae.num_att_layers = n
        x = lat[i : i + 1].clone().requires_grad_(True)  # A&E only stores when probs require grad
        ref_unet(x, t[:1], encoder_hidden_states=text[i : i + 1])
        ref = ae.aggregate_attention(["down", "mid", "up"])

        store = install_attention_store(fresh_unet)
        ours = run_and_capture(
            lambda x, i=i: fresh_unet(x, t[:1], encoder_hidden_states=text[i : i + 1]),
            store,
            lat[i : i + 1],
            (4, 4),
        )
        assert store.num_layers == 3  # down_blocks.2 (1) and up_blocks.1 (2), as SD at 16x16 (2 + 3)
        assert torch.allclose(ours[0], ref.detach(), atol=1e-6)


def test_store_does_not_change_outputs_and_is_free_when_inactive(fresh_unet, hand_text):
    lat, t, text = _inputs(hand_text)
    with torch.no_grad():
        plain = fresh_unet(lat, t, encoder_hidden_states=text).sample
    store = install_attention_store(fresh_unet)
    assert (
        sum(isinstance(p, StoringAttnProcessor) for p in fresh_unet.attn_processors.values()) == 10
    )  # incl. mid
    with torch.no_grad():
        inactive = fresh_unet(lat, t, encoder_hidden_states=text).sample
        with store.capture((4, 4)):
            active = fresh_unet(lat, t, encoder_hidden_states=text).sample
    assert store.num_layers == 3
    assert torch.allclose(plain, inactive, atol=1e-5) and torch.allclose(plain, active, atol=1e-5)
    # Inactive: the explicit probability path is never taken (all layers go to the wrapped processor).
    store.reset()
    for module in fresh_unet.modules():
        if hasattr(module, "get_attention_scores"):
            module.get_attention_scores = lambda *a, **k: (_ for _ in ()).throw(
                AssertionError("computed probs")
            )
    with torch.no_grad():
        fresh_unet(lat, t, encoder_hidden_states=text)
    assert store.num_layers == 0
    remove_attention_store(fresh_unet)
    assert not any(isinstance(p, StoringAttnProcessor) for p in fresh_unet.attn_processors.values())


def test_stop_early_gives_same_maps_and_skips_the_decoder_tail(fresh_unet, hand_text):
    lat, t, text = _inputs(hand_text)
    store = install_attention_store(fresh_unet)
    reached = []
    hook = fresh_unet.up_blocks[2].register_forward_pre_hook(lambda *a: reached.append(1))
    fwd = lambda x: fresh_unet(x, t, encoder_hidden_states=text)  # noqa: E731
    full = run_and_capture(fwd, store, lat, (4, 4), stop_early=False)
    assert reached == [1]
    reached.clear()
    early = run_and_capture(fwd, store, lat, (4, 4), stop_early=True)
    assert reached == []  # stopped after up_blocks.1, the last block at 4x4
    assert torch.allclose(full, early)
    hook.remove()
    assert store.layers_at((16, 16), (64, 64)) == {
        "down_blocks.2.attentions.0.transformer_blocks.0.attn2",
        "up_blocks.1.attentions.0.transformer_blocks.0.attn2",
        "up_blocks.1.attentions.1.transformer_blocks.0.attn2",
    }
