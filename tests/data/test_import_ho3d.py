"""HO3D importer on v2 and v3 fixture trees: OpenGL->OpenCV MANO, objects, evaluation frames, skips."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.checks import assert_resumes
from fixtures.ho3d import write_ho3d
from scipy.spatial.transform import Rotation

from handsynth.data import read_dataset
from handsynth.errors import UserError
from handsynth.importers import PrepareOptions, prepare

FLIP = np.diag([1.0, -1.0, -1.0])


@pytest.mark.parametrize("version", [2, 3])
def test_ho3d_train_records_match_the_generator(tmp_path, mano_dir, version):
    root = tmp_path / "HO3D"
    truth = write_ho3d(root, mano_dir, version=version)
    opts = PrepareOptions(
        root=root, out=tmp_path / "out", mano_dir=mano_dir, objects=tmp_path / "ycb", progress=False
    )
    summary = prepare("ho3d", opts)
    assert summary.skipped == {"frame: no hand pose (v3)": 1}
    assert summary.check.checked == 2 and summary.check.max_error_mm < 0.02
    records = read_dataset(tmp_path / "out")
    assert [r.id for r in records] == ["ho3d_train_ABF10_0000", "ho3d_train_ABF10_0001"]
    for r in records:
        t = truth[f"train/ABF10/{r.id[-4:]}"]
        (hand,) = r.hands
        assert hand.side == "right" and r.source["flat_hand_mean"] is True
        assert r.file_name.endswith(".png" if version == 2 else ".jpg") and (r.width, r.height) == (640, 480)
        np.testing.assert_allclose(r.K, t["K"])
        np.testing.assert_allclose(hand.joints_3d, t["joints"], atol=1e-5)
        assert np.asarray(hand.joints_3d)[:, 2].min() > 0.3  # OpenCV: in front means z > 0
        np.testing.assert_allclose(hand.hand_pose, t["hp"], atol=1e-12)
        np.testing.assert_allclose(hand.bbox, t["bbox"], atol=0.02)
        (obj,) = r.extra["objects"]
        assert obj["name"] == "006_mustard_bottle"
        assert obj["mesh"] == str((tmp_path / "ycb" / "006_mustard_bottle" / "textured_simple.obj").resolve())
        R = FLIP @ Rotation.from_rotvec(t["obj_rot"].ravel()).as_matrix()
        np.testing.assert_allclose(np.asarray(obj["pose"]), np.c_[R, FLIP @ t["obj_trans"]], atol=1e-12)
        assert r.extra["sequence"] == {"id": "train/ABF10", "frame": int(r.id[-4:])}


def test_ho3d_evaluation_frames_are_unlabelled(tmp_path, mano_dir):
    root = tmp_path / "HO3D"
    truth = write_ho3d(root, mano_dir)
    # No MANO needed for the evaluation split: it holds no hand pose.
    prepare("ho3d", PrepareOptions(root=root, out=tmp_path / "out", split="evaluation", progress=False))
    records = read_dataset(tmp_path / "out")
    assert [r.id for r in records] == ["ho3d_evaluation_SM1_0000", "ho3d_evaluation_SM1_0001"]
    for r in records:
        t = truth[f"evaluation/SM1/{r.id[-4:]}"]
        assert r.hands == []
        (u,) = r.extra["unlabelled_hands"]
        x0, y0, x1, y1 = t["box"]
        assert u["side"] == "right"
        np.testing.assert_allclose(u["bbox"], [x0, y0, x1 - x0, y1 - y0])
        np.testing.assert_allclose(u["root_3d"], t["joints"][0], atol=1e-7)


def test_ho3d_missing_meta_is_named_and_rerun_resumes(tmp_path, mano_dir):
    root = tmp_path / "HO3D"
    write_ho3d(root, mano_dir)
    opts = dict(root=root, out=tmp_path / "out", mano_dir=mano_dir, progress=False)
    assert_resumes("ho3d", **opts)
    (root / "train" / "ABF10" / "meta" / "0000.pkl").unlink()
    with pytest.raises(UserError, match=r"train/ABF10/meta/0000\.pkl is missing.*train,evaluation"):
        prepare("ho3d", PrepareOptions(**{**opts, "out": tmp_path / "other"}))
    assert not (tmp_path / "other").exists()


def test_recon_predict_accepts_unlabelled_hands(tmp_path, mano_dir):
    """``recon predict`` must reach the evaluation frames' hands (side + box), which have no labels."""
    from handsynth.recon.predict import predict_dataset

    root = tmp_path / "HO3D"
    truth = write_ho3d(root, mano_dir)
    prepare("ho3d", PrepareOptions(root=root, out=tmp_path / "out", split="evaluation", progress=False))

    class Recorder:
        def predict_hands(self, images, boxes, sides, Ks, progress=True):
            self.shapes = [images[i].size for i in range(len(images))]
            return {"boxes": np.asarray(boxes), "sides": list(sides)}

    keys, out = predict_dataset(Recorder(), tmp_path / "out", progress=False)
    assert keys == [("ho3d_evaluation_SM1_0000", "right"), ("ho3d_evaluation_SM1_0001", "right")]
    x0, y0, x1, y1 = truth["evaluation/SM1/0001"]["box"]
    np.testing.assert_allclose(out["boxes"][1], [x0, y0, x1 - x0, y1 - y0])


def test_ho3d_tips_from_honnotate_vertices_pass_the_strict_check(tmp_path, mano_dir):
    """HO3D's handJoints3D fingertips are MANO vertices 728, 353, 442, 576, 694 (HOnnotate's MANO layer,
    shreyashampali/HOnnotate optimization/manoTF/batch_mano.py), not smplx's 744, 320, 443, 554, 671:
    the check compares the 16 kinematic joints, so correct labels pass ``--strict``."""
    import pickle

    root = tmp_path / "HO3D"
    write_ho3d(root, mano_dir)
    opts = PrepareOptions(root=root, out=tmp_path / "out", mano_dir=mano_dir, strict=True, progress=False)
    summary = prepare("ho3d", opts)
    assert summary.check.checked == 2 and not summary.check.failed and summary.check.max_error_mm < 0.02
    # The official toolkit's reading (vis_HO3D.py): jointsMapManoToSimple to thumb-to-little order, then
    # coordChangeMat = diag(1, -1, -1) out of the OpenGL camera frame.
    mano_to_simple = [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20]
    kinematic = [i for i in range(21) if i not in (4, 8, 12, 16, 20)]
    for r in read_dataset(tmp_path / "out"):
        with open(root / "train" / "ABF10" / "meta" / f"{r.id[-4:]}.pkl", "rb") as f:
            meta = pickle.load(f, encoding="latin1")
        official = np.asarray(meta["handJoints3D"])[mano_to_simple] @ FLIP.T
        np.testing.assert_allclose(
            np.asarray(r.hands[0].joints_3d)[kinematic], official[kinematic], atol=1e-5
        )
