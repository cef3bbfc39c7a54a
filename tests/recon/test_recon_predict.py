"""Prediction: left hands are un-mirrored, camera-frame roots, FreiHAND pred.json, eval integration."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from recon_helpers import StandInHand, StandInLeft, make_dataset, tiny_config, use_standin_hand_models
from torch import nn

from handsynth.cli import main
from handsynth.data.folder import read_dataset
from handsynth.recon.data import HandCrops, square_crop
from handsynth.recon.model import ModelConfig, ReconModel
from handsynth.recon.predict import ReconEstimator, root_from_camera
from handsynth.recon.rotation import matrix_to_rot6d
from handsynth.recon.train import train


class FixedNet(nn.Module):
    """Stands in for the trained network: always outputs the given parameters."""

    def __init__(self, item: dict, cam: torch.Tensor) -> None:
        super().__init__()
        self.item, self.cam = item, cam

    def forward(self, images: torch.Tensor) -> dict:
        b = images.shape[0]
        rep = {k: self.item[k][None].expand(b, *self.item[k].shape) for k in ("rotmat", "hand_pose", "betas")}
        return {**rep, "rot6d": matrix_to_rot6d(rep["rotmat"]), "cam": self.cam[None].expand(b, 3)}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    return make_dataset(tmp_path_factory.mktemp("recon_pred") / "ds", 6, seed=5)


def test_predict_unmirrors_left_hands_exactly(data) -> None:
    samples = read_dataset(data)
    ds = HandCrops(samples, data, size=64)
    i = next(k for k, (si, _) in enumerate(ds.items) if samples[si].hands[0].side == "left")
    hand, sample = samples[i].hands[0], samples[i]
    model = ReconModel(ModelConfig(width=0.125, img_size=64, hidden=16), StandInHand())
    model.net = FixedNet(ds[i], torch.tensor([8.0, 0.1, -0.2]))  # the mirrored-crop ground truth
    est = ReconEstimator(model)
    img = np.zeros((sample.height, sample.width, 3), np.uint8)
    out = est.predict_hands([img], [hand.bbox], ["left"])
    rel = np.asarray(hand.joints_3d) - np.asarray(hand.joints_3d)[0]
    np.testing.assert_allclose(out["joints"][0], rel, atol=1e-5)
    np.testing.assert_allclose(out["global_orient"][0], hand.global_orient, atol=1e-5)
    np.testing.assert_allclose(out["hand_pose"][0], hand.hand_pose, atol=1e-5)
    t = lambda x: torch.tensor([x], dtype=torch.float32)  # noqa: E731
    left = StandInLeft()(t(hand.global_orient), t(hand.hand_pose), t(hand.betas), t([0.0, 0.0, 0.0]))
    np.testing.assert_allclose(out["verts"][0], (left.vertices - left.joints[:, :1])[0].numpy(), atol=1e-5)
    # with intrinsics: camera frame, and transl reproduces the hand through the left model
    full = est.predict_hands([img], [hand.bbox], ["left"], Ks=[sample.K])
    placed = StandInLeft()(
        t(hand.global_orient), t(hand.hand_pose), t(hand.betas), torch.tensor(full["transl"])
    )
    np.testing.assert_allclose(placed.joints[0].numpy(), full["joints"][0], atol=1e-5)
    np.testing.assert_allclose(full["joints"][0, 0], full["root"][0], atol=1e-6)
    assert est.predict([img], [hand.bbox]).shape == (1, 21, 3)


@pytest.mark.parametrize("mirror", [False, True])
def test_root_from_camera_is_exact_for_a_fronto_parallel_hand(mirror: bool) -> None:
    """For points at one depth weak perspective is exact, so the root is recovered exactly."""
    K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    root = np.array([0.04, -0.03, 0.55])
    rel = np.random.default_rng(0).uniform(-0.08, 0.08, (21, 3)) * [1, 1, 0]
    rel[0] = 0
    pts = rel + root
    uv = (pts @ K.T)[:, :2] / pts[:, 2:]
    crop = square_crop([*uv.min(0), *(uv.max(0) - uv.min(0))], 1.5, 128, mirror=mirror)
    n = crop.to_norm(uv)
    x = rel[:, 0] * (-1 if mirror else 1)  # the network sees the mirrored hand
    s, t = np.polyfit(x, n[:, 0], 1)
    np.testing.assert_allclose(n, s * np.stack([x, rel[:, 1]], 1) + n[0], atol=1e-12)  # exactly weak-persp.
    np.testing.assert_allclose(root_from_camera(crop, np.array([s, *n[0]]), K), root, rtol=1e-9)


@pytest.fixture(scope="module")
def checkpoint(data, tmp_path_factory: pytest.TempPathFactory):
    run = tmp_path_factory.mktemp("recon_ck") / "run"
    train(tiny_config([str(data)], run, steps=4), hand_model=StandInHand(), progress=False)
    return run


@pytest.fixture
def standin_models(monkeypatch):
    use_standin_hand_models(monkeypatch)


def test_cli_predict_writes_freihand_layout(data, checkpoint, tmp_path, standin_models, capsys) -> None:
    out = tmp_path / "pred.json"
    assert (
        main(["recon", "predict", "--checkpoint", str(checkpoint), "--in", str(data), "--out", str(out)]) == 0
    )
    xyz, verts = json.loads(out.read_text())
    assert len(xyz) == len(verts) == 6
    assert np.asarray(xyz).shape == (6, 21, 3) and np.asarray(verts).shape == (6, 80, 3)
    assert np.all(np.asarray(xyz)[:, :, 2] > 0)  # camera frame: in front of the camera
    from handsynth.eval.recon_io import read_hands

    hands = read_hands(out)  # the evaluation stage's reader accepts it
    assert len(hands) == 6 and hands[0].verts.shape == (80, 3)
    assert (
        main(["evaluate", "recon", "--pred", str(out), "--gt", str(data), "--out", str(tmp_path / "ev")]) == 0
    )
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["summary"]["MPJPE"] > 0


def test_cli_eval_reports_joint_and_vertex_metrics(
    data, checkpoint, tmp_path, standin_models, capsys
) -> None:
    out = tmp_path / "ev"
    assert main(["recon", "eval", "--checkpoint", str(checkpoint), "--in", str(data), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    s = metrics["summary"]
    assert s["MPJPE"] > 0 and s["PA-MPJPE"] <= s["MPJPE"] + 1e-6 and s["MPVPE"] is not None
    assert len(metrics["per_hand"]) == 6 and (out / "report.md").exists() and (out / "pred.json").exists()


def test_estimator_plugs_into_the_eval_protocol(data, checkpoint, standin_models) -> None:
    from handsynth.eval.estimator3d import Hand3DEstimator, load_estimator

    est = load_estimator(str(checkpoint))
    assert isinstance(est, Hand3DEstimator)
    s = read_dataset(data)[0]
    img = np.zeros((s.height, s.width, 3), np.uint8)
    j = est.predict([img, img], np.array([s.hands[0].bbox] * 2))
    assert j.shape == (2, 21, 3) and np.allclose(j[:, 0], 0)


def test_bad_checkpoint_is_a_user_error_before_output(data, tmp_path, capsys) -> None:
    out = tmp_path / "pred.json"
    assert (
        main(["recon", "predict", "--checkpoint", str(tmp_path), "--in", str(data), "--out", str(out)]) == 2
    )
    assert "not a reconstruction checkpoint" in capsys.readouterr().err and not out.exists()


def test_predict_and_toy_progress_in_a_log_are_whole_lines(data, tmp_path, capsys, monkeypatch) -> None:
    """stderr captured (not a terminal), as in ``recon eval ... 2> log``: report lines, no '\\r' bar."""
    from handsynth.recon.predict import predict_dataset
    from handsynth.recon.toy import make_toy_dataset

    monkeypatch.setenv("HANDSYNTH_PROGRESS_INTERVAL", "0")
    model = ReconModel(ModelConfig(width=0.125, img_size=64, hidden=16), StandInHand())
    capsys.readouterr()
    predict_dataset(ReconEstimator(model, batch_size=4), data, progress=True)  # 6 hands: 2 batches
    make_toy_dataset(tmp_path / "toy", 3, StandInHand(), "openhand", size=32, progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err
    assert "recon predict: 2/2 (100%)" in err and "batch/s" in err
    assert "toy data: 3/3 (100%)" in err and "sample/s" in err
