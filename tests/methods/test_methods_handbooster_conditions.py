"""HandBooster's sharp conditions (data.conditions_from: render): each crop's maps are rendered at
condition_size² and resized to the model's size. They agree with a direct render of the crop at that
size, are sharper than crops cut out of the stored full-image maps when the hand is small, and feed the
dataset and the generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handsynth.data import read_dataset
from handsynth.errors import UserError
from handsynth.methods.handbooster.config import HandBoosterConfig
from handsynth.methods.handbooster.data import (
    HandBoosterDataset,
    crop_maps,
    hand_box,
    render_crop_maps,
    rendered_seg,
)
from handsynth.render.conditions import ConditionRenderer
from handsynth.render.maps import condition_image, map_to_image

MAPS = ("normal", "texture", "seg")


def small_config(sample_size: int = 16) -> HandBoosterConfig:
    cfg = HandBoosterConfig()
    m = cfg.model
    m.sample_size, m.block_out_channels, m.layers_per_block, m.norm_num_groups = sample_size, [8, 16], 1, 4
    m.attention_head_dim = 4
    cfg.data.condition_size = 64
    return cfg


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from handsynth.methods.synthetic import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("hbr") / "data", n=3, size=48, extra_maps=MAPS)


@pytest.fixture(scope="module")
def renderer(data):
    return ConditionRenderer(data_root=data)


def _rgb(name: str, arr: np.ndarray) -> np.ndarray:
    size = arr.shape[0]
    return np.asarray(condition_image(name, map_to_image(name, arr), size, size)).astype(np.float64)


def _gradient_energy(img: np.ndarray) -> float:
    """Mean squared difference of neighbouring pixels: high for sharp edges, low for blurred ones."""
    a = img.astype(np.float64)
    return float((np.diff(a, axis=0) ** 2).mean() + (np.diff(a, axis=1) ** 2).mean())


def test_a_crop_rendered_at_256_and_resized_matches_a_direct_render(data, renderer):
    s = read_dataset(data)[0]
    box = hand_box(s.hands[0], s.width, s.height, 1.5, rendered_seg(renderer, s))
    crops = render_crop_maps(renderer, s, ["normal", "seg"], box, 256, 64, mirror=False)
    direct = renderer.render_box(s, ("normal", "seg"), box, 64)
    ours, theirs = crops["seg"][..., 0] > 0, direct["seg"] > 0
    assert (ours & theirs).sum() / (ours | theirs).sum() > 0.93  # the same silhouette in the same place
    diff = np.abs(crops["normal"].astype(np.float64) - _rgb("normal", direct["normal"]))
    # Only the antialiasing at the outline and the averaging of fine detail differ (of 255); the crop
    # rendered one output pixel to the side is already 3.1-3.3 off on average, 12-19 in the median.
    assert diff.mean() < 2.5
    assert np.median(diff[ours & theirs]) <= 5


def test_a_rendered_crop_is_sharper_than_one_cut_from_the_stored_map_when_the_hand_is_small(data, renderer):
    s = read_dataset(data)[0]
    stored = {m: _rgb(m, a).astype(np.uint8) for m, a in renderer.render_box(s, ("normal", "seg")).items()}
    box = hand_box(s.hands[0], s.width, s.height, 1.5, stored["seg"])
    assert box[2] < 64  # the hand's crop covers fewer photo pixels than the model's 128² input
    cut = crop_maps(stored, box, 128, mirror=False)
    sharp = render_crop_maps(renderer, s, ["normal", "seg"], box, 256, 128, mirror=False)
    assert _gradient_energy(sharp["normal"]) > 1.5 * _gradient_energy(cut["normal"])
    # ... and it shows the same thing: equal after blurring both to 8x8
    coarse = [m.reshape(8, 16, 8, 16, 3).mean(axis=(1, 3)) for m in (sharp["normal"], cut["normal"])]
    assert np.abs(coarse[0] - coarse[1]).mean() < 3


def test_the_dataset_renders_its_crops_and_matches_the_stored_path_coarsely(data):
    cfg = small_config()
    samples = read_dataset(data)
    rendered = HandBoosterDataset(samples, data, cfg)[0]
    cfg.data.conditions_from = "stored"
    stored = HandBoosterDataset(samples, data, cfg)[0]
    assert rendered["conditions"].shape == stored["conditions"].shape == (6, 16, 16)
    torch.testing.assert_close(rendered["image"], stored["image"])  # the photo is always cut out
    w = rendered["weight"]
    assert 0.05 < float((w == 1).float().mean()) < 0.95  # the rendered seg weights the hand
    pool = torch.nn.functional.avg_pool2d
    assert (pool(rendered["conditions"], 4) - pool(stored["conditions"], 4)).abs().mean() < 0.2


def test_render_mode_checks_records_before_any_output(data, tmp_path):
    import json

    bad = tmp_path / "bad"
    bad.mkdir()
    rec = json.loads((data / "metadata.jsonl").read_text().splitlines()[0])
    rec["hands"][0]["transl"] = [0.3, 0.0, 0.5]  # parameters no longer give the labelled joints
    (bad / "metadata.jsonl").write_text(json.dumps(rec) + "\n")
    (bad / rec["file_name"]).parent.mkdir(parents=True)
    (bad / rec["file_name"]).write_bytes((data / rec["file_name"]).read_bytes())
    with pytest.raises(UserError):
        HandBoosterDataset(read_dataset(bad), bad, small_config())
    cfg = small_config()
    cfg.data.condition_size = 8
    with pytest.raises(UserError, match="condition_size 8 must be at least model.sample_size 16"):
        cfg.check()


def test_generation_renders_the_crops_like_training(data, tmp_path):
    from PIL import Image

    from handsynth.cli import main
    from handsynth.config import CONFIG_NAME, save_config
    from handsynth.methods.handbooster.model import HandBoosterModel

    run = tmp_path / "run"
    torch.manual_seed(0)
    cfg = small_config()
    HandBoosterModel(cfg).save(run)
    save_config(cfg, run / CONFIG_NAME)
    argv = ["generate", "--method", "handbooster", "--checkpoint", str(run), "--in", str(data)]
    assert main([*argv, "--out", str(tmp_path / "gen"), "--steps", "2", "--limit", "1"]) == 0
    (rec,) = read_dataset(tmp_path / "gen")
    normal = np.asarray(Image.open(tmp_path / "gen" / rec.conditions["normal"]))
    s = read_dataset(data)[0]
    renderer = ConditionRenderer(data_root=data)
    box = hand_box(s.hands[0], s.width, s.height, 1.5, rendered_seg(renderer, s))
    expected = render_crop_maps(renderer, s, ["normal"], box, 64, 16, mirror=False)["normal"]
    assert rec.width == 16 and np.array_equal(normal, expected)


def test_world_records_with_objects_and_both_sides_train_and_generate_from_rendered_crops(tmp_path):
    """Hand–object world records (holab, a held object in each): the rendered seg puts the
    object into the weight map, and generation writes one crop per hand with its rendered maps."""
    from handsynth.cli import main
    from handsynth.config import CONFIG_NAME, save_config
    from handsynth.methods.handbooster.model import HandBoosterModel
    from handsynth.world.config import WorldConfig
    from handsynth.world.dataset import render_world

    world = tmp_path / "world"
    render_world(WorldConfig(domain="holab", size=64, maps=("seg",), local=False), 4, world)
    recs = read_dataset(world)
    assert all(r.extra.get("objects") for r in recs)
    cfg = small_config()
    ds = HandBoosterDataset(recs, world, cfg)
    for i in range(len(ds)):
        item = ds[i]
        assert item["conditions"].shape == (6, 16, 16)
        assert 0.03 < float((item["weight"] == 1).float().mean()) < 0.95
    run = tmp_path / "run"
    torch.manual_seed(0)
    HandBoosterModel(cfg).save(run)
    save_config(cfg, run / CONFIG_NAME)
    argv = ["generate", "--method", "handbooster", "--checkpoint", str(run), "--in", str(world)]
    assert main([*argv, "--out", str(tmp_path / "gen"), "--steps", "1"]) == 0
    out = read_dataset(tmp_path / "gen")
    assert len(out) == sum(len(r.hands) for r in recs)
    assert all(set(r.conditions) == {"normal", "texture", "seg"} for r in out)  # drawn, not stored
