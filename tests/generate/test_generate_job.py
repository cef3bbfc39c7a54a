"""`handsynth generate` end to end on the tiny base: records and labels, provenance, resume, refusals,
bad inputs, independence from batch size and process split, shards, rendering bare poses."""

from __future__ import annotations

import json
import shutil
import tarfile

import numpy as np
import pytest
from PIL import Image

from handsynth.data import read_dataset
from handsynth.data.provenance import tree_sha256
from handsynth.errors import UserError
from handsynth.generate.job import Dist, JobConfig, run_job
from handsynth.generate.plan import item_seed
from handsynth.methods.interface import SamplingConfig

FAST = ["--steps", "2", "--base-model", "tiny"]


def controlnet_args(ckpt, inp, out, *extra):
    return [
        "--method",
        "controlnet",
        "--checkpoint",
        str(ckpt),
        "--in",
        str(inp),
        "--out",
        str(out),
        *FAST,
        *extra,
    ]


def pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def test_writes_labelled_records_with_provenance(cli, controlnet_dir, poses_dir, tmp_path):
    out = tmp_path / "out"
    assert (
        cli(controlnet_args(controlnet_dir, poses_dir, out, "--prompts-per-pose", "2", "--batch-size", "3"))
        == 0
    )
    inputs = {s.id: s for s in read_dataset(poses_dir)}
    recs = read_dataset(out)  # validates every record
    assert [r.id for r in recs] == [f"{i}_{k}" for i in sorted(inputs) for k in range(2)]
    sha = tree_sha256(controlnet_dir)
    for r in recs:
        src = inputs[r.source["input_id"]]
        assert [h.to_dict() for h in r.hands] == [h.to_dict() for h in src.hands]  # labels exactly carried
        assert r.K == src.K and (r.width, r.height) == (src.width, src.height)
        assert r.prompt == src.prompt and r.local.box == src.local.box
        assert r.source["method"] == "controlnet" and r.source["checkpoint_sha256"] == sha
        assert r.source["checkpoint"] == str(controlnet_dir) and r.source["base_model"] == "tiny"
        assert r.source["scheduler"] == "ddim" and r.source["steps"] == 2 and r.source["guidance"] == 9.0
        assert r.source["torch_threads"] == 1  # --threads auto: one thread for the tiny base on the CPU
        assert r.source["seed"] == item_seed(0, src.id, r.source["prompt_index"])
        assert r.extra["hand_token_indices"]  # every synthetic prompt names a hand or a finger
        assert pixels(out / r.file_name).shape == (64, 64, 3)
        assert r.conditions["mesh"] == f"conditions/mesh/{src.id}.png"  # shared by the pose's K images
        assert np.array_equal(pixels(out / r.conditions["mesh"]), pixels(poses_dir / src.conditions["mesh"]))
    assert not np.array_equal(pixels(out / recs[0].file_name), pixels(out / recs[1].file_name))
    assert (out / "contact_sheet.png").exists() and not (out / ".parts").exists()
    cfg = json.loads((out / "handsynth_run.json").read_text())
    assert cfg["method"] == "controlnet" and cfg["prompts_per_pose"] == 2 and "batch_size" not in cfg


def test_resume_skips_done_work_and_refuses_other_settings(cli, controlnet_dir, poses_dir, tmp_path):
    out = tmp_path / "out"
    assert cli(controlnet_args(controlnet_dir, poses_dir, out, "--limit", "2")) == 0
    first = {r.id: (out / r.file_name).stat().st_mtime_ns for r in read_dataset(out)}
    assert len(first) == 2
    link = tmp_path / "same_weights"  # the checkpoint is identified by content, not by its path
    link.symlink_to(controlnet_dir)
    assert cli(controlnet_args(link, poses_dir, out, "--batch-size", "2")) == 0
    recs = read_dataset(out)
    assert len(recs) == 4 and all((out / f"images/{i}.png").stat().st_mtime_ns == t for i, t in first.items())
    before = (out / "metadata.jsonl").read_bytes()
    with pytest.raises(UserError, match=r"different settings \(steps\).*--overwrite"):
        cli(controlnet_args(controlnet_dir, poses_dir, out, "--steps", "3"))
    with pytest.raises(UserError, match=r"different settings \(guidance, seed\)"):
        cli(controlnet_args(controlnet_dir, poses_dir, out, "--seed", "1", "--guidance", "3"))
    assert (out / "metadata.jsonl").read_bytes() == before
    assert (
        cli(controlnet_args(controlnet_dir, poses_dir, out, "--seed", "1", "--overwrite", "--limit", "1"))
        == 0
    )
    assert [r.source["seed"] for r in read_dataset(out)] == [item_seed(1, recs[0].id, 0)]


def test_bad_inputs_fail_before_any_output(cli, controlnet_dir, poses_dir, tmp_path):
    out = tmp_path / "never"
    lines = (poses_dir / "metadata.jsonl").read_text().splitlines()
    rec = json.loads(lines[1])
    rec["hands"][0]["hand_pose"][0] = float("nan")
    nan = poses_dir / "nan.jsonl"  # beside the maps, so only the NaN is wrong
    nan.write_text("\n".join([lines[0], json.dumps(rec)]) + "\n")
    long_prompts = tmp_path / "prompts.txt"
    long_prompts.write_text("a hand\n" + "a hand holding a cup " * 20 + "\n")
    other_base = tmp_path / "other_base"
    from diffusers import ControlNetModel

    ControlNetModel(
        cross_attention_dim=48,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        layers_per_block=1,
        norm_num_groups=8,
    ).save_pretrained(other_base)
    try:
        cases = [
            (["--method", "dalle", "--in", str(poses_dir), "--out", str(out)], "--method 'dalle' is unknown"),
            (controlnet_args(controlnet_dir, nan, out), f"id {rec['id']}.*hand_pose\\[0\\].*finite"),
            (
                controlnet_args(controlnet_dir, poses_dir, out, "--prompt-file", str(long_prompts)),
                "record 000001 \\(prompt 0\\): the prompt has .* more than the 77",
            ),
            (
                controlnet_args(other_base, poses_dir, out),
                "made for another base model: its cross_attention_dim is 48",
            ),
            (controlnet_args(controlnet_dir, poses_dir, out, "--size", "100"), "record 000000: size 100x100"),
            (controlnet_args(tmp_path / "nowhere", poses_dir, out), "does not exist"),
        ]
        for argv, message in cases:
            with pytest.raises(UserError, match=message):
                cli(argv)
            assert not out.exists()
    finally:
        nan.unlink()


def test_a_run_failing_before_its_first_image_leaves_no_settings_and_in_is_never_out(
    cli, controlnet_dir, poses_dir, tmp_path
):
    out = tmp_path / "out"
    with pytest.raises(UserError, match="fp16 needs a GPU"):
        cli(controlnet_args(controlnet_dir, poses_dir, out, "--dtype", "fp16", "--limit", "1"))
    assert not (out / "handsynth_run.json").exists()
    assert cli(controlnet_args(controlnet_dir, poses_dir, out, "--limit", "1")) == 0  # the corrected command
    before = (poses_dir / "metadata.jsonl").read_bytes()
    for folder in (poses_dir, poses_dir / "metadata.jsonl"):
        with pytest.raises(UserError, match="is the input folder"):
            cli(controlnet_args(controlnet_dir, folder, poses_dir, "--overwrite", "--limit", "1"))
    assert (poses_dir / "metadata.jsonl").read_bytes() == before


def test_same_images_for_any_split_and_batch(controlnet_dir, poses_dir, tmp_path):
    from handsynth.methods.baselines.generators import ControlNetBaseline

    def method():
        return ControlNetBaseline(str(controlnet_dir), "tiny", SamplingConfig(steps=2))

    single, split = tmp_path / "single", tmp_path / "split"
    run_job(method(), JobConfig(str(poses_dir), str(single), prompts_per_pose=2, batch_size=3))
    # Two processes, emulated in turn: rank 1 writes its part, rank 0 writes its own and merges.
    r1 = run_job(method(), JobConfig(str(poses_dir), str(split), prompts_per_pose=2), Dist(1, 2))
    assert r1.generated == 4 and len(list((split / ".parts" / "rank-00001").glob("*.jsonl"))) == 1
    r0 = run_job(
        method(), JobConfig(str(poses_dir), str(split), prompts_per_pose=2, batch_size=2), Dist(0, 2)
    )
    assert r0.generated == 4 and r0.total == 8
    a, b = read_dataset(single), read_dataset(split)
    assert [r.to_dict() for r in a] == [r.to_dict() for r in b]
    for r in a:
        assert np.abs(pixels(single / r.file_name) - pixels(split / r.file_name)).max() <= 1


def test_shards_and_rendered_poses(cli, controlnet_dir, poses_dir, tmp_path):
    # Bare poses (no maps): the mesh maps are rendered from the hand parameters.
    bare = tmp_path / "poses.jsonl"
    recs = [json.loads(line) for line in (poses_dir / "metadata.jsonl").read_text().splitlines()[:2]]
    for r in recs:
        r.pop("conditions"), r.pop("local"), r.pop("file_name")
        r["prompt"] = ""
    bare.write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = tmp_path / "out"
    assert cli(controlnet_args(controlnet_dir, bare, out, "--shards", "1", "--size", "64")) == 0
    got = read_dataset(out)
    assert len(got) == 2 and all(r.prompt and r.source["input_id"] == r.id for r in got)  # generated prompts
    mesh = pixels(out / got[0].conditions["mesh"])
    assert mesh.shape == (64, 64, 3) and mesh.max() > 0  # a hand was drawn
    shards = sorted((out / "shards").glob("shard-*.tar"))
    assert len(shards) == 2
    with tarfile.open(shards[0]) as tar:
        names = set(tar.getnames())
    assert {f"{got[0].id}.json", f"{got[0].id}.image.png", f"{got[0].id}.mesh.png"} <= names


def test_input_local_photo_is_not_claimed_by_outputs(cli, controlnet_dir, poses_dir, tmp_path):
    # Photo datasets (e.g. `handsynth world render`) store a local RGB crop; a global-only method writes
    # no local image, so the output record must not point at the input's file.
    photos = tmp_path / "photos"
    shutil.copytree(poses_dir, photos)
    recs = [json.loads(line) for line in (photos / "metadata.jsonl").read_text().splitlines()[:2]]
    for r in recs:
        rel = f"local/image/{r['id']}.png"
        (photos / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (r["local"]["size"],) * 2, (200, 150, 120)).save(photos / rel)
        r["local"]["file_name"] = rel
    (photos / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = tmp_path / "out"
    assert cli(controlnet_args(controlnet_dir, photos, out)) == 0
    got = read_dataset(out)
    assert len(got) == 2 and all(r.local is not None and r.local.file_name is None for r in got)
    assert (out / "contact_sheet.png").exists()


def test_attentionhand_global_local_tas_overlays(cli, controlnet_dir, poses_dir, tmp_path):
    from diffusers import ControlNetModel

    from handsynth.config import save_config
    from handsynth.diffusion.controlnet import GuidanceModule
    from handsynth.methods.attentionhand.training import CONFIG_NAME, AttentionHandConfig

    run = tmp_path / "run"  # what `handsynth train --method attentionhand` leaves
    GuidanceModule({"shared": ControlNetModel.from_pretrained(controlnet_dir)}).save(run)
    cfg = AttentionHandConfig()
    cfg.tas.resolution = 4
    save_config(cfg, run / CONFIG_NAME)
    out = tmp_path / "out"
    argv = ["--method", "attentionhand", "--checkpoint", str(run), "--in", str(poses_dir), "--out", str(out)]
    argv += ["--steps", "2", "--mode", "global+local", "--tas", "--tas-steps", "1", "--tas-iterations", "1"]
    assert cli([*argv, "--limit", "2", "--sheet-rows", "1"]) == 0
    recs = read_dataset(out)
    assert len(recs) == 2
    for r in recs:
        assert r.source["method"] == "attentionhand" and r.source["mode"] == "global+local"
        assert r.source["tas"]["max_steps"] == 1 and r.source["base_model"] == "tiny"
        assert pixels(out / r.local.file_name).shape == (64, 64, 3)  # the local branch's own crop
    assert (out / "attention" / f"{recs[0].id}.png").exists()  # overlays for the first samples only
    assert not (out / "attention" / f"{recs[1].id}.png").exists()
    assert (out / "attention_sheet.png").exists() and (out / "contact_sheet.png").exists()
    # restarted without TAS: no attention sheet drawn from the earlier run's strips
    no_tas = argv[: argv.index("--tas")]
    assert cli([*no_tas, "--limit", "1", "--sheet-rows", "1", "--overwrite"]) == 0
    assert not (out / "attention_sheet.png").exists() and not (out / "attention").exists()
