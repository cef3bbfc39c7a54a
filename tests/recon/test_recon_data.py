"""Crops, left-hand mirroring and the ratio sampler of the reconstruction data pipeline."""

from __future__ import annotations

import copy
import math
from itertools import islice

import numpy as np
import pytest
import torch
from PIL import Image
from recon_helpers import StandInHand, make_dataset

from handsynth.data.folder import read_dataset
from handsynth.errors import UserError
from handsynth.recon.data import Augment, Crop, HandCrops, square_crop
from handsynth.recon.model import hand_forward
from handsynth.recon.sampler import RatioSampler, parse_data_spec


@pytest.mark.parametrize("mirror", [False, True])
@pytest.mark.parametrize("rot_deg", [0.0, 25.0])
def test_crop_moves_image_pixels_and_labels_together(mirror: bool, rot_deg: float) -> None:
    """A bright dot drawn at a global pixel lands where ``to_norm`` says, mirrored and rotated too."""
    arr = np.zeros((120, 160, 3), np.uint8)
    p = np.array([71.0, 52.0])
    arr[51:54, 70:73] = 255  # 3x3 dot centred on pixel (71, 52)
    crop = Crop(center=(80.0, 60.0), side=60.0, size=96, rot=math.radians(rot_deg), mirror=mirror)
    out = np.asarray(crop.image(Image.fromarray(arr)), np.float64)[..., 0]
    ys, xs = np.nonzero(out > 0.2 * out.max())
    w = out[ys, xs]
    u = np.array([(xs * w).sum(), (ys * w).sum()]) / w.sum()  # centroid, pixel-centre convention
    n_img = (2 * u + 1) / crop.size - 1
    np.testing.assert_allclose(n_img, crop.to_norm(p), atol=1.5 / crop.size)
    np.testing.assert_allclose(crop.to_global(crop.to_norm(p)), p, atol=1e-9)


def test_square_crop_expands_the_box_and_centres_it() -> None:
    c = square_crop([10, 20, 40, 20], expand=1.5, size=64)
    assert c.center == (30.0, 30.0) and c.side == 60.0
    np.testing.assert_allclose(c.to_norm([[0, 0], [60, 60]]), [[-1, -1], [1, 1]])


@pytest.fixture(scope="module")
def left_right(tmp_path_factory: pytest.TempPathFactory):
    folder = make_dataset(tmp_path_factory.mktemp("lr") / "ds", 4, seed=3)
    return folder, read_dataset(folder)


@pytest.mark.parametrize("augment", [None, Augment(scale=0.2, shift=0.1, rot_deg=40.0, color=0.0)])
def test_labels_agree_with_parameters_through_the_right_hand_model(left_right, augment) -> None:
    """After mirroring/rotation, the 3D label equals the right model driven by the transformed params,
    so the vertex target built from parameters matches the joint target (both sides)."""
    folder, samples = left_right
    ds = HandCrops(samples, folder, size=64, hand_model="openhand", augment=augment)
    model = StandInHand()
    sides = set()
    for i in range(len(ds)):
        item = ds[(i, 100 + i)]
        joints, _ = hand_forward(model, item["rotmat"][None], item["hand_pose"][None], item["betas"][None])
        torch.testing.assert_close(joints[0], item["joints3d"], atol=2e-6, rtol=0)
        sides.add(samples[ds.items[i][0]].hands[ds.items[i][1]].side)
    assert sides == {"left", "right"}


def test_left_hand_mirror_round_trip(left_right) -> None:
    """Un-mirroring the left item's labels gives back the record's joints (3D and 2D)."""
    folder, samples = left_right
    ds = HandCrops(samples, folder, size=64)
    i = next(k for k, (si, hi) in enumerate(ds.items) if samples[si].hands[hi].side == "left")
    hand = samples[ds.items[i][0]].hands[0]
    item = ds[i]
    rel = np.asarray(hand.joints_3d) - np.asarray(hand.joints_3d)[0]
    np.testing.assert_allclose(item["joints3d"].numpy() * [-1, 1, 1], rel, atol=1e-6)
    crop = ds.crop_for(i)
    assert crop.mirror
    np.testing.assert_allclose(crop.to_global(item["joints2d"].numpy()), hand.joints_2d, atol=1e-3)
    unmirrored = square_crop(hand.bbox, 1.5, 64, mirror=False)
    np.testing.assert_allclose(
        unmirrored.to_norm(hand.joints_2d) * [-1, 1], item["joints2d"].numpy(), atol=1e-5
    )
    # the image is mirrored too: the crop equals the flipped un-mirrored crop
    img = Image.open(folder / samples[ds.items[i][0]].file_name)
    a = np.asarray(crop.image(img), np.int16)
    b = np.asarray(unmirrored.image(img), np.int16)[:, ::-1]
    assert np.abs(a - b).mean() < 2.0


def test_ratio_sampler_draws_in_proportion() -> None:
    sizes, ratios = [10, 1000, 50], [1.0, 0.5, 2.5]
    s = RatioSampler(sizes, ratios, seed=7)
    n = 20000
    idx = np.array([i for i, _ in islice(iter(s), n)])
    which = s.dataset_of(idx)
    p = np.array(ratios) / sum(ratios)
    frac = np.bincount(which, minlength=3) / n
    assert np.all(np.abs(frac - p) < 4 * np.sqrt(p * (1 - p) / n)), frac  # independent of dataset sizes
    small = np.bincount(idx[which == 0], minlength=10)  # uniform inside a dataset
    assert small.min() > 0.8 * small.mean() and small.max() < 1.2 * small.mean()
    assert idx[which == 1].max() < 1010 and idx[which == 2].min() >= 1010


def test_ratio_sampler_resumes_mid_stream_and_ranks_differ() -> None:
    s = RatioSampler([5, 7], [1.0, 1.0], seed=1)
    full = list(islice(iter(s), 5000))  # crosses a chunk boundary (4096)
    s.start = 4000
    assert list(islice(iter(s), 1000)) == full[4000:5000]
    other = RatioSampler([5, 7], [1.0, 1.0], seed=1, rank=1, world=2)
    assert list(islice(iter(other), 50)) != full[:50]


def test_parse_data_spec() -> None:
    assert parse_data_spec("real:1.0") == ("real", 1.0)
    assert parse_data_spec("/data/synth:0.5") == ("/data/synth", 0.5)
    assert parse_data_spec("plain/folder") == ("plain/folder", 1.0)
    with pytest.raises(UserError, match="ratio"):
        parse_data_spec("synth:-1")


def test_image_cache_gives_the_same_items_and_reads_each_file_once(left_right, monkeypatch) -> None:
    """Cached photos change nothing a draw returns (augmentation included) and spare the decoding; a
    limit below one photo keeps none."""
    import handsynth.recon.data as data

    folder, samples = left_right
    aug = Augment(scale=0.2, shift=0.1, rot_deg=40.0, color=0.2)
    plain = HandCrops(samples, folder, size=32, augment=aug)
    cached = HandCrops(samples, folder, size=32, augment=aug, image_cache_mb=64)
    reads = []
    real_load = data.load_image
    monkeypatch.setattr(data, "load_image", lambda p: reads.append(p) or real_load(p))
    for draw in range(3):
        for i in range(len(cached)):
            a, b = plain[(i, draw)], cached[(i, draw)]
            for key in a:
                torch.testing.assert_close(a[key], b[key], atol=0, rtol=0)
    files = {s.file_name for s in samples}
    assert len(reads) == 3 * len(plain) + len(files)  # plain: every draw; cached: once per file
    tiny = HandCrops(samples, folder, size=32, image_cache_mb=1e-6)
    _ = tiny[0]
    assert tiny.images.kept == {} and tiny.images.used == 0


def test_item_rotation_matches_the_models_rodrigues(left_right) -> None:
    """The dataset's numpy orientation equals the torch Rodrigues the model and losses use."""
    from handsynth.recon.rotation import axis_angle_to_matrix

    folder, samples = left_right
    ds = HandCrops(samples, folder, size=32)
    for i in range(len(ds)):
        si, hi = ds.items[i]
        hand = samples[si].hands[hi]
        if hand.side == "left":
            continue
        want = axis_angle_to_matrix(torch.tensor(hand.global_orient, dtype=torch.float64)).float()
        torch.testing.assert_close(ds[i]["rotmat"], want, atol=1e-7, rtol=0)


def test_absolute_hand_poses_become_relative_to_the_right_models_mean(left_right) -> None:
    """Records with ``source.flat_hand_mean`` (HO3D) store absolute poses; the network predicts poses
    relative to the model's mean, so the target must be too (else the vertex and parameter losses teach
    another articulation). Reference: the records' joints made by the *flat* OpenHand models of each
    side, against the right relative model driven by the item's parameters."""
    from handsynth.hand.model import load_hand_model

    folder, samples = left_right
    right = load_hand_model("openhand", side="right")
    rng = np.random.default_rng(0)
    flat_samples = []
    for s in samples:
        s = copy.deepcopy(s)
        s.source = {**s.source, "flat_hand_mean": True}
        for h in s.hands:
            h.model = "openhand"
            h.hand_pose = (0.3 * rng.standard_normal(45)).tolist()
            flat = load_hand_model("openhand", side=h.side, flat_hand_mean=True)
            t = [
                torch.tensor([x], dtype=torch.float32)
                for x in (h.global_orient, h.hand_pose, h.betas, h.transl)
            ]
            with torch.no_grad():
                h.joints_3d = flat(*t).joints[0].double().tolist()
        flat_samples.append(s)
    mean = right.hand_mean.double().numpy()
    ds = HandCrops(flat_samples, folder, size=64, hand_model="openhand", hand_mean=mean)
    sides = set()
    for i in range(len(ds)):
        item = ds[i]
        assert item["has_params"] == 1
        with torch.no_grad():
            joints, _ = hand_forward(
                right, item["rotmat"][None], item["hand_pose"][None], item["betas"][None]
            )
        torch.testing.assert_close(joints[0], item["joints3d"], atol=1e-5, rtol=0)
        sides.add(flat_samples[ds.items[i][0]].hands[ds.items[i][1]].side)
    assert sides == {"left", "right"}
    # without the mean the parameters are not supervised (the joints still are)
    assert all(
        HandCrops(flat_samples, folder, size=64, hand_model="openhand")[i]["has_params"] == 0
        for i in range(2)
    )
