"""Micro base, default-model locator, wild prompts, and the benchmark pipeline's skipping and verdicts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from handsynth.data.records import Hand, Sample
from handsynth.errors import UserError
from handsynth.micro.assets import MAX_BYTES, default_model, folder_bytes, install_default
from handsynth.micro.base import MicroBaseConfig, build_components, train_unet
from handsynth.micro.prompts import wild_prompts

REPO = Path(__file__).resolve().parents[2]
SMALL = MicroBaseConfig(
    vae_channels=[8, 8], unet_channels=[16, 16], cross_attention_levels=1, text_hidden=16, resolution=32
)


def _micro_base(folder: Path) -> Path:
    from handsynth.diffusion.base import save_base_folder

    return save_base_folder(build_components(SMALL), folder)


def test_micro_base_is_a_loadable_sd_folder_with_the_configured_shapes(tmp_path):
    from diffusers import StableDiffusionPipeline

    from handsynth.diffusion.base import load_base

    base = load_base(str(_micro_base(tmp_path / "base")))
    assert base.vae_scale_factor == 2 and base.unet.config.cross_attention_dim == 16
    assert base.unet.config.down_block_types == ["CrossAttnDownBlock2D", "DownBlock2D"]
    assert base.scheduler_config["beta_schedule"] == "scaled_linear"  # SD-1.5's schedule
    pipe = StableDiffusionPipeline.from_pretrained(tmp_path / "base")  # stock diffusers reads it too
    assert pipe.unet.config.sample_size == 16


def test_unet_pretraining_lowers_the_noise_prediction_loss():
    parts = build_components(SMALL)
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(1, 4, 16, 16, generator=g).repeat(8, 1, 1, 1)  # one image: easy to fit
    std = torch.full_like(mean, 1e-3)
    text = torch.randn(8, 77, 16, generator=g)
    cfg = MicroBaseConfig(**{**SMALL.__dict__, "unet_steps": 60, "unet_batch_size": 8, "unet_lr": 3e-3})
    first = train_unet(
        parts["unet"],
        dict(parts["scheduler"].config),
        (mean, std),
        text,
        text[0],
        MicroBaseConfig(**{**cfg.__dict__, "unet_steps": 1}),
    )
    last = train_unet(parts["unet"], dict(parts["scheduler"].config), (mean, std), text, text[0], cfg)
    assert last["loss_ema"] < first["loss"]


def _fake_run(folder: Path, base: Path) -> Path:
    from diffusers import ControlNetModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet")
    ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 8)).save_pretrained(
        folder / "controlnet"
    )
    (folder / "handsynth_config.yaml").write_text(f"method: attentionhand\nmodel:\n  base_model: {base}\n")
    return folder


def test_install_default_writes_fp16_assets_the_locator_and_loader_read(tmp_path):
    from handsynth.diffusion.base import load_base

    base = _micro_base(tmp_path / "base")
    run = _fake_run(tmp_path / "run", base)
    tool = tmp_path / "tool"
    tool.mkdir()
    (tool / "model.safetensors").write_bytes(b"x")
    (tool / "config.json").write_text("{}")
    model = install_default(base, run, {"seed": 7, "size": 32}, {"detector": tool}, root=tmp_path / "assets")
    assert model.info["seed"] == 7 and model.tool("detector") is not None and model.tool("features") is None
    from safetensors import safe_open

    with safe_open(str(model.base / "unet" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        assert f.get_tensor(next(iter(f.keys()))).dtype == torch.float16
    loaded = load_base(str(model.base))  # fp16 on disk, fp32 in memory
    assert next(loaded.unet.parameters()).dtype == torch.float32
    assert (model.checkpoint / "controlnet" / "config.json").exists()
    assert folder_bytes(model.root) < MAX_BYTES


def test_locator_rejects_an_incomplete_folder(tmp_path):
    with pytest.raises(UserError, match="default model .* is incomplete"):
        default_model(tmp_path)


def test_the_committed_default_model_is_complete_and_small():
    try:
        model = default_model()
    except UserError:
        pytest.skip("no default model embedded in this checkout yet")
    assert folder_bytes(model.root) <= MAX_BYTES
    assert model.info.get("command") and "seed" in model.info
    assert model.tool("features") is not None and model.tool("detector") is not None


def _sample(i: int, side: str, bg: str | None = None, domain: str = "lab") -> Sample:
    rng = np.random.default_rng(i)
    joints = rng.normal(size=(21, 3)) * 0.03
    hand = Hand(
        side=side,
        model="openhand",
        global_orient=[0.0] * 3,
        hand_pose=[0.0] * 45,
        betas=[0.0] * 10,
        transl=[0.0, 0.0, 0.5],
        joints_3d=joints.tolist(),
        joints_2d=(joints[:, :2] * 100 + 32).tolist(),
        bbox=[10, 10, 20, 20],
    )
    src = {"domain": domain, "attributes": {"background": {"phrase": bg} if bg else {"name": "dark"}}}
    K = [[60.0, 0.0, 32.0], [0.0, 60.0, 32.0], [0.0, 0.0, 1.0]]
    return Sample(id=f"{domain}_{i}", width=64, height=64, K=K, hands=[hand], source=src)


def test_wild_prompts_keep_the_pose_facts_and_take_wild_backgrounds():
    lab = [_sample(i, "left" if i % 2 else "right") for i in range(6)]
    wild = [_sample(i, "right", bg=f"in front of wall {i % 3}", domain="wild") for i in range(9)]
    prompts = wild_prompts(lab, wild, seed=3)
    assert len(prompts) == 6 and prompts == wild_prompts(lab, wild, seed=3)
    for s, p in zip(lab, prompts):
        assert s.hands[0].side in p and "hand" in p
        assert any(f"in front of wall {k}" in p for k in range(3))


# -- the benchmark runner ----------------------------------------------------------------------------------
@pytest.fixture
def runner(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks" / "micro"))
    import run as micro_run

    r = micro_run.Runner(micro_run.load_profile("tiny"), tmp_path / "work")
    r.results = tmp_path / "results"
    jobs: list[str] = []
    r.parallel = lambda js: jobs.extend(name for name, _ in js)  # record, do not run
    yield r, jobs
    sys.path.remove(str(REPO / "benchmarks" / "micro"))


def test_profiles_merge_over_the_full_budget(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks" / "micro"))
    import run as micro_run

    full, quick = micro_run.load_profile("full"), micro_run.load_profile("quick")
    assert len(full["seeds"]) >= 3 and quick["seeds"] == [0]
    assert quick["guidance"]["tas_resolution"] == full["guidance"]["tas_resolution"]  # unspecified: inherited
    assert set(full["methods"]) == {
        "sd",
        "controlnet",
        "uni_controlnet",
        "ah_local",
        "ah_notas",
        "attentionhand",
        "ah_separate",
        "ah_infer_local",
        "ah_infer_tas",
    }
    # The inference variants are not trained: they generate from the attentionhand modules.
    r = micro_run.Runner(full, tmp_path)
    cmd = [str(c) for c in r.generate_cmd("ah_infer_local", 1)]
    assert cmd[cmd.index("--checkpoint") + 1] == str(r.run_dir("attentionhand", 1))
    assert cmd[cmd.index("--mode") + 1] == "global+local" and "--tas" not in cmd
    cmd = [str(c) for c in r.generate_cmd("ah_infer_tas", 1)]
    assert cmd[cmd.index("--checkpoint") + 1] == str(r.run_dir("attentionhand", 1))
    assert cmd[cmd.index("--mode") + 1] == "global" and "--tas" in cmd
    # Uni-ControlNet: its own trainer and run folder, the ControlNet rows' guidance budget.
    cmd = [str(c) for c in r.generate_cmd("uni_controlnet", 1)]
    assert cmd[cmd.index("--method") + 1] == "uni-controlnet"
    assert cmd[cmd.index("--checkpoint") + 1] == str(r.run_dir("uni_controlnet", 1))
    uni = __import__("yaml").safe_load(r.guidance_config("uni_controlnet", 1).read_text())
    cn = __import__("yaml").safe_load(r.guidance_config("controlnet", 1).read_text())
    assert uni["method"] == "uni-controlnet" and uni["train"] == cn["train"]
    assert r.weights_config("uni_controlnet", 1).parent.name == "uni_controlnet"
    from handsynth.diffusion.config import load_config
    from handsynth.methods.uni_controlnet.config import UniControlNetConfig

    load_config(UniControlNetConfig, r.guidance_config("uni_controlnet", 1))  # a valid config
    sys.path.remove(str(REPO / "benchmarks" / "micro"))


def test_stages_skip_finished_outputs(runner):
    r, jobs = runner
    r.stage_guidance()
    assert jobs == ["train_attentionhand_seed0"]  # sd is not trained
    (r.run_dir("attentionhand", 0) / "controlnet").mkdir(parents=True)
    (r.run_dir("attentionhand", 0) / "controlnet" / "config.json").write_text("{}")
    jobs.clear()
    r.stage_guidance()
    assert jobs == []
    r.stage_world()
    assert sorted(jobs) == ["world_lab_gen", "world_lab_train", "world_wild_test", "world_wild_train"]
    for split in r.cfg["world"]:  # the renders finished: the next pass marks them done
        r.data(split).mkdir(parents=True)
        (r.data(split) / "metadata.jsonl").write_text("")
    r.stage_world()
    jobs.clear()
    r.stage_world()
    assert jobs == []
    cfg = __import__("yaml").safe_load(r.guidance_config("attentionhand", 0).read_text())
    assert cfg["tas"]["resolution"] == 8 and cfg["train"]["seed"] == 0


def test_verdicts_need_three_seeds_and_two_standard_errors(runner):
    from report import verdict

    better = {"FID": [10.0, 11.0, 10.5], "Hand Conf.": [0.9, 0.91, 0.92]}
    worse = {"FID": [20.0, 21.0, 20.5], "Hand Conf.": [0.5, 0.95, 0.2]}
    overall, rows = verdict(better, worse, ["FID", "Hand Conf."], 3)
    assert rows[0]["verdict"] == "reproduced" and rows[0]["mean_advantage"] == pytest.approx(10.0)
    assert rows[1]["verdict"].startswith("inconclusive")
    assert overall.startswith("partly reproduced")
    overall, rows = verdict(worse, better, ["FID"], 3)
    assert overall == "not reproduced" and rows[0]["verdict"] == "contradicted"
    _, rows = verdict({"FID": [1.0]}, {"FID": [2.0]}, ["FID"], 1)
    assert rows[0]["verdict"].startswith("inconclusive at this budget")


def test_report_is_written_from_finished_stages(runner):
    r, _ = runner
    out = r.work / "eval" / "seed0"
    out.mkdir(parents=True)
    rows = {"sd": {"FID": 5.0}, "attentionhand": {"FID": 3.0}, "Real (reference)": {"MSE-3D": 1.0}}
    (out / "metrics.json").write_text(json.dumps({"rows": rows}))
    md = r.stage_report()
    text = md.read_text()
    assert "`tiny` profile" in text and "NOT evidence" in text
    assert "| AttentionHand | ✓ | ✓ | shared | 3.00 |" in text
    data = json.loads(md.with_suffix(".json").read_text())
    assert data["table1"]["sd"]["FID"] == [5.0]
