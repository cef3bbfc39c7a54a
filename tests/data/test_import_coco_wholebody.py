"""COCO-WholeBody importer: 2D-only hands into hands_2d, body keypoints, size filter, errors, resume."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.coco_wholebody import write_coco_wholebody

from handsynth.data import read_dataset
from handsynth.data.importers import PrepareOptions, prepare
from handsynth.errors import UserError


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
