"""`handsynth generate --method uni-controlnet` on the tiny base: a run folder loads, images depend on the
seed only, conditioning scale 0 is the text-only base, and the configured maps are checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from handsynth.data import read_dataset
from handsynth.errors import UserError

SIZE = 64


def _run_folder(folder, base, maps: list[str], missing: str = "error"):
    """What `handsynth train --method uni-controlnet` leaves, with weights that visibly read the maps."""
    from handsynth.diffusion.config import save_config
    from handsynth.methods.uni_controlnet.adapter import UniControlAdapter
    from handsynth.methods.uni_controlnet.config import WEIGHTS_DIR, UniControlNetConfig
    from handsynth.methods.uni_controlnet.data import condition_channels
    from handsynth.methods.uni_controlnet.task import CONFIG_NAME

    torch.manual_seed(0)
    adapter = UniControlAdapter.from_unet(base.unet, maps, condition_channels(maps), None, [8, 16, 16])
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in adapter.named_parameters():
            zero = "zero_conv" in name
            p.add_(torch.randn(p.shape, generator=g) * (0.5 if zero else 0.05))
    adapter.save_pretrained(folder / WEIGHTS_DIR)
    cfg = UniControlNetConfig()
    cfg.model.maps, cfg.model.missing_maps, cfg.model.stem_channels = list(maps), missing, [8, 16, 16]
    save_config(cfg, folder / CONFIG_NAME)
    return folder


@pytest.fixture(scope="module")
def uni_run(tmp_path_factory, tiny_base):
    return _run_folder(tmp_path_factory.mktemp("uni") / "run", tiny_base, ["mesh", "seg"])


@pytest.fixture(scope="module")
def seg_poses(tmp_path_factory):
    from handsynth.methods.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(
        tmp_path_factory.mktemp("inputs") / "poses", n=2, size=SIZE, extra_maps=("seg",)
    )


def _images(out) -> np.ndarray:
    recs = read_dataset(out)
    return np.stack([np.asarray(Image.open(out / r.file_name).convert("RGB"), dtype=np.int16) for r in recs])


def _args(run, inp, out, *extra):
    return ["--method", "uni-controlnet", "--checkpoint", str(run), "--in", str(inp), "--out", str(out)]


def test_images_depend_on_the_seed_only(cli, uni_run, seg_poses, tmp_path):
    outs = {}
    for name, seed, batch in (("a", 0, 1), ("again", 0, 1), ("b", 0, 2), ("c", 1, 2)):
        outs[name] = tmp_path / name
        argv = [*_args(uni_run, seg_poses, outs[name]), "--steps", "2", "--seed", str(seed)]
        assert cli([*argv, "--batch-size", str(batch)]) == 0
    a, again, b, c = (_images(outs[k]) for k in ("a", "again", "b", "c"))
    assert np.array_equal(a, again)  # same seed, same settings: the same pixels
    assert np.abs(a - b).max() <= 1  # other batching: float rounding only
    assert np.abs(a - c).mean() > 1  # another seed
    rec = read_dataset(outs["a"])[0]
    assert rec.source["method"] == "uni-controlnet" and rec.source["maps"] == ["mesh", "seg"]


@pytest.mark.parametrize("scheduler", ["ddim", "euler"])
def test_the_maps_matter_and_scale_zero_is_the_text_only_base(cli, uni_run, seg_poses, tmp_path, scheduler):
    common = ["--steps", "3", "--seed", "4", "--base-model", "tiny", "--scheduler", scheduler]
    for name, extra in (("uni", []), ("zero", ["--conditioning-scale", "0"])):
        assert cli([*_args(uni_run, seg_poses, tmp_path / name), *common, *extra]) == 0
    assert cli(["--method", "sd", "--in", str(seg_poses), "--out", str(tmp_path / "sd"), *common]) == 0
    uni, zero, sd = (_images(tmp_path / k) for k in ("uni", "zero", "sd"))
    assert np.abs(zero - sd).mean() <= 1.0  # the bound: <= 1/255 mean per pixel
    assert np.abs(uni - sd).mean() > 1.0


def test_a_record_without_a_configured_map(cli, uni_run, poses_dir, tiny_base, tmp_path):
    """poses_dir has mesh maps only: an error before any output, or zeros when the run says so."""
    out = tmp_path / "out"
    with pytest.raises(UserError, match="record 000000 has no condition map 'seg'") as err:
        cli([*_args(uni_run, poses_dir, out), "--steps", "1"])
    assert "\n" not in str(err.value) and not out.exists()
    zero_run = _run_folder(tmp_path / "zero_run", tiny_base, ["mesh", "seg"], missing="zero")
    assert cli([*_args(zero_run, poses_dir, out), "--steps", "1", "--limit", "1"]) == 0
    assert len(read_dataset(out)) == 1


def test_method_options_that_do_not_apply_are_refused(cli, uni_run, seg_poses, tmp_path):
    for extra, words in ((["--condition", "seg"], "model.maps"), (["--mode", "global+local"], "--mode")):
        with pytest.raises(UserError, match=words):
            cli([*_args(uni_run, seg_poses, tmp_path / "o"), *extra])
    with pytest.raises(UserError, match="does not exist"):
        cli(_args(tmp_path / "nowhere", seg_poses, tmp_path / "o"))
    with pytest.raises(UserError, match="not a Uni-ControlNet run folder"):
        cli(_args(seg_poses, seg_poses, tmp_path / "o"))
    assert not (tmp_path / "o").exists()


def test_bare_poses_get_every_listed_map_rendered(cli, uni_run, poses_dir, tmp_path):
    import json

    bare = tmp_path / "poses.jsonl"
    recs = [json.loads(line) for line in (poses_dir / "metadata.jsonl").read_text().splitlines()[:1]]
    for r in recs:
        r.pop("conditions"), r.pop("local"), r.pop("file_name")
    bare.write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = tmp_path / "out"
    assert cli([*_args(uni_run, bare, out), "--steps", "1", "--size", str(SIZE)]) == 0
    rec = read_dataset(out)[0]
    assert set(rec.conditions) == {"mesh", "seg"}
    seg = np.asarray(Image.open(out / rec.conditions["seg"]))
    assert seg.max() >= 1  # a hand was labelled


def test_an_adapter_for_another_base_is_refused(cli, uni_run, seg_poses, tmp_path):
    from handsynth.micro.assets import default_model

    with pytest.raises(UserError, match="made for another base model"):
        cli([*_args(uni_run, seg_poses, tmp_path / "o"), "--base-model", str(default_model().base)])
    assert not (tmp_path / "o").exists()
