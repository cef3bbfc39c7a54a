"""Uni-ControlNet's local adapter on the tiny base: zero-conv start, FDN, training, resume, map checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from handsynth.cli import main

FAST = [
    "--set",
    "model.resolution=64",
    "--set",
    "train.validate_every=0",
    "--set",
    "model.stem_channels=[8,16,16]",
]


@pytest.fixture(scope="module")
def tiny_base():
    from handsynth.diffusion.base import load_base

    return load_base("tiny")


@pytest.fixture(scope="module")
def multi_map_dataset(tmp_path_factory):
    from handsynth.methods.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("unidata"), n=4, size=64, extra_maps=("seg",))


def _adapter(base, maps=("mesh", "seg")):
    from handsynth.methods.uni_controlnet.adapter import UniControlAdapter
    from handsynth.methods.uni_controlnet.data import condition_channels

    torch.manual_seed(0)
    return UniControlAdapter.from_unet(
        base.unet, list(maps), condition_channels(list(maps)), None, [8, 16, 16]
    )


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 8, 8, generator=g)
    t = torch.tensor([10, 700])
    text = torch.randn(2, 77, 32, generator=g)
    cond = torch.rand(2, 6, 64, 64, generator=g)
    return x, t, text, cond


def test_adapter_at_init_leaves_the_unet_unchanged(tiny_base):
    from handsynth.diffusion.controlnet import controlled_unet_forward

    adapter = _adapter(tiny_base)
    x, t, text, cond = _inputs()
    with torch.no_grad():
        bare = tiny_base.unet(x, t, encoder_hidden_states=text).sample
        controlled = controlled_unet_forward(tiny_base.unet, adapter, x, t, text, cond)
        downs, mid = adapter(x, t, text, cond)
    assert torch.equal(bare, controlled)
    assert all(float(d.abs().max()) == 0 for d in downs) and float(mid.abs().max()) == 0
    # one residual per skip connection of the frozen UNet, at its shape
    assert len(downs) == 1 + sum(
        len(b.resnets) + len(b.downsamplers or []) for b in tiny_base.unet.down_blocks
    )


def test_fdn_starts_as_the_norm_it_replaces(tiny_base):
    """With zero condition features (the zero convs at init) the copy's first ResNet norms are the UNet's."""
    adapter = _adapter(tiny_base)
    for block, mine in zip(tiny_base.unet.down_blocks, adapter.down_blocks):
        for name in ("norm1", "norm2"):
            norm, fdn = getattr(block.resnets[0], name), getattr(mine.resnets[0], name)
            h = torch.randn(2, norm.num_channels, 4, 4)
            fdn.condition = torch.zeros(2, fdn.conv_gamma.in_channels, 4, 4)
            torch.testing.assert_close(fdn(h), norm(h))


def _task(data, tmp_path, *sets):
    from handsynth.methods.registry import build_training

    overrides = [
        "model.resolution=64",
        "model.maps=[mesh, seg]",
        "model.stem_channels=[8,16,16]",
        "data.drop_text_prob=0",
        "data.keep_all_maps_prob=1",
        "data.drop_all_maps_prob=0",
        *sets,
    ]
    return build_training("uni-controlnet", None, str(data), overrides)


def test_training_lowers_the_loss_and_fdn_then_reads_the_condition(
    multi_map_dataset, tmp_path, stub_accelerator
):
    cfg, task = _task(multi_map_dataset, tmp_path)
    model = task.build(stub_accelerator)
    batch = task.collate([task.dataset()[i] for i in range(2)])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)

    def loss_at_fixed_draws():
        return task.loss(model, batch, 0, torch.Generator().manual_seed(3))[0]

    x, t, text, _ = _inputs()
    cond_a = torch.zeros(1, 6, 64, 64)
    cond_b = batch["cond"][:1]
    fdn = model.fdns()[0][0]

    def gamma(cond):
        with torch.no_grad():
            return fdn.modulation(model.condition_encoder(cond)[0])[0]

    assert torch.equal(gamma(cond_a), gamma(cond_b))  # zero-conv features: the condition is not read yet
    before = float(loss_at_fixed_draws().detach())
    for _ in range(8):
        loss = loss_at_fixed_draws()
        loss.backward()
        opt.step()
        opt.zero_grad()
    after = float(loss_at_fixed_draws().detach())
    assert after < before
    assert float((gamma(cond_a) - gamma(cond_b)).abs().max()) > 1e-6  # FDN now modulates by the condition
    with torch.no_grad():
        out_a = model(x[:1], t[:1], text[:1], cond_a)[1]
        out_b = model(x[:1], t[:1], text[:1], cond_b)[1]
    assert not torch.equal(out_a, out_b)


def test_condition_dropout_zeroes_whole_maps(multi_map_dataset, tmp_path):
    _, task = _task(
        multi_map_dataset,
        tmp_path,
        "data.keep_all_maps_prob=0",
        "data.drop_each_map_prob=0.5",
        "data.drop_text_prob=0.5",
    )
    cond = torch.ones(64, 6, 2, 2)
    prompts, dropped = task.drop_conditions(["p"] * 64, cond, torch.Generator().manual_seed(0))
    per_map = dropped[:, :, 0, 0].reshape(64, 2, 3)
    assert torch.all((per_map == 0).all(-1) | (per_map == 1).all(-1))  # a map is kept or zeroed whole
    kept = per_map[..., 0].mean(0)
    assert 0.25 < float(kept[0]) < 0.75 and 0.25 < float(kept[1]) < 0.75
    assert 0 < prompts.count("") < 64


def _run(data, out, steps, *extra):
    args = ["train", "--method", "uni-controlnet", "--in", str(data), "--out", str(out), "--max-steps"]
    args += [str(steps), *FAST, "--set", "model.maps=[mesh, seg]", "--set", "train.checkpoint_every=2"]
    args += ["--set", "train.learning_rate=1e-3", *extra]
    return main(args)


def test_a_dataset_folder_is_never_a_run_folder(multi_map_dataset, capsys):
    before = sorted(p.name for p in multi_map_dataset.iterdir())
    assert _run(multi_map_dataset, multi_map_dataset, 1) == 2
    assert "is a dataset folder" in capsys.readouterr().err
    assert sorted(p.name for p in multi_map_dataset.iterdir()) == before


def test_cli_trains_saves_and_resumes_to_the_same_weights(multi_map_dataset, tmp_path, capsys):
    from safetensors.torch import load_file

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert _run(multi_map_dataset, straight, 4) == 0
    assert _run(multi_map_dataset, resumed, 2) == 0
    assert _run(multi_map_dataset, resumed, 4) == 0  # continues from checkpoints/step_2
    assert "uni_controlnet" in capsys.readouterr().out
    for run in (straight, resumed):
        assert (run / "uni_controlnet" / "config.json").is_file()
        assert (run / "handsynth_config.yaml").is_file()
    a = load_file(straight / "uni_controlnet" / "diffusion_pytorch_model.safetensors")
    b = load_file(resumed / "uni_controlnet" / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    logs = [
        [json.loads(x) for x in (r / "train_log.jsonl").read_text().splitlines()] for r in (straight, resumed)
    ]
    assert [r["loss"] for r in logs[0]] == [r["loss"] for r in logs[1]]
    config = json.loads((straight / "uni_controlnet" / "config.json").read_text())
    assert config["maps"] == ["mesh", "seg"] and config["condition_channels"] == 6


def test_a_record_without_a_configured_map_is_one_error_or_zeros(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(tiny_dataset, out, 1) == 2  # tiny_dataset has mesh maps only
    err = capsys.readouterr().err.strip()
    assert "has no 'seg' condition map" in err and "model.missing_maps=zero" in err
    assert len(err.splitlines()) == 1 and not out.exists()
    from handsynth.methods.registry import build_training

    _, task = build_training(
        "uni-controlnet",
        None,
        str(tiny_dataset),
        ["model.resolution=64", "model.maps=[mesh, seg]", "model.missing_maps=zero"],
    )
    cond = task.dataset()[0]["cond"]
    assert cond.shape == (6, 64, 64) and float(cond[:3].abs().sum()) > 0 and float(cond[3:].abs().sum()) == 0


def test_map_encoding():
    from PIL import Image

    from handsynth.methods.uni_controlnet.data import map_tensor

    seg = np.zeros((4, 4), np.uint8)
    seg[0, 0], seg[1, 1], seg[2, 2] = 1, 2, 3
    t = map_tensor("seg", Image.fromarray(seg), 4, 4)
    assert t.shape == (3, 4, 4) and t[0, 0, 0] == 1 and t[1, 1, 1] == 1 and t[2, 2, 2] == 1
    assert float(t.sum()) == 3
    depth = np.zeros((4, 4), np.uint16)
    depth[0, 0], depth[0, 1] = 400, 800
    d = map_tensor("depth", Image.fromarray(depth), 4, 4)
    assert d.shape == (1, 4, 4) and d[0, 0, 0] > d[0, 0, 1] > 0 and d[0, 3, 3] == 0  # near is bright
