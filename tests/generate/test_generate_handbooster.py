"""`handsynth generate --method handbooster` on a tiny run folder: crop records (size, intrinsics,
joints, maps, provenance), images depend on the seed only and resume, one image per hand, the released
sampler by default, and refusals before any output."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from handsynth.config import CONFIG_NAME, save_config
from handsynth.data import read_dataset
from handsynth.errors import UserError
from handsynth.methods.handbooster.config import HandBoosterConfig
from handsynth.methods.handbooster.data import hand_box
from handsynth.methods.handbooster.model import HandBoosterModel
from handsynth.render.crop import crop_intrinsics

ROOT = Path(__file__).resolve().parents[2]
SIZE = 16


def _config(conditions: list[str]) -> HandBoosterConfig:
    cfg = HandBoosterConfig()
    cfg.data.conditions_from = (
        "stored"  # crops of the stored maps (rendered crops: test_methods_handbooster_conditions)
    )
    m = cfg.model
    m.sample_size, m.block_out_channels, m.layers_per_block, m.norm_num_groups = SIZE, [8, 16], 1, 4
    m.attention_head_dim, m.conditions = 4, list(conditions)
    return cfg


def _run_folder(folder: Path, conditions: list[str], saved_as: list[str] | None = None) -> Path:
    """What `handsynth train --method handbooster` leaves (random weights, a visible null vector)."""
    torch.manual_seed(0)
    model = HandBoosterModel(_config(conditions))
    with torch.no_grad():
        model.orientation.null.normal_()
    model.save(folder)
    save_config(_config(saved_as or conditions), folder / CONFIG_NAME)
    return folder


@pytest.fixture(scope="module")
def hb_run(tmp_path_factory):
    return _run_folder(tmp_path_factory.mktemp("hb") / "run", ["normal", "texture"])


@pytest.fixture(scope="module")
def hb_inputs(tmp_path_factory):
    from handsynth.methods.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(
        tmp_path_factory.mktemp("hbin") / "in", n=3, size=48, extra_maps=("normal", "texture", "seg")
    )


def _args(run, inp, out, *extra):
    return ["--method", "handbooster", "--checkpoint", str(run), "--in", str(inp), "--out", str(out), *extra]


def _images(out) -> np.ndarray:
    recs = read_dataset(out)
    return np.stack([np.asarray(Image.open(out / r.file_name).convert("RGB"), dtype=np.int16) for r in recs])


def test_output_records_are_the_crops(cli, hb_run, hb_inputs, tmp_path):
    out = tmp_path / "out"
    assert cli(_args(hb_run, hb_inputs, out, "--steps", "2", "--seed", "3")) == 0
    inputs, recs = read_dataset(hb_inputs), read_dataset(out)
    assert [r.id for r in recs] == [s.id for s in inputs]
    for s, r in zip(inputs, recs):
        assert (r.width, r.height) == (SIZE, SIZE)
        assert Image.open(out / r.file_name).size == (SIZE, SIZE)
        box = hand_box(s.hands[0], s.width, s.height, 1.5)
        np.testing.assert_allclose(r.K, crop_intrinsics(np.asarray(s.K), box, SIZE))
        uvw = np.asarray(r.hands[0].joints_3d) @ np.asarray(r.K).T
        np.testing.assert_allclose(r.hands[0].joints_2d, uvw[:, :2] / uvw[:, 2:], atol=1e-9)
        # the crop's joints are the input's joints moved into the crop
        local = (np.asarray(s.hands[0].joints_2d) - box[:2]) * SIZE / box[2]
        np.testing.assert_allclose(r.hands[0].joints_2d, local, atol=1e-3)
        x, y, w, h = s.hands[0].bbox  # the hand box moves by the same similarity
        k = SIZE / box[2]
        np.testing.assert_allclose(r.hands[0].bbox, [(x - box[0]) * k, (y - box[1]) * k, w * k, h * k])
        assert set(r.conditions) == {"normal", "texture", "seg"}  # seg: read for the object box
        assert Image.open(out / r.conditions["normal"]).size == (SIZE, SIZE)
        src = r.source
        assert src["method"] == "handbooster" and len(src["checkpoint_sha256"]) == 64
        assert src["sampler"] == {"scheduler": "ddim", "steps": 2, "eta": 1.0, "guidance": 3.0}
        assert isinstance(src["seed"], int) and r.prompt == ""


def test_images_depend_on_the_seed_only_and_resume(cli, hb_run, hb_inputs, tmp_path):
    runs = {"a": ("0", "1"), "b": ("0", "2"), "c": ("1", "1")}
    for name, (seed, batch) in runs.items():
        assert (
            cli(
                _args(
                    hb_run, hb_inputs, tmp_path / name, "--steps", "3", "--seed", seed, "--batch-size", batch
                )
            )
            == 0
        )
    a, b, c = (_images(tmp_path / k) for k in "abc")
    assert np.abs(a - b).max() <= 1  # another batching: float rounding only
    assert np.abs(a - c).mean() > 1  # another seed
    resumed = tmp_path / "r"
    assert cli(_args(hb_run, hb_inputs, resumed, "--steps", "3", "--limit", "1")) == 0
    assert len(read_dataset(resumed)) == 1
    assert cli(_args(hb_run, hb_inputs, resumed, "--steps", "3")) == 0
    assert np.array_equal(_images(resumed), a)


def test_object_mesh_paths_still_resolve_from_the_output(cli, hb_run, hb_inputs, tmp_path):
    rec = json.loads((hb_inputs / "metadata.jsonl").read_text().splitlines()[0])
    eye = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    rec["objects"] = [
        {"name": "cup", "mesh": "meshes/cup.obj", "R": eye, "t": [0.0, 0.0, 0.5]},
        {"name": "box", "mesh": "world:box", "R": eye, "t": [0.0, 0.1, 0.5]},
    ]
    inp = tmp_path / "in"
    for rel in [rec["file_name"], *rec["conditions"].values()]:
        (inp / rel).parent.mkdir(parents=True, exist_ok=True)
        (inp / rel).symlink_to(hb_inputs / rel)
    (inp / "meshes").mkdir()
    (inp / "meshes" / "cup.obj").write_text("v 0 0 0\nv 0.01 0 0\nv 0 0.01 0\nf 1 2 3\n")
    (inp / "metadata.jsonl").write_text(json.dumps(rec) + "\n")
    assert cli(_args(hb_run, inp, tmp_path / "out", "--steps", "1")) == 0
    objects = read_dataset(tmp_path / "out")[0].extra["objects"]
    assert objects[0]["mesh"] == str((inp / "meshes" / "cup.obj").resolve())
    assert objects[1]["mesh"] == "world:box" and objects[0]["t"] == [0.0, 0.0, 0.5]  # camera frame kept


def test_a_two_hand_record_is_one_image_per_hand(cli, hb_run, hb_inputs, tmp_path):
    rec = json.loads((hb_inputs / "metadata.jsonl").read_text().splitlines()[0])
    left = copy.deepcopy(rec["hands"][0])
    left["side"] = "left"
    left["bbox"] = [1.0, 1.0, 12.0, 12.0]
    rec["hands"].append(left)
    (tmp_path / "two").mkdir()
    for rel in [rec["file_name"], *rec["conditions"].values()]:
        (tmp_path / "two" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "two" / rel).symlink_to(hb_inputs / rel)
    (tmp_path / "two" / "metadata.jsonl").write_text(json.dumps(rec) + "\n")
    assert cli(_args(hb_run, tmp_path / "two", tmp_path / "out", "--steps", "1")) == 0
    recs = read_dataset(tmp_path / "out")
    assert [r.id for r in recs] == [f"{rec['id']}-right", f"{rec['id']}-left"]
    assert "left" in [h.side for h in recs[1].hands]
    assert not any("handbooster_hand" in r.extra for r in recs)


def test_the_released_sampler_is_the_default(hb_run):
    import argparse

    from handsynth.generate.cli import add_arguments
    from handsynth.methods.handbooster.generator import from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for extra, want in (
        ((), ("ddim", 250, 1.0, 3.0)),
        (("--scheduler", "ddpm"), ("ddpm", 1000, 1.0, 3.0)),
        (("--steps", "7", "--eta", "0", "--guidance", "1.5"), ("ddim", 7, 0.0, 1.5)),
    ):
        args = parser.parse_args(
            ["--method", "handbooster", "--checkpoint", str(hb_run), "--in", "i", "--out", "o", *extra]
        )
        s = from_args(args).sampling
        assert (s.scheduler, s.steps, s.eta, s.guidance) == want
        assert from_args(args).spacing == "trailing"


def test_timestep_spacing_flag_reaches_the_sampler_and_is_refused_elsewhere(hb_run):
    import argparse

    from handsynth.generate.cli import add_arguments
    from handsynth.methods.handbooster.generator import sampler_scheduler
    from handsynth.methods.registry import build_generator

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--checkpoint", str(hb_run), "--in", "i", "--out", "o", "--steps", "10"]
    gen = build_generator(
        parser.parse_args(["--method", "handbooster", *base, "--timestep-spacing", "linspace"])
    )
    assert gen.spacing == "linspace" and gen.fingerprint()["timestep_spacing"] == "linspace"
    # linspace runs from T-1 to 0; the released trailing ends at T/n - 1
    assert sampler_scheduler(gen.cfg, "ddim", 10, "linspace").timesteps[[0, -1]].tolist() == [999, 0]
    assert sampler_scheduler(gen.cfg, "ddim", 10).timesteps[[0, -1]].tolist() == [999, 99]
    with pytest.raises(UserError, match="--timestep-spacing belongs to --method handbooster, not sd"):
        build_generator(
            parser.parse_args(["--method", "sd", "--in", "i", "--out", "o", "--timestep-spacing", "leading"])
        )


def test_guidance_one_equals_a_conditional_only_reference_loop(hb_run):
    from diffusers import DDIMScheduler

    from handsynth.methods.handbooster.generator import denoise, sampler_scheduler

    cfg = _config(["normal", "texture"])
    model = HandBoosterModel.load(hb_run, cfg)
    g = torch.Generator().manual_seed(5)
    cond, q = torch.randn(1, 6, SIZE, SIZE, generator=g), torch.tensor([[0.6, 0.0, 0.8, 0.0]])
    got = denoise(
        model, sampler_scheduler(cfg, "ddim", 4), cond, q, [torch.Generator().manual_seed(1)], 1.0, 1.0
    )
    ref_sched = DDIMScheduler(**cfg.scheduler_config(), timestep_spacing="trailing")  # released: from 999
    ref_sched.set_timesteps(4)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, SIZE, SIZE, generator=gen)[None]
    with torch.no_grad():
        for t in ref_sched.timesteps:
            x0 = model(x, torch.tensor([int(t)]), cond, q)
            x = ref_sched.step(x0, t, x, eta=1.0, generator=gen, use_clipped_model_output=True).prev_sample
    torch.testing.assert_close(got, x.clamp(-1, 1))
    guided = denoise(
        model, sampler_scheduler(cfg, "ddim", 4), cond, q, [torch.Generator().manual_seed(1)], 3.0, 1.0
    )
    assert (guided - got).abs().mean() > 1e-3  # CFG 3 differs: the orientation matters


def test_experiment_sampler_variants_are_diffusers_defaults_and_enter_the_fingerprint(hb_run):
    """The probe's variants (leading spacing, unclipped direction) are diffusers' own DDIM defaults; a
    released-sampler generator keeps the fingerprint it had, another variant gets its own."""
    from diffusers import DDIMScheduler

    from handsynth.methods.handbooster.generator import HandBoosterGenerator, denoise, sampler_scheduler

    cfg = _config(["normal", "texture"])
    model = HandBoosterModel.load(hb_run, cfg)
    g = torch.Generator().manual_seed(3)
    cond, q = torch.randn(1, 6, SIZE, SIZE, generator=g), torch.tensor([[0.6, 0.0, 0.8, 0.0]])
    sched = sampler_scheduler(cfg, "ddim", 4, spacing="leading")
    assert sched.timesteps.tolist() == [750, 500, 250, 0]
    got = denoise(
        model, sched, cond, q, [torch.Generator().manual_seed(1)], 1.0, 1.0, clipped_direction=False
    )
    ref_sched = DDIMScheduler(**cfg.scheduler_config())  # diffusers' defaults: leading, unclipped eps
    ref_sched.set_timesteps(4)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, SIZE, SIZE, generator=gen)[None]
    with torch.no_grad():
        for t in ref_sched.timesteps:
            x = ref_sched.step(
                model(x, torch.tensor([int(t)]), cond, q), t, x, eta=1.0, generator=gen
            ).prev_sample
    torch.testing.assert_close(got, x.clamp(-1, 1))
    released = HandBoosterGenerator(hb_run, train_config=cfg).fingerprint()
    assert "timestep_spacing" not in released and "clipped_direction" not in released
    other = HandBoosterGenerator(hb_run, train_config=cfg, spacing="leading", clipped_direction=False)
    assert other.fingerprint() == {**released, "timestep_spacing": "leading", "clipped_direction": False}


def test_refusals_come_before_any_output(cli, hb_run, hb_inputs, tmp_path):
    out = tmp_path / "o"
    for extra, words in (
        (["--prompts", "records"], "--prompts .*not apply to --method handbooster"),
        (["--scheduler", "euler"], "ddim or ddpm"),
    ):
        with pytest.raises(UserError, match=words):
            cli(_args(hb_run, hb_inputs, out, *extra))
    mismatched = _run_folder(tmp_path / "mismatch", ["normal", "texture"], saved_as=["normal"])
    with pytest.raises(UserError, match=r"reads 9 input channels .*\['normal'\] need 6"):
        cli(_args(mismatched, hb_inputs, out))
    from handsynth.methods.synthetic import write_synthetic_dataset

    no_texture = write_synthetic_dataset(tmp_path / "nt", n=1, size=48, extra_maps=("normal",))
    with pytest.raises(UserError, match="texture"):
        cli(_args(hb_run, no_texture, out))
    incomplete = _run_folder(tmp_path / "incomplete", ["normal", "texture"])
    (incomplete / "orientation.safetensors").unlink()
    with pytest.raises(UserError, match="has no orientation.safetensors"):
        cli(_args(incomplete, hb_inputs, out))
    handless = tmp_path / "handless.jsonl"
    rec = json.loads((hb_inputs / "metadata.jsonl").read_text().splitlines()[0])
    rec["hands"], rec["conditions"] = [], {}
    handless.write_text(json.dumps({k: v for k, v in rec.items() if k not in ("local", "file_name")}) + "\n")
    with pytest.raises(UserError, match="has no hand"):
        cli(_args(hb_run, handless, out))
    with pytest.raises(UserError, match="not a HandBooster run folder"):
        cli(_args(hb_inputs, hb_inputs, out))
    assert not out.exists()


def test_train_then_generate_from_the_command_line(hb_inputs, tmp_path, capsys):
    from handsynth.cli import main

    run = tmp_path / "run"
    fast = ["--set", "model.sample_size=16", "--set", "train.batch_size=2", "--set", "train.validate_every=0"]
    fast += ["--set", "train.checkpoint_every=0", "--set", "train.tracker=none"]
    config = str(ROOT / "configs" / "handbooster_tiny.yaml")
    assert (
        main(
            [
                "train",
                "--method",
                "handbooster",
                "--config",
                config,
                "--in",
                str(hb_inputs),
                "--out",
                str(run),
                "--max-steps",
                "2",
                *fast,
            ]
        )
        == 0
    )
    assert (run / "unet").is_dir() and (run / "orientation.safetensors").is_file()
    assert main(["generate", *_args(run, hb_inputs, tmp_path / "gen", "--steps", "2", "--limit", "1")]) == 0
    assert len(read_dataset(tmp_path / "gen")) == 1


def test_rendered_world_records_train_items_and_generate(cli, hb_run, tmp_path):
    """Real renders (the micro world, hand-only): the weight map marks the rendered hand, left hands are
    mirrored and flipped back, and generation writes one crop per hand."""
    from handsynth.methods.handbooster.data import HandBoosterDataset
    from handsynth.world.config import WorldConfig
    from handsynth.world.dataset import render_world

    world = tmp_path / "world"
    render_world(WorldConfig(domain="lab", size=64, maps=("normal", "texture", "seg"), local=False), 4, world)
    recs = read_dataset(world)
    assert {h.side for r in recs for h in r.hands} == {"left", "right"}  # both paths run
    ds = HandBoosterDataset(recs, world, _config(["normal", "texture"]))
    for i in range(len(ds)):
        w = ds[i]["weight"]
        hand = float((w == 1).float().mean())
        assert 0.03 < hand < 0.9 and {round(v, 3) for v in np.unique(w.numpy()).tolist()} == {0.1, 1.0}
    assert cli(_args(hb_run, world, tmp_path / "gen", "--steps", "1")) == 0
    assert [r.id for r in read_dataset(tmp_path / "gen")] == [r.id for r in recs]
    # bare poses: the job renders the maps HandBooster reads (seg included), then crops them
    bare = tmp_path / "poses.jsonl"
    lines = []
    for line in (world / "metadata.jsonl").read_text().splitlines()[:2]:
        r = json.loads(line)
        for key in ("conditions", "local", "file_name"):
            r.pop(key, None)
        lines.append(json.dumps({k: v for k, v in r.items() if not k.startswith("conditions.")}) + "\n")
    bare.write_text("".join(lines))
    assert cli(_args(hb_run, bare, tmp_path / "bare", "--steps", "1")) == 0
    out = read_dataset(tmp_path / "bare")
    assert set(out[0].conditions) == {"normal", "texture", "seg"}
    seg = np.asarray(Image.open(tmp_path / "bare" / out[0].conditions["seg"]).convert("L"))
    assert seg.shape == (SIZE, SIZE) and seg.max() >= 1  # the hand is in the crop
