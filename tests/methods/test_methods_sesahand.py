"""SesaHand on the tiny base: structural fusion starts as the plain ControlNet, reads its context streams
once trained, saves and loads; training and generation run from the command line; bad inputs are one
clear error (or one warning)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from handsynth.cli import main
from handsynth.data import DatasetWriter, read_dataset
from handsynth.errors import UserError

SIZE = 64
CHANNELS = {"fine": 6, "mid": 3, "coarse": 3}  # mesh + seg (3 labels); skeleton; body
FAST = ["--set", "model.resolution=64", "--set", "train.validate_every=0"]


@pytest.fixture(scope="module")
def tiny_base():
    from handsynth.diffusion.base import load_base

    return load_base("tiny")


def _with_prompts(src, dst, prompts):
    """A copy of a record folder whose prompts cycle through ``prompts``."""
    writer = DatasetWriter(dst)
    for i, s in enumerate(read_dataset(src)):
        files = {rel: Image.open(src / rel).copy() for rel in [s.file_name, *s.conditions.values()]}
        s.prompt = prompts[i % len(prompts)]
        writer.write(s, files)
    return dst


@pytest.fixture(scope="module")
def sesa_data(tmp_path_factory):
    from handsynth.methods.synthetic import write_synthetic_dataset

    maps = ("seg", "skeleton", "body")
    return write_synthetic_dataset(tmp_path_factory.mktemp("sesa") / "data", n=4, size=SIZE, extra_maps=maps)


def _fusion(base, mode="attention", levels=None, granularities=("fine", "mid", "coarse"), context="trunk"):
    from handsynth.methods.sesahand.fusion import FusionConfig, StructuralFusion

    torch.manual_seed(0)
    grans = list(granularities)
    cfg = FusionConfig(mode=mode, levels=levels, granularities=grans, head_dim=16, context=context)
    return StructuralFusion.from_unet(base.unet, CHANNELS, cfg).eval()


def _inputs(seed=0, batch=2):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 4, 8, 8, generator=g)
    t = torch.tensor([10, 700][:batch])
    text = torch.randn(batch, 77, 32, generator=g)
    cond = torch.rand(batch, 12, SIZE, SIZE, generator=g)
    return x, t, text, cond


def _perturb_fusion(model, seed=1, scale=0.2):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.startswith("controlnet.") or "controlnet_down_blocks" in name or "mid_block" in name:
                p.add_(torch.randn(p.shape, generator=g) * scale)


@pytest.mark.parametrize(
    ("mode", "levels", "context"),
    [("attention", [0, 1, 2, 3], "trunk"), ("attention", None, "trunk"), ("sum", [1, 3], "trunk"),
     ("attention", [0, 1, 2, 3], "light"), ("attention", None, "light")],
)  # fmt: skip
def test_fusion_at_init_is_exactly_the_plain_controlnet(tiny_base, mode, levels, context):
    model = _fusion(tiny_base, mode, levels, context=context)
    _train_trunk_outputs(model)  # else every residual is zero on both sides and nothing is compared
    x, t, text, cond = _inputs()
    with torch.no_grad():
        for scale in (1.0, 0.3):
            down, mid = model(x, t, text, cond, conditioning_scale=scale)
            ref_down, ref_mid = model.controlnet(
                x, t, text, controlnet_cond=cond[:, :6], conditioning_scale=scale, return_dict=False
            )
            assert len(down) == len(ref_down) and all(r.abs().sum() > 0 for r in [*ref_down, ref_mid])
            assert all(torch.equal(a, b) for a, b in zip(down, ref_down)) and torch.equal(mid, ref_mid)
        other = cond.clone()
        other[:, 6:] = torch.rand(other[:, 6:].shape, generator=torch.Generator().manual_seed(9))
        down2, _ = model(x, t, text, other, conditioning_scale=0.3)
    assert all(torch.equal(a, b) for a, b in zip(down, down2))  # mid/coarse maps not read yet
    assert model.levels == (levels if levels is not None else [2, 3])


def _train_trunk_outputs(model, seed=3):
    """The trunk's zero convolutions as training leaves them (non-zero); the fusion stays fresh."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.controlnet.named_parameters():
            if name.startswith(("controlnet_down_blocks", "controlnet_mid_block")):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def test_a_fused_level_hands_its_fused_features_to_the_zero_convolution(tiny_base):
    """Fusion at levels 1 and 3: residuals before level 1's last output ignore the mid maps; that
    output is the fused map (it replaces the block's own), so it is the first to change with them."""
    model = _fusion(tiny_base, "attention", [1, 3])
    _train_trunk_outputs(model)
    _perturb_fusion(model)
    blocks = model.controlnet.down_blocks
    last_of_level1 = sum(len(b.resnets) + (1 if b.downsamplers else 0) for b in blocks[:2])  # + conv_in - 1
    x, t, text, cond = _inputs()
    other = cond.clone()
    other[:, 6:9] = 1 - other[:, 6:9]  # only the mid maps
    with torch.no_grad():
        a, _ = model(x, t, text, cond)
        b, _ = model(x, t, text, other)
    changed = [i for i, (u, v) in enumerate(zip(a, b)) if not torch.equal(u, v)]
    assert changed and changed[0] == last_of_level1, (changed, last_of_level1)


def test_attention_fusion_is_multi_head_attention_with_fine_queries():
    """Against torch's own MultiheadAttention: queries from the fine stream, keys/values from every
    stream (with its embedding), added to the fine features through the output projection."""
    from handsynth.methods.sesahand.fusion import AttentionFusion

    torch.manual_seed(0)
    blk = AttentionFusion(32, 3, head_dim=16)
    with torch.no_grad():
        for p in blk.parameters():
            p.copy_(torch.randn(p.shape) * 0.3)
    mha = torch.nn.MultiheadAttention(32, blk.heads, batch_first=True, bias=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([blk.to_q.weight, blk.to_k.weight, blk.to_v.weight]))
        mha.in_proj_bias.zero_()
        mha.out_proj.weight.copy_(blk.proj_out.weight)
        mha.out_proj.bias.copy_(blk.proj_out.bias)
    g = torch.Generator().manual_seed(1)
    fine, mid, coarse = (torch.randn(2, 32, 4, 5, generator=g) for _ in range(3))

    def tok(x):
        return x.flatten(2).transpose(1, 2)

    kv = torch.cat(
        [blk.norm_kv(tok(s)) + blk.stream_embedding[i] for i, s in enumerate([fine, mid, coarse])], 1
    )
    with torch.no_grad():
        ref = tok(fine) + mha(blk.norm_q(tok(fine)), kv, kv, need_weights=False)[0]
        got = blk(fine, [fine, mid, coarse])
    torch.testing.assert_close(tok(got), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("context", ["trunk", "light"])
def test_trained_fusion_reads_every_stream_and_round_trips(tiny_base, tmp_path, context):
    from handsynth.methods.sesahand.fusion import StructuralFusion

    model = _fusion(tiny_base, "attention", [1, 3], context=context)
    assert bool(model.pyramids) == (context == "light")
    x, t, text, cond = _inputs()
    with torch.no_grad():  # a trained ControlNet: its zero convolutions are no longer zero
        for name, p in model.controlnet.named_parameters():
            if name.startswith(("controlnet_down_blocks", "controlnet_mid_block")):
                p.normal_(0, 0.1)
    down, mid = model(x, t, text, cond)
    (sum(d.square().mean() for d in down) + mid.square().mean()).backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert any(n.startswith("blocks.1.proj_out") for n in grads)  # the zero projection learns first
    _perturb_fusion(model)
    with torch.no_grad():
        base_out = model(x, t, text, cond)[1]
        for lo, hi in ((6, 9), (9, 12)):  # changing only the mid, then only the coarse maps
            other = cond.clone()
            other[:, lo:hi] = 1 - other[:, lo:hi]
            assert not torch.equal(model(x, t, text, other)[1], base_out)
    model.save(tmp_path / "run")
    loaded = StructuralFusion.load(tmp_path / "run").eval()
    with torch.no_grad():
        assert torch.equal(loaded(x, t, text, cond)[1], base_out)
    assert (tmp_path / "run" / "controlnet" / "config.json").is_file()


def test_concat_mode_is_a_controlnet_with_more_channels(tiny_base):
    model = _fusion(tiny_base, "concat")
    assert model.controlnet.config.conditioning_channels == 12 and not model.blocks and not model.encoders
    x, t, text, cond = _inputs()
    with torch.no_grad():
        ref = model.controlnet(x, t, text, controlnet_cond=cond, return_dict=False)[1]
        assert torch.equal(model(x, t, text, cond)[1], ref)


def test_fusion_settings_are_checked(tiny_base):
    with pytest.raises(UserError, match="down blocks 0..3 only"):
        _fusion(tiny_base, levels=[4])
    with pytest.raises(UserError, match="including 'fine'"):
        _fusion(tiny_base, granularities=("mid", "coarse"))
    with pytest.raises(UserError, match="fusion.mode"):
        _fusion(tiny_base, mode="gate")
    two = _fusion(tiny_base, granularities=("fine", "coarse"))
    assert list(two.channels) == ["fine", "coarse"] and two.input_channels == 9


def _train(data, out, steps, *extra):
    args = ["train", "--method", "sesahand", "--in", str(data), "--out", str(out), "--max-steps", str(steps)]
    return main([*args, *FAST, "--set", "fusion.head_dim=16", *extra])


@pytest.fixture(scope="module")
def sesa_run(sesa_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    assert _train(sesa_data, out, 2, "--set", "train.learning_rate=1e-3") == 0
    return out


def test_training_resumes_to_the_same_weights(sesa_data, tmp_path):
    from safetensors.torch import load_file

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    sets = ["--set", "train.checkpoint_every=2", "--set", "train.learning_rate=1e-3"]
    assert _train(sesa_data, straight, 4, *sets) == 0
    assert _train(sesa_data, resumed, 2, *sets) == 0
    assert _train(sesa_data, resumed, 4, *sets) == 0  # continues from checkpoints/step_2
    for name in ("fusion.safetensors", "controlnet/diffusion_pytorch_model.safetensors"):
        a, b = load_file(straight / name), load_file(resumed / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_train_writes_a_controlnet_the_fusion_and_the_config(sesa_run):
    from safetensors.torch import load_file

    from handsynth.config import load_config
    from handsynth.methods.sesahand.config import SesaHandConfig

    assert (sesa_run / "controlnet" / "diffusion_pytorch_model.safetensors").is_file()
    fusion = load_file(sesa_run / "fusion.safetensors")
    assert any(k.startswith("encoders.coarse") for k in fusion) and any(
        k.startswith("blocks.3") for k in fusion
    )
    assert float(fusion["blocks.3.proj_out.weight"].abs().sum()) > 0  # trained away from zero
    cfg = load_config(SesaHandConfig, sesa_run / "handsynth_config.yaml")
    assert cfg.method == "sesahand" and cfg.hsa.enabled and cfg.fusion.mode == "attention"


def _generate(run, data, out, *extra):
    args = [
        "generate",
        "--method",
        "sesahand",
        "--checkpoint",
        str(run),
        "--in",
        str(data),
        "--out",
        str(out),
    ]
    return main([*args, "--steps", "2", "--seed", "3", *extra])


def _pixels(folder):
    return np.stack(
        [np.asarray(Image.open(folder / r.file_name).convert("RGB"), np.int16) for r in read_dataset(folder)]
    )


def test_generate_round_trip_with_hsa_on_by_default(sesa_run, sesa_data, tmp_path):
    assert _generate(sesa_run, sesa_data, tmp_path / "a") == 0
    assert _generate(sesa_run, sesa_data, tmp_path / "again") == 0
    assert _generate(sesa_run, sesa_data, tmp_path / "nohsa", "--no-hsa") == 0
    assert _generate(sesa_run, sesa_data, tmp_path / "strong", "--hsa-bias", "8") == 0
    a = _pixels(tmp_path / "a")
    assert a.shape == (4, SIZE, SIZE, 3) and np.array_equal(a, _pixels(tmp_path / "again"))
    assert not np.array_equal(_pixels(tmp_path / "strong"), _pixels(tmp_path / "nohsa"))  # HSA acts
    rec = read_dataset(tmp_path / "a")[0]
    assert rec.source["method"] == "sesahand" and rec.source["hsa"]["bias"] == 1.0
    assert rec.source["steps"] == 2 and rec.source["guidance"] == 9.0 and rec.source["scheduler"] == "ddim"
    assert read_dataset(tmp_path / "nohsa")[0].source["hsa"] is None


def test_records_missing_maps_are_one_error_with_the_render_line(tmp_path, capsys):
    from handsynth.methods.synthetic import write_synthetic_dataset

    data = write_synthetic_dataset(tmp_path / "d", n=3, size=SIZE, extra_maps=("seg",))
    assert _train(data, tmp_path / "out", 1) == 2
    err = capsys.readouterr().err.strip()
    assert "3 record(s) lack the condition map(s) skeleton, body" in err
    assert "handsynth render --in" in err and "--maps mesh,seg,skeleton,body" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "out").exists()


def test_hand_words_beyond_77_tokens_name_the_record(sesa_data, tmp_path, capsys):
    long = "a photo of " + "a very bright and sunny kitchen table with " * 12 + "a right hand"
    data = _with_prompts(sesa_data, tmp_path / "long", [long])
    assert _train(data, tmp_path / "out", 1) == 2
    err = capsys.readouterr().err
    assert "record 000000" in err and "beyond CLIP's 77 tokens" in err


def test_empty_prompts_warn_once_and_prompt_field_switches_to_the_caption(sesa_data, tmp_path, caplog):
    from handsynth.methods.registry import build_training

    data = _with_prompts(sesa_data, tmp_path / "empty", [""])
    with caplog.at_level(logging.WARNING):
        build_training("sesahand", None, str(data), ["model.resolution=64"])
    warned = [r for r in caplog.records if "empty prompt" in r.getMessage()]
    assert len(warned) == 1 and "4 record(s)" in warned[0].getMessage()
    with pytest.raises(UserError, match="has no caption"):
        build_training("sesahand", None, str(data), ["model.resolution=64", "data.prompt_field=caption"])
    samples = read_dataset(data)
    for s in samples:
        s.extra["caption"] = "a left hand on a wooden table"
    from handsynth.data.folder import write_metadata

    write_metadata(data / "metadata.jsonl", samples)
    _, task = build_training(
        "sesahand", None, str(data), ["model.resolution=64", "data.prompt_field=caption"]
    )
    item = task.dataset()[0]
    assert item["prompt"] == "a left hand on a wooden table" and item["indices"]
    assert item["cond"].shape == (12, SIZE, SIZE) and item["hand_mask"].sum() > 0


def test_bad_sesahand_settings_are_config_errors(sesa_data):
    from handsynth.methods.registry import build_training

    for override, match in (
        ("hsa.mask=fuzzy", "hsa.mask"),
        ("model.local_branch=true", "local_branch"),
        ("model.maps.mid=[mesh]", "lists a condition map twice"),
        ("tas.iterations=-1", "tas.iterations"),
    ):
        with pytest.raises(UserError, match=match):
            build_training("sesahand", None, str(sesa_data), ["model.resolution=64", override])


def test_hsa_bias_reaches_training_and_learnable_betas_train(sesa_data, stub_accelerator, tmp_path):
    from handsynth.methods.registry import build_training
    from handsynth.methods.sesahand.fusion import StructuralFusion

    losses = {}
    for name, sets in (
        ("off", ["hsa.enabled=false"]),
        ("on", ["hsa.bias=6"]),
        ("learn", ["hsa.learnable=per_layer"]),
    ):
        _, task = build_training(
            "sesahand", None, str(sesa_data), ["model.resolution=64", "fusion.head_dim=16", *sets]
        )
        model = task.build(stub_accelerator)
        batch = task.collate([task.dataset()[i] for i in range(2)])
        loss = task.loss(model, batch, 0, torch.Generator().manual_seed(0))[0]
        loss.backward()
        losses[name] = float(loss.detach())
        if name == "learn":
            betas = [p for n, p in model.named_parameters() if n.startswith("hsa.betas")]
            assert betas and any(p.grad is not None and p.grad.abs().sum() > 0 for p in betas)
            with torch.no_grad():
                betas[0].fill_(3.5)
            model.save(tmp_path / "learned")
            loaded = StructuralFusion.load(tmp_path / "learned")  # the betas ride along for generation
            assert set(loaded.hsa_betas) == set(task.hsa.betas) and 3.5 in [
                float(b) for b in loaded.hsa_betas.values()
            ]
        task._release_hsa()
        from handsynth.diffusion.hand_bias import remove_hand_bias

        if task.hsa is not None:
            remove_hand_bias(task.hsa)
    assert losses["on"] != losses["off"]


@pytest.mark.parametrize("target", ["epsilon", "residual"])
def test_tas_option_moves_the_latent_as_attentionhand_does(sesa_data, stub_accelerator, monkeypatch, target):
    """``tas.enabled`` (HSA replaced by TAS): the same draws as without TAS, then AttentionHand's TAS moves
    the latent the fusion sees; with ``epsilon`` the implied x0 moves by (X_hat_t - X_t)/sqrt(abar_t),
    with ``residual`` it stays X_0 (AttentionHand's test_tas_training_target)."""
    import handsynth.diffusion.schedulers as schedulers
    import handsynth.methods.attentionhand.training as ah
    import handsynth.methods.sesahand.task as sesa_task
    from handsynth.methods.registry import build_training

    refine, target_fn, forward_fn = (
        ah.tas_refine,
        sesa_task.training_target,
        sesa_task.controlled_unet_forward,
    )
    runs = {}
    for name, sets in (
        ("off", ["hsa.enabled=false"]),
        ("on", ["hsa.enabled=false", "tas.enabled=true", f"tas.target={target}", "tas.alpha=constant",
                "tas.alpha_max=1000"]),
    ):  # fmt: skip
        seen = runs.setdefault(name, {})

        def spy_refine(forward, store, xt, t, *a, seen=seen, **k):
            res = refine(forward, store, xt, t, *a, **k)
            seen.update(refined=res.latents.detach().clone())
            return res

        def spy_target(scheduler, x0, noise, t, *a, seen=seen, **k):
            seen.update(x0=x0.detach().clone(), target_noise=noise.detach().clone(), t=t)
            return target_fn(scheduler, x0, noise, t, *a, **k)

        def spy_forward(unet, model, xt, *a, seen=seen, **k):
            seen.setdefault("unet_input", xt.detach().clone())  # the loss's call comes after TAS's
            return forward_fn(unet, model, xt, *a, **k)

        monkeypatch.setattr(ah, "tas_refine", spy_refine)
        monkeypatch.setattr(sesa_task, "training_target", spy_target)
        monkeypatch.setattr(sesa_task, "controlled_unet_forward", spy_forward)
        _, task = build_training(
            "sesahand", None, str(sesa_data), ["model.resolution=64", "fusion.head_dim=16", *sets]
        )
        model = task.build(stub_accelerator)
        batch = task.collate([task.dataset()[i] for i in range(2)])
        loss, logs = task.loss(model, batch, 0, torch.Generator().manual_seed(0))
        loss.backward()
        seen["logs"] = logs
        assert not any(p.grad is not None for p in task.base.unet.parameters())  # phi_d stays frozen
    off, on = runs["off"], runs["on"]
    assert "refined" not in off and "tas_loss" not in off["logs"] and "tas_loss" in on["logs"]
    assert torch.equal(off["x0"], on["x0"]) and torch.equal(off["t"], on["t"])  # the same draws
    a = schedulers.alphas_cumprod_at(task.scheduler, on["t"]).view(-1, 1, 1, 1)
    moved = (on["refined"] - off["unet_input"]) / a.sqrt()
    assert float(moved.abs().max()) > 1e-3  # TAS did move the latent the loss then sees
    assert torch.equal(on["unet_input"], on["refined"])
    noise = off["target_noise"]  # without TAS the regressed noise is the drawn one
    implied = (on["refined"] - (1 - a).sqrt() * on["target_noise"]) / a.sqrt()
    expected = on["x0"] + moved if target == "epsilon" else on["x0"]
    assert torch.allclose(implied, expected, atol=1e-3 * float(expected.abs().max()))
    if target == "epsilon":
        assert torch.equal(on["target_noise"], noise)
