"""The reconstruction model with the real OpenHand model (handsynth.hand): the assumptions it relies on
and the CLI chain toy-data -> train -> eval without any stand-in."""

from __future__ import annotations

import json

import pytest
import torch

from handsynth.cli import main
from handsynth.hand import load_hand_model
from handsynth.recon.model import hand_forward
from handsynth.recon.rotation import axis_angle_to_matrix, mirror_axis_angle


@pytest.fixture(scope="module")
def models():
    return {side: load_hand_model("openhand", side=side) for side in ("right", "left")}


def _params(b: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, 3, generator=g),
        0.3 * torch.randn(b, 45, generator=g),
        0.5 * torch.randn(b, 10, generator=g),
        torch.randn(b, 3, generator=g),
    )


@pytest.mark.parametrize("side", ["right", "left"])
def test_rotating_about_the_wrist_equals_the_models_global_orient(models, side) -> None:
    go, pose, betas, transl = _params()
    out = models[side](global_orient=go, hand_pose=pose, betas=betas, transl=transl)
    joints, verts = hand_forward(models[side], axis_angle_to_matrix(go), pose, betas)
    root = out.joints[:, :1]
    torch.testing.assert_close(joints, out.joints - root, atol=1e-6, rtol=0)
    torch.testing.assert_close(verts, out.vertices - root, atol=1e-6, rtol=0)


def test_left_model_is_the_mirrored_right_model(models) -> None:
    go, pose, betas, _ = _params(seed=1)
    zero = torch.zeros(3, 3)
    left = models["left"](global_orient=go, hand_pose=pose, betas=betas, transl=zero)
    right = models["right"](
        global_orient=mirror_axis_angle(go), hand_pose=mirror_axis_angle(pose), betas=betas, transl=zero
    )
    m = torch.tensor([-1.0, 1.0, 1.0])
    torch.testing.assert_close(left.joints, right.joints * m, atol=1e-6, rtol=0)
    torch.testing.assert_close(left.vertices, right.vertices * m, atol=1e-6, rtol=0)


def test_cli_chain_with_openhand(models, tmp_path, capsys) -> None:
    data = tmp_path / "toy"
    assert main(["recon", "toy-data", "--out", str(data), "--n", "4", "--size", "64"]) == 0
    run = tmp_path / "run"
    argv = ["recon", "train", "--in", str(data), "--out", str(run), "--steps", "2", "--batch-size", "4"]
    argv += ["--width", "0.125", "--img-size", "32", "--hidden", "16", "--num-workers", "0", "--no-augment"]
    assert main(argv) == 0
    out = tmp_path / "eval"
    assert main(["recon", "eval", "--checkpoint", str(run), "--in", str(data), "--out", str(out)]) == 0
    s = json.loads((out / "metrics.json").read_text())["summary"]
    assert s["MPJPE"] > 0 and s["MPVPE"] > 0 and s["PA-MPVPE"] <= s["MPVPE"] + 1e-6
    xyz, verts = json.loads((out / "pred.json").read_text())
    n_verts = models["right"](
        **dict(zip(("global_orient", "hand_pose", "betas", "transl"), _params(1)))
    ).vertices
    assert len(xyz) == 4 and len(verts[0]) == n_verts.shape[1]
