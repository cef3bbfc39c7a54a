"""The micro world's evaluation tools: feature extractor (FID/KID) and keypoint detector (MSE-2D)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handsynth.eval.features import extract_features, extractor_input_size, extractor_name
from handsynth.eval.keypoints2d import Detection, Keypoint2DDetector, score_hands
from handsynth.micro.data import WorldArrays
from handsynth.micro.detector import (
    HeatmapNet,
    WorldHandDetector,
    decode_heatmaps,
    gaussian_targets,
    random_affine,
    random_soften,
)
from handsynth.micro.features import WorldFeatureExtractor, build_vocab, train_feature_extractor


def _arrays(n: int = 24, size: int = 32, seed: int = 0) -> WorldArrays:
    """Half red, half blue images; 'domain' is the colour, the other labels are noise."""
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 40, (n, size, size, 3), dtype=np.uint8)
    labels = []
    for i in range(n):
        red = i % 2 == 0
        imgs[i, ..., 0 if red else 2] += 180
        labels.append(
            {
                "domain": "lab" if red else "wild",
                "background": str(rng.integers(2)),
                "gesture": "fist",
                "skin_tone": str(rng.integers(3)),
                "side": "left",
                "object": "none",
            }
        )
    kps = rng.uniform(8, size - 8, (n, 21, 2)).astype(np.float32)
    boxes = np.tile(np.array([[8, 8, 16, 16]], np.float32), (n, 1))
    return WorldArrays(imgs, kps, boxes, labels, [f"s{i}" for i in range(n)])


def test_feature_extractor_learns_a_separable_attribute_and_round_trips(tmp_path):
    arrays = _arrays()
    net, stats = train_feature_extractor(
        arrays, steps=30, batch_size=8, lr=3e-3, num_features=16, holdout=0.25
    )
    assert stats["heldout_accuracy"]["domain"] == 1.0  # colour decides the domain: trivially learnable
    x = torch.from_numpy(arrays.images[:4]).permute(0, 3, 1, 2)
    with torch.no_grad():
        f = net(x)
    assert f.shape == (4, 16)
    net.save(tmp_path / "feat", {"training": stats})
    back = WorldFeatureExtractor.load(tmp_path / "feat")
    with torch.no_grad():
        assert torch.allclose(back(x), f, atol=1e-6)
    # It is a handsynth.eval extractor: name, input size, and any image size in.
    assert extractor_input_size(back) == 32 and "micro world" in extractor_name(back)
    big = [np.kron(a, np.ones((2, 2, 1), np.uint8)) for a in arrays.images[:3]]  # 64^2 copies
    feats = extract_features(back, big, batch_size=2)
    assert feats.shape == (3, 16) and np.isfinite(feats).all()


def test_vocab_is_sorted_per_attribute():
    vocab = build_vocab(_arrays().labels)
    assert vocab["domain"] == ["lab", "wild"] and vocab["gesture"] == ["fist"]


def test_decode_heatmaps_finds_the_peak_and_scores_sharpness():
    logits = torch.full((1, 21, 8, 8), -30.0)
    for j in range(21):
        logits[0, j, j % 8, (2 * j) % 8] = 30.0  # one sharp peak per joint
    cells, conf = decode_heatmaps(logits)
    expect = torch.tensor([[(2 * j) % 8 + 0.5, j % 8 + 0.5] for j in range(21)])
    assert torch.allclose(cells[0], expect, atol=1e-4)
    assert torch.allclose(conf, torch.ones_like(conf), atol=1e-4)
    flat_cells, flat_conf = decode_heatmaps(torch.zeros(1, 21, 8, 8))
    # a uniform map: the peak window holds at most 9 of the 64 cells' mass (fewer at the border)
    assert (flat_conf <= 9 / 64 + 1e-6).all() and (flat_conf >= 4 / 64 - 1e-6).all()


def test_gaussian_targets_are_distributions_centred_on_the_joint():
    t = gaussian_targets(torch.tensor([[[3.5, 5.5]]]), 8, 8)
    assert torch.isclose(t.sum(), torch.tensor(1.0))
    assert t[0, 0].argmax().item() == 5 * 8 + 3  # row 5, column 3


def test_random_affine_moves_keypoints_with_the_pixels():
    # One bright 2x2 dot per image at its keypoint; after the warp the brightest pixel must sit where
    # the warped keypoint says (zoom, rotation, shift and mirror all exercised over 64 draws).
    n, size = 64, 32
    g = torch.Generator().manual_seed(0)
    kp = 8 + torch.rand(n, 1, 2, generator=g) * 16  # inside the frame, away from the border
    imgs = torch.zeros(n, 3, size, size)
    for i in range(n):
        x, y = (int(v) for v in kp[i, 0])
        imgs[i, :, y - 1 : y + 1, x - 1 : x + 1] = 1.0
    kp_dot = kp.floor()  # the dot's centre: the corner shared by its four pixels
    out, moved = random_affine(imgs, kp_dot, g)
    flips = 0
    for i in range(n):
        heat = out[i, 0]
        yx = torch.nonzero(heat == heat.max()).float().mean(0) + 0.5  # pixel centres
        assert torch.dist(yx.flip(0), moved[i, 0]) < 1.5
        flips += int(not torch.allclose(moved[i, 0], kp_dot[i, 0]))
    assert flips > n // 2  # it does move them


def test_detector_obeys_the_keypoint_protocol_in_image_pixels(tmp_path):
    torch.manual_seed(0)
    det = WorldHandDetector(HeatmapNet(input_size=32))
    assert isinstance(det, Keypoint2DDetector)
    img = np.zeros((96, 64, 3), np.uint8)  # any size: keypoints come back in this image's pixels
    (d,) = det.detect(img)
    assert isinstance(d, Detection) and d.keypoints.shape == (21, 2)
    assert (d.keypoints[:, 0] <= 64).all() and (d.keypoints[:, 1] <= 96).all() and 0 < d.confidence <= 1
    det.save(tmp_path / "det")
    again = WorldHandDetector.load(tmp_path / "det").detect(img)[0]
    np.testing.assert_allclose(again.keypoints, d.keypoints, atol=1e-5)
    # The eval's matching accepts it: a labelled hand where the detector looked is scored.
    scores = score_hands("x", [d], ["right"], [d.keypoints + 1.0], [[0, 0, 64, 96]])
    assert scores[0].sq_error == pytest.approx(2.0)


def test_missing_tool_folder_is_a_user_error(tmp_path):
    from handsynth.errors import UserError

    with pytest.raises(UserError, match="not a saved world hand detector"):
        WorldHandDetector.load(tmp_path)


def test_random_soften_blurs_the_chosen_share_and_keeps_the_rest():
    g = torch.Generator().manual_seed(0)
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 255.0  # finest detail there is
    imgs = checker.expand(200, 3, 32, 32).clone()
    out = random_soften(imgs, g, 0.5)
    changed = (out - imgs).abs().flatten(1).mean(1) > 20
    assert 70 < int(changed.sum()) < 130  # ~half, drawn per image
    detail = lambda x: (x[..., 1:] - x[..., :-1]).abs().mean()  # noqa: E731
    assert detail(out[changed]) < 0.3 * detail(imgs[changed])  # the checkerboard is washed out
    assert torch.equal(out[~changed], imgs[~changed]) and out.min() >= 0 and out.max() <= 255
    assert torch.equal(random_soften(imgs, g, 0.0), imgs)


def test_feature_augmentation_flips_about_half_and_swaps_their_side_label(monkeypatch):
    """A mirrored left hand is a right hand: every flipped image carries the other side's label, every
    unflipped one keeps its own (the affine part is made the identity to see the flip alone)."""
    import handsynth.micro.detector as det_mod
    from handsynth.micro.features import _augment

    monkeypatch.setattr(det_mod, "random_affine", lambda x, kp, g, mirror=True: (x, kp))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 8, 8, generator=g) * 255
    vocab = {"side": ["left", "right"], "gesture": ["fist", "open hand"]}
    y = {"side": torch.randint(0, 2, (64,), generator=g), "gesture": torch.randint(0, 2, (64,), generator=g)}
    out, yo = _augment(x, y, vocab, g)
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) and not torch.equal(o, i) for o, i in zip(out, x)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert bool((flipped | kept).all()) and 16 < int(flipped.sum()) < 48
    assert torch.equal(yo["side"][flipped], 1 - y["side"][flipped])
    assert torch.equal(yo["side"][kept], y["side"][kept])
    assert torch.equal(yo["gesture"], y["gesture"])  # only the side is mirrored


def test_random_affine_without_mirror_keeps_handedness():
    g = torch.Generator().manual_seed(0)
    img = torch.zeros(32, 3, 16, 16)
    img[:, :, 6:10, 2:5] = 1.0  # a blob left of centre
    out, _ = random_affine(img, torch.zeros(32, 1, 2), g, mirror=False)  # full strength: p = 0.5 otherwise
    assert bool((out[..., :8].sum((1, 2, 3)) > out[..., 8:].sum((1, 2, 3))).all())
