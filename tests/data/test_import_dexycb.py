"""DexYCB importer on a raw-layout fixture: PCA -> axis-angle, objects, toolkit splits, errors, resume."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.dexycb import SEQUENCES, SERIALS, SUBJECT, write_dexycb

from handsynth.data import read_dataset
from handsynth.data.importers import PrepareOptions, prepare
from handsynth.errors import UserError


@pytest.fixture(scope="module")
def tree(tmp_path_factory, mano_dir):
    root = tmp_path_factory.mktemp("dexycb") / "DexYCB"
    return root, write_dexycb(root, mano_dir)


def _opts(tmp_path, root, mano_dir, **kw):
    return PrepareOptions(root=root, out=tmp_path / "out", mano_dir=mano_dir, progress=False, **kw)


def test_dexycb_s0_train_records_match_the_generator(tmp_path, tree, mano_dir):
    root, truth = tree
    summary = prepare("dexycb", _opts(tmp_path, root, mano_dir))
    # s0 train: sequences 0-3 of every camera; sequence 1's second frame has no hand.
    assert summary.skipped == {"frame: hand absent": 8, "subject folder absent": 9}
    assert summary.check.checked == 32 and summary.check.max_error_mm < 0.02
    records = read_dataset(tmp_path / "out")
    keys = [(s, c, f) for s in SEQUENCES[:4] for c in SERIALS for f in range(2) if (s, c, f) in truth]
    assert [r.id for r in records] == [f"dexycb_{SUBJECT}_{s}_{c}_{f:06d}" for s, c, f in keys]
    for r, key in zip(records, keys, strict=True):
        t = truth[key]
        (hand,) = r.hands
        assert hand.side == t["side"] and r.source["flat_hand_mean"] is False and r.source["setup"] == "s0"
        np.testing.assert_allclose(r.K, t["K"])
        np.testing.assert_allclose(hand.hand_pose, t["hp"], atol=2e-6)  # float32 PCA coefficients
        np.testing.assert_allclose(hand.joints_3d, t["joints"], atol=2e-5)
        np.testing.assert_allclose(hand.bbox, t["bbox"], atol=0.05)
        names = [o["name"] for o in r.extra["objects"]]
        assert names == ["003_cracker_box", "006_mustard_bottle"]
        np.testing.assert_allclose(r.extra["objects"][1]["pose"], t["pose_y"][1], atol=1e-6)
        assert r.extra["objects"][0]["mesh"].endswith("models/003_cracker_box/textured_simple.obj")
        assert r.extra["sequence"] == {"id": f"{SUBJECT}/{key[0]}/{key[1]}", "frame": key[2]}


def test_dexycb_split_membership(tmp_path, tree, mano_dir):
    root, _ = tree
    val = prepare("dexycb", _opts(tmp_path, root, mano_dir, split="val"))
    assert val.written == 8
    assert {r.extra["sequence"]["id"].split("/")[1] for r in read_dataset(tmp_path / "out")} == {SEQUENCES[4]}
    with pytest.raises(UserError, match="20200928-subject-07 is missing"):  # s1 val = subject index 6 only
        prepare("dexycb", _opts(tmp_path, root, mano_dir, split="val", setup="s1", limit=1))
    s1 = prepare(
        "dexycb",
        PrepareOptions(root=root, out=tmp_path / "s1", mano_dir=mano_dir, setup="s1", progress=False),
    )
    assert s1.written == 40  # s1 train holds subject 1's every sequence


def test_dexycb_missing_files_and_resume(tmp_path, tree, mano_dir):
    root, _ = tree
    assert prepare("dexycb", _opts(tmp_path, root, mano_dir, limit=5)).written == 5
    again = prepare("dexycb", _opts(tmp_path, root, mano_dir, limit=7))
    assert (again.written, again.present) == (2, 5)
    with pytest.raises(UserError, match=r"written with different settings \(every\)"):
        prepare("dexycb", _opts(tmp_path, root, mano_dir, every=4))
    with pytest.raises(UserError, match=r"calibration/intrinsics is missing"):
        prepare(
            "dexycb",
            PrepareOptions(root=root / SUBJECT, out=tmp_path / "x", mano_dir=mano_dir, progress=False),
        )
    assert not (tmp_path / "x").exists()
