"""Yardsticks of the micro benchmark v2: PCK, the trivial predictors, presence threshold, no-hand photos, gates."""

from __future__ import annotations

import numpy as np
import pytest

from handsynth.micro.yardsticks import (
    at_least,
    at_most,
    centre_keypoints,
    mse_2d,
    pck,
    presence_threshold,
    wrist_mse_3d_cm2,
)


def test_pck_counts_joints_within_a_tenth_of_the_box_side():
    gt = np.zeros((2, 21, 2))
    pred = gt.copy()
    pred[0, :10, 0] = 0.9  # inside 0.1 * 10
    pred[0, 10:, 0] = 1.1  # outside
    pred[1] += 5.0
    boxes = np.array([[0, 0, 10, 4], [0, 0, 10, 4]], np.float64)
    assert pck(pred, gt, boxes) == pytest.approx([10 / 21, 0.0])
    # the box's longer side, whichever it is: a tall box scales by its height
    tall = np.array([[0, 0, 4, 10], [0, 0, 4, 10]], np.float64)
    assert pck(pred, gt, tall) == pytest.approx([10 / 21, 0.0])


def test_centre_predictor_and_mse_2d_match_their_definitions():
    gt = np.array([[[0.0, 0.0]] * 21, [[64.0, 64.0]] * 21])
    centre = centre_keypoints(gt, 64, 64)
    assert centre.shape == gt.shape and np.all(centre == 32.0)
    assert mse_2d(centre, gt) == pytest.approx(2 * 32.0**2)  # squared distance summed over x, y


def test_wrist_predictor_error_is_the_root_relative_spread_in_cm2():
    joints = np.zeros((1, 21, 3))
    joints[0, 1:, 0] = 0.01  # 20 joints 1 cm from the wrist
    assert wrist_mse_3d_cm2(joints) == pytest.approx(20 / 21)


def test_presence_threshold_leaves_the_asked_false_positive_rate_on_its_split():
    conf = np.linspace(0, 1, 101)
    thr = presence_threshold(conf, 0.1)
    assert (conf >= thr).mean() == pytest.approx(0.1, abs=0.011)


def test_presence_threshold_with_hands_sits_midway_in_the_gap():
    no_hand = np.linspace(0.01, 0.03, 101)  # 95 % quantile 0.029
    hands = np.linspace(0.41, 0.81, 101)  # 5 % quantile 0.43
    assert presence_threshold(no_hand, 0.05, hands) == pytest.approx((0.029 + 0.43) / 2)
    # overlapping distributions: no gap, the no-hand tail alone
    assert presence_threshold(no_hand, 0.05, np.full(5, 0.02)) == presence_threshold(no_hand, 0.05)


def test_gates_pass_fail_and_not_measured():
    assert at_least("x", 3.1, 3.0).passed is True and at_least("x", 2.9, 3.0).passed is False
    assert at_most("y", 0.05, 0.1).passed is True and at_most("y", 0.2, 0.1).passed is False
    # a value on the threshold passes
    assert at_least("x", 3.0, 3.0).passed is True and at_most("y", 0.1, 0.1).passed is True
    assert at_least("z", None, 1.0).passed is None and at_least("z", float("nan"), 1.0).passed is None


def test_no_hand_photos_are_records_without_hands_captioned_as_empty(tmp_path):
    from handsynth.data import read_dataset
    from handsynth.micro.empty import render_empty

    samples = read_dataset(render_empty("wild", 3, 32, 0, tmp_path / "empty"))
    assert len(samples) == 3 and all(not s.hands for s in samples)
    assert all("hand" not in s.prompt or "no hand" in s.prompt for s in samples)
    assert all((tmp_path / "empty" / s.file_name).exists() for s in samples)


def test_readback_scores_a_perfect_reader_above_and_a_constant_one_at_chance(tmp_path, micro_run):
    """Gate (b3)'s yardstick: kappa 1 for a reader that reads every image right, <= 0 for one that
    always answers the same label (the v2 full runs' feature extractor read real photos at kappa <= 0.08)."""
    import argparse

    import gates  # benchmarks/micro/gates.py (on sys.path through the micro_run fixture)

    from handsynth.data import read_dataset
    from handsynth.eval.keypoints2d import Detection
    from handsynth.micro.reader import gesture_group
    from handsynth.world.cli import config_from_args, register
    from handsynth.world.dataset import render_world

    p = argparse.ArgumentParser()
    register(p.add_subparsers(dest="command"))
    args = p.parse_args(
        ["world", "render", "--domain", "wild", "--size", "32", "--seed", "0", "--n", "8", "--out", "x"]
    )
    render_world(config_from_args(args), 8, tmp_path / "d", workers=1)
    recs = [s for s in read_dataset(tmp_path / "d") if s.file_name]
    truth = {
        "side": [s.hands[0].side for s in recs],
        "gesture": [gesture_group(np.asarray(s.hands[0].joints_3d)) for s in recs],
    }

    class Detector:  # the image's index as its keypoints, so the reader can look the truth up
        def detect_batch(self, images):
            return [[Detection(np.full((21, 2), float(i)), 1.0)] for i in range(len(images))]

    class Reader:
        def __init__(self, perfect: bool):
            self.perfect = perfect

        def read(self, keypoints):
            assert keypoints.shape == (len(recs), 21, 2)
            idx = keypoints[:, 0, 0].astype(int)
            return {k: [v[i] if self.perfect else "left" for i in idx] for k, v in truth.items()}

    perfect = gates.readback(Reader(True), Detector(), tmp_path / "d")
    constant = gates.readback(Reader(False), Detector(), tmp_path / "d")
    assert perfect["side"][0] == 1.0 and perfect["gesture"][0] == 1.0
    if len(set(truth["side"])) > 1:  # a constant answer is at best the majority rate
        assert perfect["side"][2] == 1.0 and constant["side"][2] <= 0.0
    assert constant["gesture"][0] == 0.0 and constant["gesture"][3] == len(recs)
