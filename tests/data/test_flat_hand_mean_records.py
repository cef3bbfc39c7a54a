"""Records whose ``hand_pose`` is absolute (``source.flat_hand_mean`` true, as HO3D imports are) keep their
hand through every stage that re-poses it: ``render``, ``poses views`` and ``world render --poses``.

Each stage used to pose such hands with the mean pose added a second time: render refused them (joints
10+ mm off), novel views and world photos silently relabelled another articulation. The references
here are the fixture's own truth (joints and tight boxes from the generating parameters) and rigid-motion
invariants computed with numpy, never the stages' own posing.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures.ho3d import write_ho3d
from PIL import Image

from handsynth.cli import main
from handsynth.data import read_dataset
from handsynth.importers import PrepareOptions, prepare


def _imported(tmp_path, mano_dir) -> tuple[list, dict]:
    root = tmp_path / "HO3D"
    truth = write_ho3d(root, mano_dir)
    prepare("ho3d", PrepareOptions(root=root, out=tmp_path / "ho3d", mano_dir=mano_dir, progress=False))
    records = read_dataset(tmp_path / "ho3d")
    assert records and all(r.source["flat_hand_mean"] is True for r in records)
    return records, truth


def _kabsch_residual(a: np.ndarray, b: np.ndarray) -> float:
    """Largest distance left after the best rigid motion of ``a`` onto ``b`` (metres)."""
    ca, cb = a - a.mean(0), b - b.mean(0)
    u, _, vt = np.linalg.svd(ca.T @ cb)
    d = np.sign(np.linalg.det(u @ vt))
    R = (u * [1.0, 1.0, d]) @ vt
    return float(np.linalg.norm(ca @ R - cb, axis=1).max())


def test_render_draws_an_absolute_pose_hand_where_its_labels_are(tmp_path, mano_dir):
    records, truth = _imported(tmp_path, mano_dir)
    args = ["render", "--in", str(tmp_path / "ho3d"), "--out", str(tmp_path / "r"), "--maps", "seg",
            "--no-local", "--no-objects", "--mano-dir", str(mano_dir)]  # fmt: skip
    assert main(args) == 0
    for r in read_dataset(tmp_path / "r"):
        seg = np.asarray(Image.open(tmp_path / "r" / r.conditions["seg"]))
        ys, xs = np.nonzero(seg == 1)
        # the tight box of the true vertices; the partial stand-in mesh covers pixel centres to ~2 px
        x, y, w, h = truth[f"train/ABF10/{r.id[-4:]}"]["bbox"]
        np.testing.assert_allclose(
            [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], [x, y, x + w, y + h], atol=2.5
        )


def test_novel_views_of_an_absolute_pose_hand_move_it_rigidly(tmp_path, mano_dir):
    records, truth = _imported(tmp_path, mano_dir)
    poses = tmp_path / "grasping.jsonl"
    lines = []
    for r in records:
        d = r.to_dict()
        d.pop("file_name", None)
        lines.append(json.dumps({**d, "grasping": True}))
    poses.write_text("\n".join(lines) + "\n")
    args = ["poses", "views", "--in", str(poses), "--out", str(tmp_path / "v"), "--n-per-pose", "2",
            "--mano-dir", str(mano_dir)]  # fmt: skip
    assert main(args) == 0
    views = read_dataset(tmp_path / "v")
    assert len(views) == 4
    for v in views:
        original = truth[f"train/ABF10/{v.source['handbooster']['views']['from'][-4:]}"]["joints"]
        assert _kabsch_residual(np.asarray(v.hands[0].joints_3d), original) < 1e-4
        uvw = np.asarray(v.hands[0].joints_3d) @ np.asarray(v.K).T
        np.testing.assert_allclose(v.hands[0].joints_2d, uvw[:, :2] / uvw[:, 2:], atol=1e-6)


def test_world_photo_of_an_absolute_pose_record_keeps_its_joints(tmp_path, mano_dir):
    records, _ = _imported(tmp_path, mano_dir)
    size, f = 128, 250.0
    K = np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1]])
    lines = []
    for r in records[:1]:  # the same hand seen by a square camera, as --poses needs
        d = r.to_dict()
        for key in ("file_name", "objects"):
            d.pop(key, None)
        d.update(width=size, height=size, camera={"K": K.tolist()})
        j = np.asarray(r.hands[0].joints_3d)
        uv = (j @ K.T)[:, :2] / j[:, 2:]
        lo, hi = uv.min(0) - 4, uv.max(0) + 4
        d["hands"][0].update(joints_2d=uv.tolist(), bbox=[*lo, *(hi - lo)])
        lines.append(json.dumps(d))
    (tmp_path / "square").mkdir()
    (tmp_path / "square" / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    args = ["world", "render", "--domain", "lab", "--n", "1", "--size", str(size), "--poses",
            str(tmp_path / "square"), "--hand-model", "mano", "--mano-dir", str(mano_dir), "--maps", "",
            "--no-local", "--out", str(tmp_path / "w")]  # fmt: skip
    assert main(args) == 0
    (photo,) = read_dataset(tmp_path / "w")
    np.testing.assert_allclose(photo.hands[0].joints_3d, records[0].hands[0].joints_3d, atol=1e-5)


def test_recon_ground_truth_vertices_of_an_absolute_pose_hand_are_its_true_mesh(tmp_path, mano_dir):
    """recon evaluate and filter pose each record's vertices (MPVPE, PA-MPVPE, F-scores) with the
    estimator's hand models, built with the mean pose; an absolute pose got that mean a second time."""
    from fixtures.mano_standin import tight_bbox

    from handsynth.hand import load_hand_model
    from handsynth.recon.evaluate import gt_vertices

    records, truth = _imported(tmp_path, mano_dir)
    models = {s: load_hand_model("mano", side=s, model_dir=mano_dir) for s in ("right", "left")}
    verts = gt_vertices(records, models, "mano")
    for r in records:
        box = tight_bbox(verts[(r.id, "right")], np.asarray(r.K))
        np.testing.assert_allclose(box, truth[f"train/ABF10/{r.id[-4:]}"]["bbox"], atol=0.05)


def test_evaluate_recon_poses_the_vertices_of_an_absolute_pose_record(tmp_path, mano_dir):
    """`evaluate recon` reads record vertices through the hand model each record names; an absolute pose
    posed with the mean added failed the 2 mm joint check, so HO3D records lost every vertex metric."""
    from fixtures.mano_standin import tight_bbox

    from handsynth.eval.recon_io import read_hands

    records, truth = _imported(tmp_path, mano_dir)
    notes: list[str] = []
    hands = read_hands(tmp_path / "ho3d", vertices=True, mano_dir=mano_dir, notes=notes)
    assert hands and all(h.verts is not None for h in hands), notes
    K = {r.id: np.asarray(r.K) for r in records}
    for h in hands:
        box = tight_bbox(h.verts, K[h.sample_id])
        np.testing.assert_allclose(box, truth[f"train/ABF10/{h.sample_id[-4:]}"]["bbox"], atol=0.05)


def test_pose_vectors_compare_absolute_and_relative_poses_in_one_convention(tmp_path, mano_dir, capsys):
    """FPS and cross-sampling compare joint quaternions: an HO3D record (absolute pose) next to the same
    hand written relative to the mean must give the same vector, else cross-sampling weighs synthetic
    (relative) grasps against real HO3D poses in another convention."""
    import copy

    from handsynth.errors import UserError
    from handsynth.hand import load_hand_model
    from handsynth.poses.features import pose_vector

    records, _ = _imported(tmp_path, mano_dir)
    r = next(s for s in records if s.extra.get("objects"))
    mean = load_hand_model("mano", side="right", model_dir=mano_dir).hand_mean.double().numpy()
    assert np.abs(mean).max() > 0.1  # the stand-in's mean is far from zero: the check has teeth
    rel = copy.deepcopy(r)
    rel.id = r.id + "_rel"
    rel.source = {**r.source, "flat_hand_mean": False}
    rel.hands[0].hand_pose = (np.asarray(r.hands[0].hand_pose) - mean).tolist()
    np.testing.assert_allclose(pose_vector(r, hand_mean=mean), pose_vector(rel), atol=1e-12)
    with pytest.raises(UserError, match=f"record {r.id} holds an absolute hand_pose"):
        pose_vector(r)
    # the command loads the mean itself (--mano-dir); a relative and an absolute copy compare as equal
    for name, rec in (("real", r), ("syn", rel)):
        (tmp_path / "ho3d" / f"{name}.jsonl").write_text(json.dumps(rec.to_dict()) + "\n")
    out = tmp_path / "picks"
    argv = ["poses", "cross-sample", "--synthetic", str(tmp_path / "ho3d/syn.jsonl"), "--n", "1"]
    argv += ["--real", str(tmp_path / "ho3d/real.jsonl"), "--out", str(out)]
    assert main([*argv, "--mano-dir", str(mano_dir)]) == 0 and len(read_dataset(out)) == 1
    assert main([*argv, "--overwrite"]) == 2  # the mean of a MANO record needs the MANO folder
    assert "MANO_RIGHT.pkl was not found" in capsys.readouterr().err
