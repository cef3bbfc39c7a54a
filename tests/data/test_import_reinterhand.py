"""Re:InterHand importer on a fixture tree in the authors' layout: world->camera, test captures, skips."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.checks import assert_resumes
from fixtures.reinterhand import CAM, TEST, TRAIN, write_reinterhand

from handsynth.data import read_dataset
from handsynth.data.importers import PrepareOptions, prepare
from handsynth.errors import UserError


@pytest.mark.parametrize("split", ["train", "test"])
def test_reinterhand_records_match_the_generator(tmp_path, mano_dir, split):
    root = tmp_path / "ReInterHand"
    truth = write_reinterhand(root, mano_dir)
    summary = prepare(
        "reinterhand",
        PrepareOptions(root=root, out=tmp_path / "out", split=split, mano_dir=mano_dir, progress=False),
    )
    records = read_dataset(tmp_path / "out")
    capture, frames = (TRAIN, (12, 18)) if split == "train" else (TEST, (6,))
    assert [r.id for r in records] == [f"reih_{capture}_{CAM}_{f:06d}" for f in frames]
    assert summary.skipped == ({"hand: no MANO fit": 1} if split == "train" else {})
    assert summary.check.checked == sum(len(truth[(capture, f)]) for f in frames)
    assert summary.check.max_error_mm < 0.02
    for r, f in zip(records, frames, strict=True):
        t = truth[(capture, f)]
        assert [h.side for h in r.hands] == list(t)
        assert r.extra["sequence"] == {"id": f"{capture}/{CAM}", "frame": f} and (r.width, r.height) == (
            1334,
            1024,
        )
        for hand in r.hands:
            np.testing.assert_allclose(r.K, t[hand.side]["K"])
            np.testing.assert_allclose(hand.joints_3d, t[hand.side]["joints"], atol=1e-5)
            np.testing.assert_allclose(hand.hand_pose, t[hand.side]["hp"], atol=1e-12)
            np.testing.assert_allclose(hand.bbox, t[hand.side]["bbox"], atol=0.05)


def test_reinterhand_missing_camera_file_and_resume(tmp_path, mano_dir):
    root = tmp_path / "ReInterHand"
    write_reinterhand(root, mano_dir)
    opts = dict(root=root, out=tmp_path / "out", mano_dir=mano_dir, progress=False)
    assert_resumes("reinterhand", **opts)
    (root / "data" / TRAIN / "Mugsy_cameras" / "cam_params.json").unlink()
    with pytest.raises(UserError, match=r"Mugsy_cameras/cam_params\.json is missing"):
        prepare("reinterhand", PrepareOptions(**{**opts, "out": tmp_path / "x"}))
    assert not (tmp_path / "x").exists()
