"""AttentionHand training: data, every ablation switch, loss goes down, resume, stock-pipeline load."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from handsynth.methods.attentionhand.training import AttentionHandConfig, AttentionHandDataset, crop_square
from handsynth.methods.record_task import collate
from handsynth.methods.registry import build_training

TINY_CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "attentionhand_tiny.yaml")
FAST = ["model.resolution=64", "train.validate_every=0", "train.log_every=1"]


def _task(data, overrides=(), acc=None):
    cfg, task = build_training("attentionhand", TINY_CONFIG, str(data), [*FAST, *overrides])
    if acc is not None:
        model = task.build(acc)
        return cfg, task, model
    return cfg, task


def test_dataset_local_crop_and_token_positions(tiny_dataset):
    from PIL import Image

    from handsynth.data.folder import read_dataset

    samples = read_dataset(tiny_dataset)
    ds = AttentionHandDataset(samples, tiny_dataset, 64)
    item = ds[0]
    assert item["image_global"].shape == (3, 64, 64) and item["cond_local"].shape == (3, 64, 64)
    assert float(item["image_global"].min()) >= -1.0 and float(item["cond_global"].min()) >= 0.0
    # "a person holding a red cup with the right hand": holding (3) and hand (10), start token = 0
    assert item["prompt"].startswith("a person holding") and item["indices"] == [3, 10]
    # The local RGB is the crop of the GLOBAL image by the local box (not the global latent).
    s = samples[0]
    with Image.open(tiny_dataset / s.file_name) as im:
        ref = np.asarray(crop_square(im.convert("RGB"), s.local.box, 64), dtype=np.float32) / 127.5 - 1
    assert np.allclose(item["image_local"].permute(1, 2, 0).numpy(), ref, atol=1e-5)
    assert not torch.allclose(item["image_local"], item["image_global"])
    hand = AttentionHandDataset(samples, tiny_dataset, 64, local_prompt="hand")[0]
    assert hand["prompt_local"] == "hand" and hand["indices_local"] == [1]


def test_bad_record_is_a_clear_error(tiny_dataset, tmp_path):
    from handsynth.data.folder import read_dataset
    from handsynth.errors import UserError

    samples = read_dataset(tiny_dataset)
    samples[1].conditions = {}
    with pytest.raises(UserError, match=r"sample 000001 .*'mesh' condition"):
        AttentionHandDataset(samples, tiny_dataset, 64)


SWITCHES = {
    "no_tas": (["tas.enabled=false"], lambda logs, m, t: "tas_loss" not in logs),
    "global_only": (
        ["model.branches=[global]"],
        lambda logs, m, t: set(logs) >= {"loss_global"} and "loss_local" not in logs,
    ),
    "local_only": (
        ["model.branches=[local]"],
        lambda logs, m, t: "loss_local" in logs and "loss_global" not in logs,
    ),
    "separate": (["model.separate_weights=true"], lambda logs, m, t: set(m.nets) == {"global", "local"}),
    "gauss_none": (["tas.gaussian=none"], lambda logs, m, t: "tas_loss" in logs),
    "gauss_random": (["tas.gaussian=random"], lambda logs, m, t: "tas_loss" in logs),
    "kernel_textbook": (["tas.kernel=textbook"], lambda logs, m, t: "tas_loss" in logs),
    "lb_loss": (["tas.loss=lb"], lambda logs, m, t: logs["tas_loss"] >= 1.0 - 1e-5),  # L_LB >= 1
    "alpha_random": (["tas.alpha=random"], lambda logs, m, t: "tas_loss" in logs),
    "alpha_released_50": (
        ["tas.alpha=released", "tas.iterations=3", "tas.loss_threshold=0"],
        lambda logs, m, t: logs["tas_iterations"] == 3,
    ),
    "prompt_window": (["tas.token_window=prompt"], lambda logs, m, t: "tas_loss" in logs),
    "residual_target": (["tas.target=residual"], lambda logs, m, t: "tas_loss" in logs),
    "early_stop": (
        ["tas.loss_threshold=1.0", "tas.iterations=3"],
        lambda logs, m, t: logs["tas_iterations"] == 0,  # every loss <= 1: no sample updates
    ),
    "grad_clip": (["train.max_grad_norm=1.0"], lambda logs, m, t: t.cfg.train.max_grad_norm == 1.0),
    "tas_controlled": (["tas.unet=controlled"], lambda logs, m, t: "tas_loss" in logs),
    # Every prompt dropped (ControlNet-style caption dropout): TAS has no hand token to act on and the
    # step still trains the module.
    "empty_prompts": (["data.empty_prompt_prob=1.0"], lambda logs, m, t: "loss_global" in logs),
    "local_prompt_hand": (
        ["data.local_prompt=hand"],
        lambda logs, m, t: t.dataset()[0]["prompt_local"] == "hand",
    ),
}


@pytest.mark.parametrize("name", sorted(SWITCHES))
def test_ablation_switches_train(name, tiny_dataset, stub_accelerator):
    overrides, check = SWITCHES[name]
    cfg, task, model = _task(tiny_dataset, overrides, stub_accelerator)
    batch = collate([task.dataset()[0], task.dataset()[1]])
    loss, logs = task.loss(model, batch, 0, generator=torch.Generator().manual_seed(0))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert torch.isfinite(loss) and grads and all(torch.isfinite(g).all() for g in grads)
    if cfg.model.separate_weights:
        assert all(any(p.grad is not None for p in net.parameters()) for net in model.nets.values())
    assert not any(p.grad is not None for p in task.base.unet.parameters())  # phi_d stays frozen
    assert check(logs, model, task), logs
    if name in CHANGES_THE_STEP:
        # the switch is wired: the same batch, seed and weights give another loss than the defaults
        # (the module's zero convolutions hide it at initialisation: give it some weights first)
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * torch.randn(p.shape, generator=g))
        _, default, _ = _task(tiny_dataset, [], stub_accelerator)
        loss, logs = task.loss(model, batch, 0, generator=torch.Generator().manual_seed(0))
        ref, ref_logs = default.loss(model, batch, 0, generator=torch.Generator().manual_seed(0))
        key = (
            "tas_loss" if name in {"gauss_none", "gauss_random", "kernel_textbook", "prompt_window"} else None
        )
        got, want = (logs[key], ref_logs[key]) if key else (float(loss.detach()), float(ref.detach()))
        assert abs(got - want) > 1e-6 * max(1.0, abs(want)), (name, got, want)


# switches whose effect shows in one step's loss (the rest are checked by their own lambda above)
CHANGES_THE_STEP = {
    "gauss_none", "gauss_random", "kernel_textbook", "alpha_random", "prompt_window", "residual_target",
    "tas_controlled", "empty_prompts",
}  # fmt: skip


def _eval_loss(task, model, seeds=(0, 1, 2)) -> float:
    batch = collate([task.dataset()[i] for i in range(len(task.dataset()))])
    vals = []
    with torch.no_grad():
        for s in seeds:
            vals.append(float(task.loss(model, batch, 0, generator=torch.Generator().manual_seed(s))[0]))
    return float(np.mean(vals))


def test_training_lowers_loss_and_output_loads_in_stock_pipeline(tiny_dataset, tmp_path):
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline

    from handsynth.config import load_config
    from handsynth.diffusion.base import tiny_base_path
    from handsynth.diffusion.controlnet import GuidanceModule
    from handsynth.diffusion.training import run_training

    over = [
        "train.max_steps=30",
        "train.learning_rate=1e-3",
        "train.checkpoint_every=0",
        "validation.num_inference_steps=2",
        "train.validate_every=30",
    ]
    cfg, task = _task(tiny_dataset, over)
    run_training(task, cfg.train, tmp_path / "run")
    before = _eval_loss(task, GuidanceModule.from_unet(task.base.unet, None, [8, 16, 16, 16]))
    trained = ControlNetModel.from_pretrained(tmp_path / "run" / "controlnet")
    after = _eval_loss(task, GuidanceModule({"shared": trained}))
    assert after < 0.95 * before, (before, after)
    assert (tmp_path / "run" / "validation" / "step_30" / "sample_000000.png").exists()
    assert list((tmp_path / "run" / "logs").rglob("events.out.tfevents*"))
    assert load_config(AttentionHandConfig, tmp_path / "run" / "handsynth_config.yaml") == cfg

    pipe = StableDiffusionControlNetPipeline.from_pretrained(
        str(tiny_base_path()), controlnet=trained, safety_checker=None, requires_safety_checker=False
    )
    mesh = task.dataset()[0]["cond_global"][None]
    img = pipe("a hand", image=mesh, num_inference_steps=2, height=64, width=64, output_type="np").images
    assert img.shape == (1, 64, 64, 3) and np.isfinite(img).all()


def test_resume_continues_the_same_run(tiny_dataset, tmp_path):
    import json

    from safetensors.torch import load_file

    from handsynth.diffusion.training import run_training

    over = ["train.max_steps=6", "train.checkpoint_every=3", "train.learning_rate=1e-3"]
    cfg, task = _task(tiny_dataset, over)
    run_training(task, cfg.train, tmp_path / "a")
    (tmp_path / "b" / "checkpoints").mkdir(parents=True)
    shutil.copytree(tmp_path / "a" / "checkpoints" / "step_3", tmp_path / "b" / "checkpoints" / "step_3")
    cfg_b, task_b = _task(tiny_dataset, over)
    summary = run_training(task_b, cfg_b.train, tmp_path / "b", resume="auto")
    assert summary["step"] == 6
    wa = load_file(tmp_path / "a" / "controlnet" / "diffusion_pytorch_model.safetensors")
    wb = load_file(tmp_path / "b" / "controlnet" / "diffusion_pytorch_model.safetensors")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    log_a = [json.loads(x) for x in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    log_b = [json.loads(x) for x in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log_b] == [4, 5, 6]
    assert [r["loss"] for r in log_b] == pytest.approx([r["loss"] for r in log_a[3:]], rel=1e-5)


@pytest.mark.parametrize("target", ["epsilon", "residual"])
def test_tas_training_target(target, tiny_dataset, stub_accelerator, monkeypatch):
    """What the task regresses on the TAS-updated latent: with ``epsilon`` the implied x0 differs from
    X_0 by exactly (X_hat_t - X_t)/sqrt(abar_t); with ``residual`` it is X_0."""
    import handsynth.diffusion.schedulers as schedulers
    import handsynth.diffusion.tas as tas

    overrides = [f"tas.target={target}", "tas.alpha=constant", "tas.alpha_max=1000"]
    cfg, task, model = _task(tiny_dataset, overrides, stub_accelerator)
    seen = {}
    refine, target_fn = tas.tas_refine, schedulers.training_target

    def spy_refine(forward, store, xt, t, *a, **k):
        res = refine(forward, store, xt, t, *a, **k)
        seen.update(xt=xt.detach().clone(), refined=res.latents.detach().clone(), t=t)
        return res

    def spy_target(scheduler, x0, noise, t, *a, **k):
        seen.update(x0=x0.detach().clone(), noise=noise.detach().clone())
        return target_fn(scheduler, x0, noise, t, *a, **k)

    import handsynth.methods.attentionhand.training as training  # the task's own references

    monkeypatch.setattr(training, "tas_refine", spy_refine)
    monkeypatch.setattr(training, "training_target", spy_target)
    batch = collate([task.dataset()[0], task.dataset()[1]])
    task.loss(model, batch, 0, generator=torch.Generator().manual_seed(0))
    a = schedulers.alphas_cumprod_at(task.scheduler, seen["t"]).view(-1, 1, 1, 1)
    implied = (seen["refined"] - (1 - a).sqrt() * seen["noise"]) / a.sqrt()
    moved = (seen["refined"] - seen["xt"]) / a.sqrt()
    assert float(moved.abs().max()) > 1e-3  # TAS did move the latent
    expected = seen["x0"] + moved if target == "epsilon" else seen["x0"]
    assert torch.allclose(implied, expected, atol=1e-3 * float(expected.abs().max()))


def test_caption_dropout_empties_that_share_of_prompts_and_lambdas_weight_the_branches(
    tiny_dataset, stub_accelerator, monkeypatch
):
    import handsynth.methods.attentionhand.training as training

    seen: list[list[str]] = []
    tokenize = training.tokenize

    def spy(tokenizer, prompts, *a, **k):
        seen.append(list(prompts))
        return tokenize(tokenizer, prompts, *a, **k)

    monkeypatch.setattr(training, "tokenize", spy)
    for p, empty in ((1.0, True), (0.0, False)):
        over = [
            f"data.empty_prompt_prob={p}",
            "tas.enabled=false",
            "loss.lambda_global=1",
            "loss.lambda_local=0",
        ]
        cfg, task, model = _task(tiny_dataset, over, stub_accelerator)
        batch = collate([task.dataset()[0], task.dataset()[1]])
        seen.clear()
        total, logs = task.loss(model, batch, 0, generator=torch.Generator().manual_seed(0))
        assert len(seen[-1]) == 4  # two samples x (global, local)
        assert all(q == "" for q in seen[-1]) if empty else all(q for q in seen[-1])
        # lambda_global 1, lambda_local 0: the loss is the global branch's alone
        assert float(total.detach()) == pytest.approx(logs["loss_global"], rel=1e-6)
        assert logs["loss_local"] != pytest.approx(logs["loss_global"], rel=1e-3)


def test_released_defaults(tiny_dataset):
    cfg = AttentionHandConfig()
    assert cfg.tas.target == "epsilon" and cfg.tas.token_window == "ae" and cfg.tas.loss_threshold == 0
    assert cfg.train.max_grad_norm == 0  # no clipping in the released code
    assert cfg.data.local_prompt == "full"
    from handsynth.data.folder import read_dataset

    samples = read_dataset(tiny_dataset)
    item = AttentionHandDataset(samples, tiny_dataset, 64)[0]
    assert item["prompt_local"] == item["prompt"] and item["indices_local"] == item["indices"]


def test_training_on_an_empty_dataset_names_the_given_path(tmp_path):
    from handsynth.errors import UserError

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(UserError, match=f"--in {empty} holds no records"):
        build_training("attentionhand", TINY_CONFIG, str(empty), FAST)


def test_crop_square_is_the_boxs_pixels_zero_padded_outside():
    from PIL import Image

    a = np.random.default_rng(0).integers(0, 256, size=(60, 70, 3), dtype=np.uint8)
    img = Image.fromarray(a)
    np.testing.assert_array_equal(np.asarray(crop_square(img, [10, 20, 30], 30)), a[20:50, 10:40])
    edge = np.asarray(crop_square(img, [60, -5, 20], 20))  # 10 columns and 5 rows outside the image
    assert (edge[:5] == 0).all() and (edge[:, 10:] == 0).all()
    np.testing.assert_array_equal(edge[5:, :10], a[0:15, 60:70])
