"""COCO-WholeBody importer: 2D-only hands into hands_2d, body keypoints, size filter, errors, resume."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.coco_wholebody import write_coco_wholebody

from handsynth.data import read_dataset
from handsynth.errors import UserError
from handsynth.importers import PrepareOptions, prepare


def test_coco_wholebody_hands_2d_match_the_annotations(tmp_path):
    root = tmp_path / "coco"
    truth = write_coco_wholebody(root)
    opts = PrepareOptions(root=root, out=tmp_path / "out", split="val", progress=False)
    summary = prepare("coco-wholebody", opts)  # no MANO needed: there is no 3D
    assert summary.skipped == {"hand: smaller than --min-hand-size": 1, "person: no valid hand": 1}
    records = read_dataset(tmp_path / "out")
    assert [r.id for r in records] == ["cocowb_val_1", "cocowb_val_3"]
    for r in records:
        t = truth[int(r.id.split("_")[-1])]
        assert r.hands == [] and r.source["camera"] == "nominal"
        sides = [h["side"] for h in r.extra["hands_2d"]]
        assert sides == (["left", "right"] if r.id.endswith("_1") else ["right"])
        for h in r.extra["hands_2d"]:
            kpts = np.asarray(t[h["side"]]["kpts"]).reshape(21, 3)
            np.testing.assert_allclose(h["joints_2d"], kpts[:, :2])
            np.testing.assert_allclose(h["visibility"], kpts[:, 2])
            assert h["bbox"] == t[h["side"]]["box"]
        np.testing.assert_allclose(r.extra["body"]["keypoints_2d"], np.reshape(t["keypoints"], (17, 3)))
    assert (records[0].width, records[0].height) == (640, 426)
    # A smaller threshold keeps person 2's 20-px left hand.
    small = prepare(
        "coco-wholebody",
        PrepareOptions(root=root, out=tmp_path / "small", split="val", min_hand_size=16, progress=False),
    )
    assert small.written == 3


def test_coco_wholebody_missing_annotation_and_resume(tmp_path):
    root = tmp_path / "coco"
    write_coco_wholebody(root)
    with pytest.raises(UserError, match=r"coco_wholebody_train_v1\.0\.json is missing"):
        prepare("coco-wholebody", PrepareOptions(root=root, out=tmp_path / "out", progress=False))
    opts = dict(root=root, out=tmp_path / "out", split="val", progress=False)
    assert prepare("coco-wholebody", PrepareOptions(**opts, limit=1)).written == 1
    again = prepare("coco-wholebody", PrepareOptions(**opts))
    assert (again.written, again.present) == (1, 1)


def test_coco_wholebody_fits_make_full_hands(tmp_path, mano_dir):
    """--fits: a fitted side becomes a 3D hand posed by MANO with the fit's camera; the other stays 2D."""
    import json

    from fixtures.mano_standin import pose_hand

    from handsynth.pinhole import project

    root = tmp_path / "coco"
    write_coco_wholebody(root)
    rng = np.random.default_rng(0)
    K = [[500.0, 0, 320], [0, 500.0, 213], [0, 0, 1]]
    fit = {
        "global_orient": rng.normal(0, 0.3, 3).tolist(),
        "hand_pose": rng.normal(0, 0.2, 45).tolist(),
        "betas": rng.normal(0, 0.5, 10).tolist(),
        "transl": [0.02, -0.01, 0.6],
    }
    fits = tmp_path / "fits.json"
    fits.write_text(json.dumps({"flat_hand_mean": False, "fits": {"1": {"K": K, "right": fit}}}))
    opts = PrepareOptions(
        root=root, out=tmp_path / "out", split="val", mano_dir=mano_dir, fits=fits, progress=False
    )
    summary = prepare("coco-wholebody", opts)
    assert summary.written == 2
    rec = read_dataset(tmp_path / "out")[0]
    assert rec.id == "cocowb_val_1" and [h.side for h in rec.hands] == ["right"]
    assert [h["side"] for h in rec.extra["hands_2d"]] == ["left"]  # the unfitted side stays 2D
    _, joints = pose_hand(mano_dir, "right", False, *(np.asarray(fit[k]) for k in fit))
    np.testing.assert_allclose(rec.hands[0].joints_3d, joints, atol=1e-6)
    np.testing.assert_allclose(rec.hands[0].joints_2d, project(joints, np.asarray(K)), atol=1e-4)
    assert rec.K == K and rec.source["camera"] == "fit" and rec.source["flat_hand_mean"] is False
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"flat_hand_mean": False, "fits": {"1": {"right": {**fit, "betas": [0.0]}}}}))
    with pytest.raises(UserError, match=r"annotation 1, right: 'betas' must be 10 finite numbers"):
        prepare("coco-wholebody", PrepareOptions(root=root, out=tmp_path / "o2", split="val", fits=bad))
