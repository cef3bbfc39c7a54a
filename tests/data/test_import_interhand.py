"""InterHand2.6M importer on a fixture tree in the v1.0 layout: world->camera MANO, two hands, skips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures.interhand import CAMS, SEQ, write_interhand

from handsynth.cli import main
from handsynth.data import read_dataset
from handsynth.data.importers import PrepareOptions, prepare
from handsynth.errors import UserError


def test_interhand_records_match_the_generator(tmp_path, mano_dir, capsys):
    root = tmp_path / "InterHand2.6M"
    truth = write_interhand(root, mano_dir, split="val")
    args = ["prepare", "--dataset", "interhand26m", "--root", str(root), "--out", str(tmp_path / "out"),
            "--split", "val", "--mano-dir", str(mano_dir)]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "1 frame: hand_type_valid=0" in out and "1 hand: no MANO fit" in out
    records = read_dataset(tmp_path / "out")
    expected = [(cam, f) for cam in CAMS for f in (20004, 20010)]
    assert [r.id for r in records] == [f"ih26m_val_c0_{SEQ}_cam{c}_{f}" for c, f in expected]
    for r, key in zip(records, expected, strict=True):
        assert [h.side for h in r.hands] == (["right", "left"] if key[1] == 20004 else ["right"])
        assert r.source["split"] == "val" and r.source["flat_hand_mean"] is False
        assert r.extra["sequence"] == {"id": f"Capture0/{SEQ}/cam{key[0]}", "frame": key[1]}
        assert (r.width, r.height) == (334, 512)
        for hand in r.hands:
            t = truth[key][hand.side]
            np.testing.assert_allclose(r.K, t["K"], atol=1e-9)
            np.testing.assert_allclose(hand.joints_3d, t["joints"], atol=1e-5)
            np.testing.assert_allclose(hand.hand_pose, t["hp"], atol=1e-12)
            np.testing.assert_allclose(hand.bbox, t["bbox"], atol=0.02)
            assert np.asarray(hand.joints_3d)[:, 2].min() > 0.5  # in front of the camera, metres
    report = json.loads((tmp_path / "out" / "prepare_report.json").read_text())
    assert report["consistency_check"]["hands_checked"] == 6
    assert report["consistency_check"]["max_error_mm"] < 0.02
    assert report["skipped"] == {
        "frame: hand_type_valid=0": 1,
        "frame: no hand left": 1,
        "hand: no MANO fit": 1,
    }


def test_interhand_missing_annotation_is_named(tmp_path, mano_dir):
    root = tmp_path / "InterHand2.6M"
    write_interhand(root, mano_dir)
    (root / "annotations" / "train" / "InterHand2.6M_train_MANO_NeuralAnnot.json").unlink()
    with pytest.raises(
        UserError, match=r"InterHand2\.6M_train_MANO_NeuralAnnot\.json is missing.*images/\{split\}"
    ):
        prepare(
            "interhand26m", PrepareOptions(root=root, out=tmp_path / "out", mano_dir=mano_dir, progress=False)
        )
    assert not (tmp_path / "out").exists()


def test_interhand_missing_camera_key_is_named(tmp_path, mano_dir):
    root = tmp_path / "InterHand2.6M"
    write_interhand(root, mano_dir)
    cam_file = root / "annotations" / "train" / "InterHand2.6M_train_camera.json"
    cams = json.loads(cam_file.read_text())
    del cams["0"]["camrot"][CAMS[0]]
    cam_file.write_text(json.dumps(cams))
    with pytest.raises(UserError, match=rf"key '{CAMS[0]}' in .*camera\.json camrot\[0\] is missing"):
        prepare(
            "interhand26m", PrepareOptions(root=root, out=tmp_path / "out", mano_dir=mano_dir, progress=False)
        )


def test_interhand_rerun_skips_finished_records(tmp_path, mano_dir):
    root = tmp_path / "InterHand2.6M"
    write_interhand(root, mano_dir)
    opts = dict(root=root, out=tmp_path / "out", mano_dir=mano_dir, progress=False)
    assert (
        prepare("interhand26m", PrepareOptions(**opts, limit=3)).written == 3
    )  # skipped frames do not count
    again = prepare("interhand26m", PrepareOptions(**opts))
    assert (again.written, again.present) == (1, 3)
    assert len(read_dataset(tmp_path / "out")) == 4


def test_interhand_subset_reads_the_human_annotated_files(tmp_path, mano_dir):
    root = tmp_path / "InterHand2.6M"
    write_interhand(root, mano_dir)
    (root / "annotations" / "train").rename(root / "annotations" / "human_annot")
    opts = dict(root=root, mano_dir=mano_dir, progress=False)
    summary = prepare("interhand26m", PrepareOptions(**opts, out=tmp_path / "h", subset="H"))
    assert summary.written == 4
    assert {r.source["subset"] for r in read_dataset(tmp_path / "h")} == {"H"}
    with pytest.raises(UserError, match=r"annotations/train/InterHand2\.6M_train_data\.json is missing"):
        prepare("interhand26m", PrepareOptions(**opts, out=tmp_path / "all"))
