"""Micro base, default-model locator, wild prompts, and the benchmark pipeline's skipping and verdicts."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

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


def test_an_interrupted_unet_pretraining_resumes_to_the_uninterrupted_weights(tmp_path, monkeypatch):
    """The base's UNet checkpoints its whole state (EMA, text encoder, RNG included): killed after a
    checkpoint and started again, it ends bit-identical to a run that was never interrupted."""
    import handsynth.micro.base as base_mod

    g = torch.Generator().manual_seed(0)
    mean = torch.randn(4, 4, 16, 16, generator=g)
    std = torch.full_like(mean, 0.1)
    cfg = MicroBaseConfig(
        **{
            **SMALL.__dict__,
            "unet_steps": 6,
            "unet_batch_size": 2,
            "ema_decay": 0.9,
            "train_text_encoder": True,
        }
    )

    def train(checkpoint=None, cfg=cfg):
        parts = build_components(cfg)
        prompts = ["a hand", "an empty table", "a left hand", "a fist"]
        stats = _train_with_text_encoder(
            parts, (mean, std), cfg, prompts, checkpoint=checkpoint, checkpoint_every=2
        )
        return parts, stats

    whole, whole_stats = train()
    ckpt = tmp_path / "unet_checkpoint.pt"
    real_log = base_mod._log

    def crash_at_step_4(path, row, step, every):
        if step == 3:  # during the 4th step, before its checkpoint: the last one holds 2 steps
            raise KeyboardInterrupt
        real_log(path, row, step, every)

    monkeypatch.setattr(base_mod, "_log", crash_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        train(ckpt)
    assert torch.load(ckpt, weights_only=False)["step"] == 2
    monkeypatch.setattr(base_mod, "_log", real_log)
    resumed, resumed_stats = train(ckpt)
    for k in ("unet", "text_encoder"):
        for a, b in zip(whole[k].state_dict().values(), resumed[k].state_dict().values()):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert resumed_stats["loss"] == whole_stats["loss"]
    # a checkpoint of another recipe is not resumed from
    other = MicroBaseConfig(**{**cfg.__dict__, "unet_lr": 1e-3})
    fresh, _ = train(None, other)
    again, _ = train(ckpt, other)
    for a, b in zip(fresh["unet"].state_dict().values(), again["unet"].state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


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


def test_install_default_keeps_a_recon_runs_latest_weights_and_every_artifacts_records(tmp_path):
    """The embedded model doubles as the micro benchmark's pretrained source: recipes and markers travel."""
    base = _micro_base(tmp_path / "base")
    (base / "handsynth_micro.json").write_text('{"vae": {"seconds": 1}}')
    (base / "handsynth_recipe.json").write_text('{"recipe": {"base": 1}}')
    run = _fake_run(tmp_path / "run", base)
    recon = tmp_path / "recon"
    for step, weights in ((10, b"old"), (20, b"new")):
        ck = recon / "checkpoints" / f"step_{step:08d}"
        ck.mkdir(parents=True)
        (ck / "model.safetensors").write_bytes(weights)
        (ck / "config.json").write_text("{}")
        (ck / "optimizer.pt").write_bytes(b"not embedded")
    for name in (".done", "handsynth_recipe.json", "training_seconds.json"):
        (recon / name).write_text("{}")
    model = install_default(base, run, {"seed": 0}, {"recon": recon}, root=tmp_path / "assets")
    embedded = model.tool("recon")
    assert (embedded / "model.safetensors").read_bytes() == b"new"
    assert sorted(p.name for p in embedded.iterdir()) == sorted(
        [".done", "config.json", "handsynth_recipe.json", "model.safetensors", "training_seconds.json"]
    )
    assert (model.base / "handsynth_micro.json").exists() and (model.base / "handsynth_recipe.json").exists()


def test_installing_the_default_model_records_where_each_part_came_from(runner, monkeypatch):
    import handsynth.micro.assets as assets

    r, _ = runner
    r.base.mkdir(parents=True)
    (r.base / "handsynth_micro.json").write_text("{}")
    run = r.run_dir(r.cfg["default_model"], r.cfg["seeds"][0])
    run.mkdir(parents=True)
    (run / "handsynth_config.yaml").write_text("method: attentionhand\n")
    r.tool("detector").mkdir(parents=True)
    (r.tool("detector") / "model.safetensors").write_bytes(b"w")
    r.timings = {"pretrained": {"base": "/elsewhere/base"}}
    seen = {}
    installed = SimpleNamespace(root=r.work / "assets")
    monkeypatch.setattr(
        assets, "install_default", lambda base, run, info, tools: seen.update(info, tools=tools) or installed
    )
    r.install_default()
    assert seen["tools"] == {"detector": r.tool("detector")}
    assert seen["provenance"]["base"] == "taken pretrained from /elsewhere (same recipe)"
    assert seen["provenance"]["detector"].startswith("trained by the tiny run in ")
    assert seen["provenance"][r.cfg["default_model"]].startswith("seed 0 of the tiny run in ")


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


def test_the_committed_default_model_is_the_full_profiles_pretrained_base_and_tools(micro_run):
    """`pretrained: embedded` takes each artifact only when its recipe equals the run's; a full-profile
    budget changed without rebuilding the embedded model would silently retrain it (~50 min): fail here."""
    cfg = micro_run.load_profile("full")
    assert cfg["pretrained"] == "embedded"
    source = micro_run.Runner(cfg, micro_run.Runner(cfg, REPO, create=False).pretrained_source, create=False)
    for name, folder in source.artifacts().items():
        assert source.artifact_finished(name), name
        recorded = json.loads((folder / micro_run.RECIPE_FILE).read_text())["recipe"]
        # the recipe without its data fingerprints (no world is rendered here): the budgets must match
        budget = {k: v for k, v in recorded.items() if k != "data"}
        expected = _recipe_budget(micro_run, cfg, name)
        assert budget == json.loads(json.dumps(expected)), name
        assert all(len(v) == 64 for v in recorded["data"].values()) and (recorded["data"] or name == "reader")


def _recipe_budget(micro_run, cfg: dict, name: str) -> dict:
    """``Runner.recipe(name)`` without its data part, computed from the profile alone."""
    from dataclasses import asdict

    from handsynth.micro.base import MicroBaseConfig

    tools = cfg["tools"]
    if name == "base":
        return {"size": cfg["size"], "base": asdict(MicroBaseConfig(resolution=cfg["size"], **cfg["base"]))}
    if name == "reader":
        return {"size": cfg["size"], "tool": tools["reader"], "arm_model": cfg["arm_model"]}
    if name == "recon":
        return {"size": cfg["size"], "tool": tools["recon"], "recon": cfg["recon"]}
    return {"size": cfg["size"], "tool": tools[name]}


def test_pretrained_takes_base_and_tools_by_recipe_and_the_report_says_so(tmp_path, micro_run):
    cfg = micro_run.load_profile("tiny")
    src = micro_run.Runner(cfg, tmp_path / "embedded")
    for split in ("wild_train", "lab_train", "empty_wild_train"):
        _world_split(src.data(split), [10, 20])
    _micro_base(src.base)
    (src.base / "handsynth_micro.json").write_text(
        json.dumps({"vae": {"seconds": 12}, "unet": {"seconds": 34}})
    )
    for name in ("features", "detector", "reader"):
        src.tool(name).mkdir(parents=True)
        (src.tool(name) / "model.safetensors").write_bytes(b"weights of " + name.encode())
        (src.tool(name) / "config.json").write_text(json.dumps({"training": {"seconds": 5}}))
    src.tool("recon").mkdir(parents=True)
    (src.tool("recon") / ".done").touch()
    (src.tool("recon") / "training_seconds.json").write_text('{"seconds": 7}')
    src.stamp_recipes()

    cfg = {**cfg, "pretrained": str(src.work)}
    r = micro_run.Runner(cfg, tmp_path / "work")
    for split in ("wild_train", "lab_train", "empty_wild_train"):
        _world_split(r.data(split), [10, 20])
    ran: list[str] = []
    r.parallel = lambda js: ran.extend(name for name, _ in js)
    r.stage_base_and_tools()
    assert ran == [] and all(r.artifact_finished(name) for name in r.artifacts())
    assert set(json.loads(r.timings_path.read_text())["pretrained"]) == set(r.artifacts())
    sys.path.insert(0, str(micro_run.HERE))
    from report import _pretrained_cost

    assert _pretrained_cost(r).startswith(
        "Training them once took base 12 s (VAE) + 34 s (UNet), features 5 s"
    )
    assert "recon 7 s" in _pretrained_cost(r)

    # Provenance: what the source's record says, carried through a second run that reused this one's.
    assert r.provenance("base") == f"taken pretrained from {src.work} (same recipe)"
    (src.work / "info.json").write_text(json.dumps({"provenance": {"base": "trained in 2026 by run5"}}))
    assert r.provenance("base") == "trained in 2026 by run5"
    chained = micro_run.Runner(cfg, tmp_path / "chained")
    chained.timings = {"reused": {"base": str(r.base), "detector": str(r.tool("detector"))}}
    assert chained.provenance("base") == "trained in 2026 by run5"
    assert chained.provenance("detector") == f"taken pretrained from {src.work} (same recipe)"
    assert chained.provenance("recon").startswith("trained by the tiny run in ")
    # The report's line: grouped by source folder (from `outputs/` on), guidance runs by method, and
    # where the reused base and tools themselves came from.
    from report import _reused_line

    r.timings_path.write_text(json.dumps(r.timings))
    chained.timings["reused"]["train_controlnet_seed0"] = str(r.run_dir("controlnet", 0))
    chained.timings["reused"]["train_controlnet_seed1"] = str(r.run_dir("controlnet", 1))
    line = _reused_line(chained, chained.timings["reused"])
    assert f"work folder of the same machine (`{r.work}`): base, detector; controlnet seeds 0, 1." in line
    assert line.endswith(f"were taken pretrained from {src.work} (same recipe); trained in 2026 by run5.")

    # Another budget: the pretrained base does not fit and is trained; `--no-pretrained` turns it off.
    other = micro_run.Runner({**cfg, "base": {**cfg["base"], "unet_steps": 3}}, tmp_path / "other")
    for split in ("wild_train", "lab_train", "empty_wild_train"):
        _world_split(other.data(split), [10, 20])
    ran.clear()
    other.parallel = lambda js: ran.extend(name for name, _ in js)
    other.stage_base_and_tools()
    assert ran == ["base_pretrain"]
    assert micro_run.Runner({**cfg, "pretrained": None}, tmp_path / "x").pretrained_source is None
    assert (
        micro_run.Runner({**cfg, "pretrained": "embedded"}, tmp_path / "x").pretrained_source.name
        == "default"
    )


def test_downstream_runs_the_sets_the_table2_claims_compare(micro_run):
    full = micro_run.Runner(micro_run.load_profile("full"), REPO / "no-such-run", create=False)
    assert full.downstream_sets() == ["real_lab", "attentionhand", "shuffled", "oracle"]
    sesa = micro_run.Runner(
        micro_run.load_profile("full", suite="sesahand"), REPO / "no-such-run", create=False
    )
    assert sesa.downstream_sets() == ["real_lab", "controlnet", "attentionhand", "sesahand", "oracle"]
    cfg = micro_run.load_profile("full")
    cfg["downstream"]["sets"] = "all"
    every = micro_run.Runner(cfg, REPO / "no-such-run", create=False).downstream_sets()
    assert (
        every[0] == "real_lab"
        and {"sd", "ah_separate"} <= set(every)
        and every[-2:] == ["shuffled", "oracle"]
    )


def test_table2_draws_its_own_poses_only_for_the_sets_its_claims_compare(runner):
    """Issue 11 §4 (>= 1,000 images per Table 2 set) without 1,000 images for every Table 1 row: the
    Table 2 sets draw a pose split of their own, the oracle is those poses' real wild photos."""
    from handsynth.data import write_metadata

    r, jobs = runner
    full = type(r)(_full_cfg(), r.work, create=False)
    assert full.table2_images() == 1000 and full.cfg["world"]["lab_gen"]["n"] == 128
    assert full.table2_generated() == ["attentionhand"]  # its images + their shuffled copy; not ah_separate
    assert full.cfg["world"]["wild_t2"]["poses"] == "lab_t2"

    assert r.table2_own_poses and r.table2_images() == 3
    lab = [_sample(i, "left" if i % 2 else "right") for i in range(4)]
    wild = [_sample(i, "right", bg="in front of a wall", domain="wild") for i in range(5)]
    for rec in lab + wild:  # in front of the camera, as a written record must be
        rec.hands[0].joints_3d = [[x, y, z + 0.5] for x, y, z in rec.hands[0].joints_3d]
    for split, recs in (("lab_gen", lab), ("lab_t2", lab[:3]), ("wild_train", wild)):
        r.data(split).mkdir(parents=True)
        write_metadata(r.data(split) / "metadata.jsonl", recs)
    r.stage_prompts()
    t2_prompts = r.prompt_file_of("lab_t2").read_text().splitlines()
    assert len(t2_prompts) == 3 and len(r.prompt_file.read_text().splitlines()) == 4
    assert (r.data("lab_t2") / "gen_poses.jsonl").exists()

    r.stage_generate()  # tiny: downstream.sets all -> every generated row draws Table 2's poses too
    methods = r.generated_sets()
    assert sorted(jobs) == sorted(
        [f"generate_{m}_seed0" for m in methods] + [f"generate_t2_{m}_seed0" for m in methods]
    )
    cmd = [str(c) for c in r.generate_cmd("attentionhand", 0, split="lab_t2")]
    assert cmd[cmd.index("--in") + 1] == str(r.data("lab_t2") / "gen_poses.jsonl")
    assert cmd[cmd.index("--out") + 1] == str(r.t2_gen_dir("attentionhand", 0))
    assert cmd[cmd.index("--prompt-file") + 1] == str(r.prompt_file_of("lab_t2"))
    local = [str(c) for c in r.generate_cmd("ah_local", 0, split="lab_t2")]
    assert local[local.index("--in") + 1] == str(r.data("lab_t2") / "gen_poses_local.jsonl")
    assert r.downstream_data("oracle", 0) == str(r.data("wild_t2"))
    assert r.downstream_data("attentionhand", 0) == str(r.t2_gen_dir("attentionhand", 0))
    assert (
        r.down_dir("oracle", 0).parts[-3] == "downstream_t2"
        and r.down_dir("real_lab", 0).parts[-3] == "downstream"
    )

    # the shuffled control copies Table 2's AttentionHand set (labels moved), not lab_gen's
    from PIL import Image

    src = r.t2_gen_dir("attentionhand", 0)
    src.mkdir(parents=True)
    for i, rec in enumerate(lab[:3]):
        rec.file_name = f"{i}.png"
        Image.new("RGB", (64, 64), (i, i, i)).save(src / rec.file_name)
    write_metadata(src / "metadata.jsonl", lab[:3])
    r.stage_controls()
    assert len((r.t2_gen_dir("shuffled", 0) / "metadata.jsonl").read_text().splitlines()) == 3

    # a suite row that generates from suite-only prompts cannot draw Table 2's poses
    r.cfg["methods"]["attentionhand"]["generate"]["prompts"] = "cot"
    with pytest.raises(SystemExit, match="table2: null"):
        r.generate_cmd("attentionhand", 0, split="lab_t2")


def _full_cfg() -> dict:
    import run as micro_run  # the runner fixture put benchmarks/micro on sys.path

    return micro_run.load_profile("full")


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


def test_parallel_jobs_record_every_timing_without_racing_on_the_file(tmp_path):
    """Job threads share timings.json; a CI run once lost it to two threads renaming one temp file."""
    sys.path.insert(0, str(REPO / "benchmarks" / "micro"))
    import run as micro_run

    cfg = micro_run.load_profile("tiny")
    cfg["jobs"] = 8
    r = micro_run.Runner(cfg, tmp_path / "work")
    names = [f"job{i}" for i in range(48)]
    r.parallel([(n, [sys.executable, "-c", "pass"]) for n in names])
    recorded = json.loads(r.timings_path.read_text())["jobs"]
    assert sorted(recorded) == sorted(names)
    assert not list(r.timings_path.parent.glob("*.tmp"))
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
        *(f"ah_tas{k}_{t}" for k in (1, 5, 50) for t in ("eps", "res") if (k, t) != (1, "eps")),
    }
    assert full["methods"]["ah_tas5_res"]["requires"] == "tas_precondition"
    assert full["methods"]["ah_local"]["generate"]["input"] == "local"
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
    from handsynth.config import load_config
    from handsynth.methods.uni_controlnet.config import UniControlNetConfig

    load_config(UniControlNetConfig, r.guidance_config("uni_controlnet", 1))  # a valid config
    # one conditioning scale for every guided method; text-only SD gets none
    scale = str(full["generate"]["conditioning_scale"])
    for m in ("controlnet", "uni_controlnet", "ah_local", "attentionhand", "ah_infer_tas"):
        cmd = [str(c) for c in r.generate_cmd(m, 1)]
        assert cmd[cmd.index("--conditioning-scale") + 1] == scale, m
    assert "--conditioning-scale" not in [str(c) for c in r.generate_cmd("sd", 1)]
    # a world split's fixed background set and object rate reach `handsynth world render`
    cmd = [
        str(c)
        for c in r.world_cmd("x", {"domain": "wild", "n": 4, "seed": 0, "backgrounds": 4, "object_prob": 0.3})
    ]
    assert cmd[cmd.index("--backgrounds") + 1] == "4" and cmd[cmd.index("--object-prob") + 1] == "0.3"
    cmd = [str(c) for c in r.world_cmd("x", {"domain": "wild", "n": 4, "seed": 0})]
    assert "--backgrounds" not in cmd and "--object-prob" not in cmd
    assert cmd[cmd.index("--arm-model") + 1] == "free"  # the profile's arms, every split
    # the reader reads no split, so its recipe names the arms its poses turn with: a free-arm run's
    # reader is not reused by an anatomical one
    assert r.recipe("reader")["arm_model"] == "free"
    sys.path.remove(str(REPO / "benchmarks" / "micro"))


def test_stages_skip_finished_outputs(runner):
    r, jobs = runner
    r.stage_guidance()
    assert jobs == ["train_attentionhand_seed0", "train_ah_local_seed0"]  # sd is not trained
    for m in ("attentionhand", "ah_local"):
        (r.run_dir(m, 0) / "controlnet").mkdir(parents=True)
        (r.run_dir(m, 0) / "controlnet" / "config.json").write_text("{}")
    jobs.clear()
    r.stage_guidance()
    assert jobs == []
    r.stage_world()
    first = ["world_lab_gen", "world_lab_train", "world_lab_t2", "world_wild_test", "world_wild_train"]
    empty = ["empty_wild_calib", "empty_wild_test", "empty_wild_train"]
    second = ["world_wild_gen", "world_wild_gen_ref", "world_wild_t2"]
    assert sorted(jobs) == sorted([*first, *empty, *second])
    assert jobs.index("world_wild_gen") > jobs.index("world_lab_gen")  # re-renders lab_gen's poses
    assert jobs.index("world_wild_t2") > jobs.index("world_lab_t2")
    for split in [*r.cfg["world"], *(f"empty_{k}" for k in r.cfg["empty"])]:  # finished: marked done
        r.data(split).mkdir(parents=True)
        (r.data(split) / "metadata.jsonl").write_text("")
    r.stage_world()
    jobs.clear()
    r.stage_world()
    assert jobs == []
    cfg = __import__("yaml").safe_load(r.guidance_config("attentionhand", 0).read_text())
    assert cfg["tas"]["resolution"] == 8 and cfg["train"]["seed"] == 0
    assert cfg["data"]["empty_prompt_prob"] == 0.5  # v2: ControlNet-style caption dropout


def test_tas_sweep_is_not_trained_when_the_precondition_fails(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks" / "micro"))
    import run as micro_run

    r = micro_run.Runner(micro_run.load_profile("full"), tmp_path / "work")
    jobs: list[str] = []
    r.parallel = lambda js: jobs.extend(name for name, _ in js)
    (r.work / "eval").mkdir(parents=True)
    (r.work / "eval" / "tas_probe.json").write_text(json.dumps({"attention_in_hand_ratio": 1.1}))
    assert "precondition failed" in r.skipped("ah_tas5_eps") and r.skipped("attentionhand") is None
    r.stage_guidance()
    assert jobs and not any("ah_tas" in j for j in jobs)
    (r.work / "eval" / "tas_probe.json").write_text(json.dumps({"attention_in_hand_ratio": 2.5}))
    jobs.clear()
    r.stage_guidance()
    assert "train_ah_tas50_res_seed0" in jobs
    sys.path.remove(str(REPO / "benchmarks" / "micro"))


def test_gpu_profile_with_a_tiny_override_keeps_the_gpu_structure():
    sys.path.insert(0, str(REPO / "benchmarks" / "micro"))
    import run as micro_run

    gpu = micro_run.load_profile("gpu")
    test = micro_run.load_profile("gpu", override="tiny")
    assert gpu["size"] == test["size"] == 128 and test["profile"] == "gpu+tiny"
    assert test["base"]["unet_channels"] == gpu["base"]["unet_channels"] and test["base"]["unet_steps"] == 2
    assert test["world"]["lab_gen"]["n"] == 4 and gpu["world"]["lab_gen"]["n"] >= 1000
    r = micro_run.Runner(test, Path("/nonexistent"))
    assert r.self_job("base")[3:6] == ["gpu", "--override", "tiny"]
    sys.path.remove(str(REPO / "benchmarks" / "micro"))


def test_local_only_generates_from_the_crop_with_labels_in_crop_pixels():
    from handsynth.data.records import LocalCrop
    from handsynth.micro.data import local_as_global

    s = _sample(0, "right")
    s.conditions = {"mesh": "mesh/a.png"}
    s.local = LocalCrop(box=[16.0, 8.0, 32.0], size=64, conditions={"mesh": "local/mesh/a.png"})
    (t,) = local_as_global([s])
    j2 = np.asarray(s.hands[0].joints_2d)
    assert t.conditions == {"mesh": "local/mesh/a.png"} and t.local is None and t.width == 64
    assert np.allclose(t.hands[0].joints_2d, (j2 - [16, 8]) * 2)
    # The crop's camera projects the 3D joints onto the crop's 2D labels.
    from handsynth.pinhole import project

    s_proj = project(np.asarray(s.hands[0].joints_3d), np.asarray(s.K))
    t_proj = project(np.asarray(t.hands[0].joints_3d), np.asarray(t.K))
    assert np.allclose(t_proj, (s_proj - [16, 8]) * 2)


def test_controls_blank_keeps_labels_and_shuffle_moves_every_label(tmp_path):
    from PIL import Image

    from handsynth.data import read_dataset, write_metadata
    from handsynth.micro.controls import write_blank, write_shuffled

    samples = [_sample(i, "right") for i in range(5)]
    (tmp_path / "gen" / "images").mkdir(parents=True)
    for s in samples:
        s.hands[0].joints_3d = [[x, y, z + 0.5] for x, y, z in s.hands[0].joints_3d]  # in front of the camera
        s.file_name = f"images/{s.id}.png"
        Image.fromarray(np.full((64, 64, 3), 10 * int(s.id.split("_")[1]), np.uint8)).save(
            tmp_path / "gen" / s.file_name
        )
    write_metadata(tmp_path / "gen" / "metadata.jsonl", samples)
    blank = read_dataset(write_blank(tmp_path / "gen" / "metadata.jsonl", tmp_path / "blank", 32))
    assert [b.hands[0].joints_2d for b in blank] == [s.hands[0].joints_2d for s in samples]
    assert np.asarray(Image.open(tmp_path / "blank" / blank[0].file_name)).std() == 0
    shuffled = read_dataset(write_shuffled(tmp_path / "gen", tmp_path / "shuf", seed=1))
    by_id = {s.id: s for s in samples}
    assert sorted(x.id for x in shuffled) == sorted(by_id)
    for x in shuffled:  # same image, another record's hand
        assert x.hands[0].joints_2d != by_id[x.id].hands[0].joints_2d
    assert sorted(str(x.hands[0].joints_2d) for x in shuffled) == sorted(
        str(s.hands[0].joints_2d) for s in samples
    )


def test_report_is_written_from_finished_stages(runner):
    r, _ = runner
    out = r.work / "eval" / "seed0"
    out.mkdir(parents=True)
    rows = {"sd": {"FID": 5.0}, "attentionhand": {"FID": 3.0}, "Real (reference)": {"MSE-3D": 1.0}}
    (out / "metrics.json").write_text(json.dumps({"rows": rows}))
    md = r.stage_report()
    text = md.read_text()
    assert "`tiny` profile" in text and "NOT evidence" in text
    assert "| AttentionHand | 3.00 |" in text
    assert "yardsticks stage has not run" in text  # no gates measured: nothing is judged
    data = json.loads(md.with_suffix(".json").read_text())
    assert data["table1"]["sd"]["FID"] == [5.0]
    assert {c["label"] for c in data["claims"]} == {"not measurable"}


def test_report_labels_follow_gates_trivial_rows_and_seeds(tmp_path):
    """A hand-made 3-seed run: the claim whose gates pass is labelled from its paired tests; a failed
    gate (c) or a method worse than the trivial row makes a claim not measurable."""
    sys.path.insert(0, str(REPO / "benchmarks" / "micro"))
    import run as micro_run

    cfg = micro_run.load_profile("tiny")
    cfg["seeds"] = [0, 1, 2]
    cfg["methods"] = {
        m: cfg["methods"].get(m, {"train": {}, "generate": {"method": "attentionhand"}})
        for m in ("sd", "attentionhand", "controlnet", "ah_notas")
    }
    r = micro_run.Runner(cfg, tmp_path / "work")
    r.results = tmp_path / "results"
    for seed in range(3):
        rows = {
            "attentionhand": {"FID": 10.0 + seed * 0.1, "MSE-2D": 50.0 + seed, "PCK@0.1": 0.6},
            "controlnet": {"FID": 20.0 + seed * 0.1, "MSE-2D": 80.0 + 2 * seed, "PCK@0.1": 0.55},
            "ah_notas": {"FID": 10.5, "MSE-2D": 300.0, "PCK@0.1": 0.1},  # fails gate (c)
            "sd": {"FID": 5.0, "MSE-2D": 400.0},
            "Trivial: blank images": {"FID": 100.0, "MSE-2D": 250.0},
            "Oracle: real wild, same poses": {"FID": 1.0, "MSE-2D": 10.0, "PCK@0.1": 0.9},
        }
        out = r.work / "eval" / f"seed{seed}"
        out.mkdir(parents=True)
        (out / "metrics.json").write_text(json.dumps({"rows": rows}))
    gates = [
        {"name": n, "value": 1.0, "threshold": 0.5, "passed": True}
        for n in ("Y1 d", "Y2 d", "Y3 d", "(a) v", "(b1) h")
    ]
    (r.work / "eval" / "yardsticks.json").write_text(
        json.dumps({"gates": gates, "trivial_t1": {"MSE-2D": 200.0}})
    )
    (r.work / "eval" / "tas_probe.json").write_text(json.dumps({"attention_in_hand_ratio": 3.0}))
    data = json.loads(r.stage_report().with_suffix(".json").read_text())
    claims = {c["id"]: c for c in data["claims"]}
    cn = claims["T1-cn"]
    assert cn["label"] == "reproduced", cn
    by_metric = {m["metric"]: m for m in cn["metrics"]}
    assert by_metric["FID"]["measurable"] and by_metric["MSE-2D"]["mean"] == pytest.approx(31.0)
    assert not by_metric["KID"]["measurable"]  # no trivial row for KID in this table
    assert claims["T1-tas"]["label"] == "not measurable" and "(c)" in claims["T1-tas"]["reason"]
    sd = {m["metric"]: m for m in claims["T1-sd"]["metrics"]}
    assert not sd["MSE-2D"]["measurable"] and "does not beat the trivial row" in sd["MSE-2D"]["reason"]
    assert data["tests"] >= 2
    sys.path.remove(str(REPO / "benchmarks" / "micro"))


def test_text_encoder_trains_with_the_unet_when_asked():
    parts = build_components(SMALL)
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(4, 4, 16, 16, generator=g)
    before = [p.detach().clone() for p in parts["text_encoder"].parameters()]
    cfg = MicroBaseConfig(
        **{**SMALL.__dict__, "unet_steps": 3, "unet_batch_size": 4, "train_text_encoder": True}
    )
    prompts = ["a left hand", "a right fist", "an empty table", "a left hand"]
    _train_with_text_encoder(parts, (mean, torch.full_like(mean, 1e-3)), cfg, prompts)
    after = list(parts["text_encoder"].parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
    assert not any(p.requires_grad for p in after)  # frozen again for everything that follows


def _train_with_text_encoder(
    parts: dict, latents: tuple, cfg: MicroBaseConfig, prompts: list[str], **kw
) -> dict:
    """``train_unet`` with the text encoder training alongside, on one caption per latent."""
    from handsynth.text.tokenizer import encode_prompts

    return train_unet(
        parts["unet"],
        dict(parts["scheduler"].config),
        latents,
        None,
        None,
        cfg,
        text_encoder=parts["text_encoder"],
        ids=encode_prompts(prompts, parts["tokenizer"]),
        uncond_ids=encode_prompts([""], parts["tokenizer"])[0],
        **kw,
    )


def _tiny_unet_run(cfg: MicroBaseConfig, snapshots: list | None = None) -> tuple[dict, list[torch.Tensor]]:
    parts = build_components(SMALL)
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(4, 4, 16, 16, generator=g)
    text = torch.randn(4, 77, 16, generator=g)
    hook = None
    if snapshots is not None:
        snapshots.append([p.detach().clone() for p in parts["unet"].parameters()])

        def snap(*_):
            snapshots.append([p.detach().clone() for p in parts["unet"].parameters()])

        hook = register_optimizer_step_post_hook(snap)
    try:
        stats = train_unet(
            parts["unet"], dict(parts["scheduler"].config), (mean, mean * 0 + 1e-3), text, text[0], cfg
        )
    finally:
        if hook is not None:
            hook.remove()
    return stats, [p.detach().clone() for p in parts["unet"].parameters()]


def test_ema_weights_are_the_running_average_of_every_step():
    cfg = MicroBaseConfig(**{**SMALL.__dict__, "unet_steps": 4, "unet_batch_size": 2, "ema_decay": 0.5})
    steps: list = []
    _, saved = _tiny_unet_run(cfg, steps)
    ema = steps[0]  # starts at the initial weights; decay warms up as min(d, (1 + s) / (10 + s))
    for s, weights in enumerate(steps[1:]):
        d = min(0.5, (1 + s) / (10 + s))
        ema = [d * e + (1 - d) * w for e, w in zip(ema, weights)]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(saved, ema))
    assert not all(torch.equal(a, b) for a, b in zip(saved, steps[-1]))  # not the last step's weights


def test_min_snr_weighting_is_inert_above_every_snr_and_changes_the_loss_below():
    plain = MicroBaseConfig(**{**SMALL.__dict__, "unet_steps": 2, "unet_batch_size": 4})
    loss = _tiny_unet_run(plain)[0]["loss"]
    huge = _tiny_unet_run(MicroBaseConfig(**{**plain.__dict__, "min_snr_gamma": 1e9}))[0]["loss"]
    small = _tiny_unet_run(MicroBaseConfig(**{**plain.__dict__, "min_snr_gamma": 0.01}))[0]["loss"]
    assert huge == pytest.approx(loss, rel=1e-5)
    assert small < 0.5 * loss  # every t with SNR > 0.01 is down-weighted


def test_empty_photos_can_show_only_the_worlds_fixed_backgrounds(tmp_path):
    from handsynth.data import read_dataset
    from handsynth.micro.empty import render_empty
    from handsynth.world import backgrounds

    render_empty("wild", 6, 32, 0, tmp_path / "e", backgrounds_k=2)
    names = {s.source["attributes"]["background"]["name"] for s in read_dataset(tmp_path / "e")}
    fixed = {backgrounds.fixed_background("wild", i, 32).name for i in range(2)}
    assert names <= fixed


def _world_split(folder: Path, pixels: list[int], caption: str | None = None, maps: bool = False) -> None:
    """A 2-record split: photos of the given grey levels, one prompt, optional suite-only fields."""
    from PIL import Image

    folder.mkdir(parents=True)
    lines = []
    for i, v in enumerate(pixels):
        Image.new("RGB", (8, 8), (v, v, v)).save(folder / f"{i}.png")
        rec = {"id": str(i), "file_name": f"{i}.png", "prompt": "a left hand", "width": 8, "height": 8}
        if caption:
            rec["caption"] = caption
        if maps:
            rec["conditions"] = {"seg": f"seg/{i}.png"}
            rec["seg_file_name"] = f"seg/{i}.png"
        lines.append(json.dumps(rec))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")


def test_reuse_copies_a_base_and_tools_only_when_budget_and_data_are_equal(tmp_path, capsys):
    sys.path.insert(0, str(REPO / "benchmarks" / "micro"))
    import run as micro_run

    cfg = micro_run.load_profile("tiny")
    src = micro_run.Runner(cfg, tmp_path / "src")
    for split in ("wild_train", "lab_train", "empty_wild_train"):
        _world_split(src.data(split), [10, 20])
    _micro_base(src.base)
    for name in ("features", "detector", "reader"):
        src.tool(name).mkdir(parents=True)
        (src.tool(name) / "model.safetensors").write_bytes(b"weights of " + name.encode())
    src.tool("recon").mkdir(parents=True)
    (src.tool("recon") / ".done").touch()
    src.stamp_recipes()
    assert all((folder / micro_run.RECIPE_FILE).exists() for folder in src.artifacts().values())
    assert "uncond_prob" not in cfg["base"] and "uncond_prob" in src.recipe("base")["base"]  # resolved

    # A suite's world: the same photos and prompts, plus verbose captions and more condition maps.
    dst = micro_run.Runner(cfg, tmp_path / "dst")
    for split in ("wild_train", "lab_train", "empty_wild_train"):
        _world_split(dst.data(split), [10, 20], caption="a verbose caption", maps=True)
    dst.reuse_artifacts(src.work)
    assert all(dst.artifact_finished(name) for name in dst.artifacts())
    assert (dst.tool("detector") / "model.safetensors").read_bytes() == b"weights of detector"
    assert set(json.loads(dst.timings_path.read_text())["reused"]) == {
        "base",
        "features",
        "detector",
        "recon",
        "reader",
    }

    # One photo differs: nothing reading that split is reused (the reader reads none); a different
    # budget blocks the base.
    copy_cfg = json.loads(json.dumps(cfg))
    other = micro_run.Runner(copy_cfg, tmp_path / "other")
    _world_split(other.data("wild_train"), [10, 21])
    _world_split(other.data("lab_train"), [10, 20])
    _world_split(other.data("empty_wild_train"), [10, 20])
    capsys.readouterr()
    other.reuse_artifacts(src.work)
    assert [name for name in other.artifacts() if other.artifact_finished(name)] == ["reader"]
    assert "its recipe differs in data" in capsys.readouterr().out
    copy_cfg["base"]["unet_steps"] += 1
    _world_split(tmp_path / "x" / "data" / "wild_train", [10, 20])
    moved = micro_run.Runner(copy_cfg, tmp_path / "x")
    moved.reuse_artifacts(src.work)
    assert not moved.artifact_finished("base")
    assert "its recipe differs in base" in capsys.readouterr().out
    sys.path.remove(str(REPO / "benchmarks" / "micro"))


def test_report_sheet_puts_each_methods_image_in_its_poses_row(runner):
    """Rows are held-out poses, matched to generated images by record id (not by file order)."""
    from PIL import Image

    r, _ = runner
    colours = {"sd": (200, 0, 0), "attentionhand": (0, 0, 200)}

    def split(folder: Path, ids: list[str], value) -> None:
        from handsynth.data import write_metadata

        folder.mkdir(parents=True)
        samples = []
        for i, sid in enumerate(ids):
            colour = value(i) if callable(value) else value
            Image.new("RGB", (16, 16), colour).save(folder / f"{sid}.png")
            Image.new("RGB", (16, 16), (i * 50, 255, 0)).save(folder / f"{sid}_mesh.png")
            s = _sample(i, "right")
            s.id, s.file_name, s.conditions = sid, f"{sid}.png", {"mesh": f"{sid}_mesh.png"}
            s.hands[0].joints_3d = [[x, y, z + 0.5] for x, y, z in s.hands[0].joints_3d]  # before the camera
            samples.append(s)
        write_metadata(folder / "metadata.jsonl", samples)

    split(r.data("lab_gen"), ["p0", "p1"], (0, 0, 0))
    split(r.data("wild_gen_ref"), ["w0", "w1"], lambda i: (90 + i, 90, 90))
    split(r.gen_dir("sd", 0), ["p1", "p0"], lambda i: (200, 100 * (1 - i), 0))  # reversed order
    split(r.gen_dir("attentionhand", 0), ["p0"], colours["attentionhand"])  # p1 missing: a blank cell
    r.cfg["methods"] = {m: r.cfg["methods"][m] for m in ("sd", "attentionhand")}
    md = r.stage_report()
    sheet = Image.open(md.parent / "micro_tiny_sheet.png").convert("RGB")
    cell, top, row_h = 96, 28, 96 + 16  # titles on two lines
    at = lambda col, row: sheet.getpixel((col * cell + cell // 2, top + row * row_h + cell // 2))  # noqa: E731
    assert sheet.size == (4 * cell, top + 2 * row_h)
    assert at(0, 1) == (50, 255, 0) and at(1, 1) == (91, 90, 90)  # mesh and oracle photo of pose p1
    assert at(2, 0) == (200, 0, 0) and at(2, 1) == (200, 100, 0)  # sd's images found by id
    assert at(3, 0) == colours["attentionhand"] and at(3, 1) == (40, 40, 40)
    assert "![contact sheet](micro_tiny_sheet.png)" in md.read_text()

    # Table 2's own poses get their own sheet: its poses, their oracle photos, its generated sets.
    assert r.table2_own_poses and r.table2_generated() == ["sd", "attentionhand"]
    split(r.data("lab_t2"), ["t0"], (0, 0, 0))
    split(r.data("wild_t2"), ["u0"], (7, 7, 7))
    split(r.t2_gen_dir("attentionhand", 0), ["t0"], (0, 210, 0))  # sd drew none: a blank cell
    md = r.stage_report()
    t2 = Image.open(md.parent / "micro_tiny_table2_sheet.png").convert("RGB")
    assert t2.size == (4 * cell, top + row_h)
    assert t2.getpixel((cell + cell // 2, top + cell // 2)) == (7, 7, 7)
    assert t2.getpixel((2 * cell + cell // 2, top + cell // 2)) == (40, 40, 40)
    assert t2.getpixel((3 * cell + cell // 2, top + cell // 2)) == (0, 210, 0)
    assert "![Table 2's sets](micro_tiny_table2_sheet.png)" in md.read_text()


def _guidance_split(folder: Path, mesh_grey: int) -> None:
    """A 2-record training split with the files a guidance module reads: photo, mesh map, local crop."""
    from PIL import Image

    for sub in ("images", "mesh", "local"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(2):
        Image.new("RGB", (8, 8), (10 * i, 0, 0)).save(folder / "images" / f"{i}.png")
        Image.new("RGB", (8, 8), (mesh_grey,) * 3).save(folder / "mesh" / f"{i}.png")
        Image.new("RGB", (8, 8), (0, 10 * i, 0)).save(folder / "local" / f"{i}.png")
        rec = {
            "id": str(i),
            "file_name": f"images/{i}.png",
            "prompt": "a left hand",
            "width": 8,
            "height": 8,
            "conditions": {"mesh": f"mesh/{i}.png"},
            "local": {
                "box": [0, 0, 8],
                "size": 8,
                "file_name": f"local/{i}.png",
                "conditions": {"mesh": f"mesh/{i}.png"},
            },
        }
        lines.append(json.dumps(rec))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")


def test_reuse_copies_a_guidance_run_only_when_its_config_base_and_training_files_are_equal(tmp_path, capsys):
    sys.path.insert(0, str(REPO / "benchmarks" / "micro"))
    import run as micro_run

    cfg = micro_run.load_profile("tiny")
    cfg["seeds"] = [0]
    src = micro_run.Runner(cfg, tmp_path / "src")
    _guidance_split(src.data("wild_train"), 100)
    _micro_base(src.base)
    src.stamp_recipes()
    src.guidance_config("attentionhand", 0)
    src.weights_config("attentionhand", 0).parent.mkdir(parents=True)
    src.weights_config("attentionhand", 0).write_text("{}")  # the run src finished

    def runner(name: str, mesh_grey: int):
        r = micro_run.Runner(json.loads(json.dumps(cfg)), tmp_path / name)
        _guidance_split(r.data("wild_train"), mesh_grey)
        shutil.copytree(src.base, r.base)  # the same base (its recipe stamp too)
        return r

    same = runner("same", 100)
    same.reuse_guidance(src.work)
    assert same.weights_config("attentionhand", 0).exists()
    assert set(json.loads(same.timings_path.read_text())["reused"]) == {"train_attentionhand_seed0"}
    capsys.readouterr()
    other = runner("other", 101)  # only the mesh maps differ: the photos and prompts are equal
    other.reuse_guidance(src.work)
    assert not other.weights_config("attentionhand", 0).exists()
    assert "train_attentionhand_seed0: not reused (recipe differs in data)" in capsys.readouterr().out
    budget = runner("budget", 100)
    budget.cfg["guidance"]["steps"] += 1
    budget.reuse_guidance(src.work)
    assert not budget.weights_config("attentionhand", 0).exists()
    assert "recipe differs in config" in capsys.readouterr().out
    sys.path.remove(str(REPO / "benchmarks" / "micro"))


def test_split_fingerprint_ignores_float_noise_in_labels_but_not_a_real_change(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks" / "micro"))
    import run as micro_run

    prints = []
    for name, angle in (("a", 0.7523639157052437), ("b", 0.752363915705244), ("c", 0.7523649157052437)):
        _world_split(tmp_path / name, [10, 20])
        meta = tmp_path / name / "metadata.jsonl"
        lines = [json.loads(x) for x in meta.read_text().splitlines()]
        lines[0]["hands"] = [{"side": "left", "global_orient": [angle, 0.0, 1.0]}]
        meta.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
        prints.append(micro_run.split_fingerprint(tmp_path / name))
    assert prints[0] == prints[1] != prints[2]  # 16th digit: same; 6th digit: a different label
    # a .jsonl copy beside the photos (the SesaHand suite's cot.jsonl) reads like its folder
    (tmp_path / "a" / "cot.jsonl").write_text((tmp_path / "a" / "metadata.jsonl").read_text())
    assert micro_run.split_fingerprint(tmp_path / "a" / "cot.jsonl") == prints[0]
    sys.path.remove(str(REPO / "benchmarks" / "micro"))


def test_an_invocation_that_stops_on_an_error_still_counts_its_work(tmp_path, micro_run, monkeypatch):
    """The 2026-11-30 full run stopped once in its yardsticks stage; its first 83 minutes went uncounted."""

    def fails_after_a_job(self):
        self.jobs_done += 1
        raise RuntimeError("a stage failed")

    monkeypatch.setattr(micro_run.Runner, "run_all", fails_after_a_job)
    with pytest.raises(RuntimeError, match="a stage failed"):
        micro_run.main(["--profile", "tiny", "--work", str(tmp_path / "work")])
    timings = json.loads((tmp_path / "work" / "timings.json").read_text())
    assert timings["total_wall_s"] == timings["last_run_wall_s"] >= 0
