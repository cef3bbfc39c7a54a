"""Reconstruction metrics against scipy / brute force references and hand-worked cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from handsynth.errors import UserError
from handsynth.eval.recon_eval import evaluate_recon
from handsynth.eval.recon_io import HandEntry, pair_hands, read_hands
from handsynth.eval.recon_metrics import (
    auc,
    f_score,
    hand_errors,
    mrrpe,
    nearest_distances,
    pck_curve,
    right_relative_error,
    similarity_procrustes,
)


def _scipy_similarity(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Reference: scipy's orthogonal Procrustes on centred sets plus the closed-form scale."""
    mp, mg = pred.mean(0), gt.mean(0)
    x, y = pred - mp, gt - mg
    r, s = orthogonal_procrustes(x, y)
    scale = s / (x**2).sum()
    return scale * x @ r + mg


def test_procrustes_matches_scipy_on_random_data():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(8, 21, 3))
    rot = Rotation.random(8, random_state=1).as_matrix()
    pred = (
        0.7 * np.einsum("bij,bnj->bni", rot, gt)
        + rng.normal(size=(8, 1, 3))
        + 0.05 * rng.normal(size=gt.shape)
    )
    ours = similarity_procrustes(pred, gt)
    for b in range(8):
        np.testing.assert_allclose(ours[b], _scipy_similarity(pred[b], gt[b]), atol=1e-9)


def test_procrustes_recovers_exact_similarity_and_rejects_reflection():
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(1, 30, 3))
    rot = Rotation.from_euler("xyz", [10, 40, -70], degrees=True).as_matrix()
    pred = 2.5 * gt @ rot.T + np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(similarity_procrustes(pred, gt), gt, atol=1e-9)
    # A mirrored copy cannot be aligned by a proper rotation: error stays > 0 (scipy would reflect).
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    assert per_err(similarity_procrustes(mirrored, gt), gt) > 0.1
    np.testing.assert_allclose(_scipy_similarity(mirrored[0], gt[0]), gt[0], atol=1e-9)
    # ... and what it gives is the best *proper* similarity: scipy's Kabsch (align_vectors returns a
    # rotation, det +1) on the centred sets, with the closed-form scale for that rotation
    x, y = mirrored[0] - mirrored[0].mean(0), gt[0] - gt[0].mean(0)
    rot_best, _ = Rotation.align_vectors(y, x)
    rx = rot_best.apply(x)
    ref = (y * rx).sum() / (x**2).sum() * rx + gt[0].mean(0)
    np.testing.assert_allclose(similarity_procrustes(mirrored, gt)[0], ref, atol=1e-9)


def per_err(a, b):
    return float(np.linalg.norm(a - b, axis=-1).mean())


def test_a_non_finite_hand_gets_nan_errors_and_leaves_the_others_exact():
    rng = np.random.default_rng(3)
    gt = rng.normal(size=(3, 21, 3))
    pred = gt * 1.5 + 0.2  # a similarity of the truth: PA error 0
    pred[1, 4, 2] = np.nan  # before: one NaN stopped the whole batch's SVD (LinAlgError)
    err = hand_errors(pred, gt)
    assert np.isnan(err.pa_mpjpe[1]) and np.isnan(err.mpjpe[1])
    np.testing.assert_allclose(err.pa_mpjpe[[0, 2]], 0.0, atol=1e-9)
    np.testing.assert_allclose(similarity_procrustes(pred[[0, 2]], gt[[0, 2]]), gt[[0, 2]], atol=1e-9)


def test_a_non_finite_hand_with_vertices_gets_nan_errors_and_f_scores_and_leaves_the_others_exact():
    rng = np.random.default_rng(4)
    gj, gv = rng.normal(scale=0.05, size=(3, 21, 3)), rng.normal(scale=0.05, size=(3, 40, 3))
    pj, pv = gj * 1.5 + 0.2, gv * 1.5 + 0.2
    pj[1, 4, 2] = pv[1, 7, 0] = np.nan  # before: scipy's k-d tree stopped the F-scores ('must be finite')
    err = hand_errors(pj, gj, pv, gv)
    assert np.isnan(err.pa_mpvpe[1]) and np.isnan(err.mpvpe[1])
    np.testing.assert_allclose(err.pa_mpvpe[[0, 2]], 0.0, atol=1e-9)
    for t in err.f_scores:
        assert np.isnan(err.f_scores[t][1]) and np.isnan(err.rr_f_scores[t][1])
        np.testing.assert_allclose(err.f_scores[t][[0, 2]], 1.0)  # PA-aligned: every point exact
        rr = hand_errors(pj[[0, 2]], gj[[0, 2]], pv[[0, 2]], gv[[0, 2]]).rr_f_scores[t]
        np.testing.assert_allclose(err.rr_f_scores[t][[0, 2]], rr)


def test_freihand_predictions_with_nan_are_refused_naming_the_hand(tmp_path):
    xyz = np.zeros((3, 21, 3))
    xyz[2, 0, 0] = np.nan
    (tmp_path / "pred.json").write_text(json.dumps([xyz.tolist(), []]))  # json writes NaN as NaN
    with pytest.raises(UserError, match=r"pred.json: 1 of 3 hands hold NaN.*first: hand 2"):
        read_hands(tmp_path / "pred.json")


def test_translated_copy_gives_zero_root_relative_error_and_offset_gives_known_error():
    rng = np.random.default_rng(2)
    gt = rng.normal(scale=0.05, size=(3, 21, 3))
    e = hand_errors(gt + np.array([0.3, -0.1, 0.5]), gt)
    np.testing.assert_allclose(e.mpjpe, 0, atol=1e-12)
    np.testing.assert_allclose(e.pa_mpjpe, 0, atol=1e-12)
    # Moving one non-root joint by 21 mm: root-relative MPJPE = 21/21 = 1 mm.
    pred = gt.copy()
    pred[:, 5, 0] += 0.021
    e = hand_errors(pred, gt)
    np.testing.assert_allclose(e.mpjpe, 0.001, atol=1e-12)
    np.testing.assert_allclose(e.joint_err[:, 5], 0.021, atol=1e-12)


def test_vertex_errors_are_relative_to_the_joint_root():
    rng = np.random.default_rng(3)
    gj = rng.normal(scale=0.05, size=(2, 21, 3))
    gv = rng.normal(scale=0.05, size=(2, 50, 3))
    shift = np.array([0.1, 0.2, 0.3])
    e = hand_errors(gj + shift, gj, gv + shift, gv)
    np.testing.assert_allclose(e.mpvpe, 0, atol=1e-12)
    np.testing.assert_allclose(e.f_scores[0.005], 1.0)
    # Shift vertices only: 10 mm root-relative vertex error, Procrustes removes it.
    e = hand_errors(gj, gj, gv + np.array([0.01, 0, 0]), gv)
    np.testing.assert_allclose(e.mpvpe, 0.01, atol=1e-12)
    np.testing.assert_allclose(e.pa_mpvpe, 0, atol=1e-9)


def test_nearest_neighbours_and_f_score_match_brute_force():
    rng = np.random.default_rng(4)
    a = rng.normal(scale=0.01, size=(3, 40, 3))
    b = rng.normal(scale=0.01, size=(3, 55, 3))
    brute = np.array([[min(np.linalg.norm(p - q) for q in b[k]) for p in a[k]] for k in range(3)])
    np.testing.assert_allclose(nearest_distances(a, b), brute, atol=1e-9)
    for t in (0.005, 0.015):
        prec = (brute < t).mean(1)
        rec = np.array([[min(np.linalg.norm(p - q) for q in a[k]) for p in b[k]] for k in range(3)])
        rec = (rec < t).mean(1)
        expect = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-30), 0)
        np.testing.assert_allclose(f_score(a, b, t), expect)


def test_pck_and_auc_hand_worked():
    # Errors all 25 mm: PCK is 0 below 25 mm and 1 from there; AUC ~= 0.5.
    t, p = pck_curve(np.full((4, 21), 0.025))
    assert t.shape == (100,) and t[0] == 0 and t[-1] == pytest.approx(0.05)
    assert p[t < 0.025 - 1e-12].max() == 0 and p[t >= 0.025].min() == 1
    assert auc(t, p) == pytest.approx(0.5, abs=0.011)
    t, p = pck_curve(np.zeros((2, 21)))
    assert auc(t, p) == pytest.approx(1.0)


def test_auc_matches_freihand_eval_util_on_random_errors():
    """FreiHAND's EvalUtil, written out: a PCK curve per keypoint (error <= t) over linspace(0, 50 mm,
    100), averaged over keypoints, integrated with the trapezoid rule and divided by 50 mm."""
    rng = np.random.default_rng(7)
    err = rng.gamma(2.0, 0.008, size=(13, 21))  # metres, mostly within 0-50 mm, some beyond
    err[0, :5] = np.linspace(0.0, 0.05, 100)[[0, 10, 20, 30, 99]]  # exactly on thresholds
    thresholds = np.linspace(0.0, 0.05, 100)
    per_kp = np.array([[np.mean(err[:, k] <= t) for t in thresholds] for k in range(21)])
    curve = per_kp.mean(0)
    ref = float(
        sum((curve[i] + curve[i + 1]) / 2 * (thresholds[i + 1] - thresholds[i]) for i in range(99)) / 0.05
    )
    t, p = pck_curve(err)
    np.testing.assert_allclose(p, curve, atol=1e-12)
    assert auc(t, p) == pytest.approx(ref, abs=1e-12)


def test_two_hand_metrics_hand_worked():
    rng = np.random.default_rng(5)
    gr = rng.normal(scale=0.05, size=(1, 21, 3))
    gl = rng.normal(scale=0.05, size=(1, 21, 3)) + np.array([0.2, 0, 0])
    # Prediction puts the left hand 30 mm too far along z, right hand exact.
    pl = gl + np.array([0, 0, 0.03])
    np.testing.assert_allclose(mrrpe(gr, pl, gr, gl), [0.03])
    # RRVE over both hands' points: right exact, left off by 30 mm -> mean 15 mm.
    both_p = np.concatenate([gr, pl], 1)
    both_g = np.concatenate([gr, gl], 1)
    np.testing.assert_allclose(right_relative_error(gr, gr, both_p, both_g), [0.015])
    # Translating the whole prediction changes nothing.
    s = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(right_relative_error(gr + s, gr, both_p + s, both_g), [0.015])


def _record(sample_id: str, hands: list[tuple[str, np.ndarray]]) -> dict:
    return {
        "id": sample_id,
        "width": 64,
        "height": 64,
        "camera": {"K": [[50.0, 0, 32], [0, 50.0, 32], [0, 0, 1]]},
        "hands": [
            {
                "side": side,
                "model": "openhand",
                "global_orient": [0.0] * 3,
                "hand_pose": [0.0] * 45,
                "betas": [0.0] * 10,
                "transl": [0.0] * 3,
                "joints_3d": j.tolist(),
                "joints_2d": [[1.0, 1.0]] * 21,
                "bbox": [1.0, 1.0, 10.0, 10.0],
            }
            for side, j in hands
        ],
    }


def test_end_to_end_records_and_freihand(tmp_path):
    rng = np.random.default_rng(6)
    g = rng.normal(scale=0.05, size=(3, 21, 3)) + np.array([0, 0, 0.5])
    gt_recs = [_record("a", [("right", g[0]), ("left", g[1])]), _record("b", [("right", g[2])])]
    p = g.copy()
    p[1] += np.array([0.0, 0.0, 0.02])  # left hand translated 20 mm: root-relative zero, MRRPE 20 mm
    pred_recs = [_record("b", [("right", p[2])]), _record("a", [("left", p[1]), ("right", p[0])])]
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt/metadata.jsonl").write_text("\n".join(json.dumps(r) for r in gt_recs) + "\n")
    (tmp_path / "pred/metadata.jsonl").write_text("\n".join(json.dumps(r) for r in pred_recs) + "\n")
    res = evaluate_recon(pair_hands(read_hands(tmp_path / "pred"), read_hands(tmp_path / "gt")))
    assert res.summary["MPJPE"] == pytest.approx(0, abs=1e-9)
    assert res.summary["MRRPE"] == pytest.approx(20.0)
    assert res.extra["RRJE"] == pytest.approx(10.0)  # half the joints off by 20 mm
    assert res.summary["MPVPE"] is None and res.extra["num_two_hand_samples"] == 1

    verts = rng.normal(scale=0.05, size=(3, 778, 3))
    (tmp_path / "pred.json").write_text(json.dumps([g.tolist(), verts.tolist()]))
    (tmp_path / "gt.json").write_text(json.dumps([g.tolist(), (verts + 0.001).tolist()]))
    res = evaluate_recon(pair_hands(read_hands(tmp_path / "pred.json"), read_hands(tmp_path / "gt.json")))
    assert res.summary["MPVPE"] == pytest.approx(np.sqrt(3), rel=1e-6)
    assert res.summary["PA-MPVPE"] == pytest.approx(0, abs=1e-6)
    assert res.summary["F@5"] == pytest.approx(1.0) and res.summary["AUC_V"] == pytest.approx(1.0, abs=0.006)


def test_record_vertices_from_the_hand_model(tmp_path):
    import torch

    from handsynth.hand.model import load_hand_model

    rng = np.random.default_rng(7)
    params = {}
    for side, shift in (("right", 0.0), ("left", 0.12)):
        model = load_hand_model("openhand", side)
        go = rng.normal(scale=0.3, size=(1, 3))
        pose = rng.normal(scale=0.2, size=(1, 45))
        transl = np.array([[shift, 0.0, 0.6]])
        out = model(global_orient=torch.tensor(go, dtype=torch.float32), hand_pose=torch.tensor(pose, dtype=torch.float32),
                    betas=torch.zeros(1, 10), transl=torch.tensor(transl, dtype=torch.float32))  # fmt: skip
        params[side] = (go[0], pose[0], transl[0], out.joints[0].double().numpy())
    hands = []
    for side, (go, pose, transl, joints) in params.items():
        h = _record("a", [(side, joints)])["hands"][0]
        h.update(global_orient=go.tolist(), hand_pose=pose.tolist(), transl=transl.tolist())
        hands.append(h)
    rec = _record("a", [])
    rec["hands"] = hands
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt/metadata.jsonl").write_text(json.dumps(rec) + "\n")
    notes: list[str] = []
    gt = read_hands(tmp_path / "gt", notes=notes)
    assert (
        all(e.verts is not None and e.verts.shape == tuple(out.vertices.shape[1:]) for e in gt) and not notes
    )
    # Predicting the left hand 10 mm off along x: root-relative metrics stay 0, MRRPE = 10 mm, RRVE = 5 mm.
    pred = [HandEntry(e.sample_id, e.side, e.joints.copy(), e.verts.copy()) for e in gt]
    for e in pred:
        if e.side == "left":
            e.joints[:, 0] += 0.01
            e.verts[:, 0] += 0.01
    res = evaluate_recon(pair_hands(pred, gt))
    assert res.summary["MPVPE"] == pytest.approx(0, abs=1e-9) and res.summary["F@5"] == pytest.approx(1.0)
    assert res.summary["MRRPE"] == pytest.approx(10.0)
    assert res.summary["RRVE"] == pytest.approx(5.0)
    # Labels that the parameters do not reproduce get no vertices, with a note.
    rec["hands"][0]["joints_3d"] = (np.asarray(rec["hands"][0]["joints_3d"]) + 0.01).tolist()
    (tmp_path / "gt/metadata.jsonl").write_text(json.dumps(rec) + "\n")
    notes = []
    gt = read_hands(tmp_path / "gt", notes=notes)
    assert gt[0].verts is None and gt[1].verts is not None and "do not reproduce" in notes[0]


def _hand_f(pred: np.ndarray, gt: np.ndarray, t: float) -> float:
    """F-score by its definition on one point set pair: 2PR / (P + R), P and R from all pair distances."""
    d = np.linalg.norm(pred[:, None] - gt[None], axis=-1)
    precision, recall = (d.min(1) < t).mean(), (d.min(0) < t).mean()
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def test_root_relative_f_scores_match_the_formula_before_procrustes():
    # Four vertices; the prediction's hand is 2 cm off in camera space (root-relative: zero), and its
    # vertices 0, 1 are 4 mm and 10 mm off. Root-relative: P = R = 3/4 at 5 mm (vertex 1 too far),
    # 1 at 15 mm; a 2x scaled prediction stays wrong root-relative while Procrustes removes the scale.
    gj = np.zeros((1, 21, 3))
    gj[0, 1:, 0] = np.linspace(0.01, 0.08, 20)
    gv = np.array([[[0.0, 0.05, 0], [0.0, 0.1, 0], [0.1, 0.0, 0], [0.1, 0.1, 0]]])
    pv = gv + np.array([[[0.004, 0, 0], [0, 0, 0.010], [0, 0, 0], [0, 0, 0]]])
    shift = np.array([0.0, 0.0, 0.02])
    e = hand_errors(gj + shift, gj, pv + shift, gv)
    assert e.rr_f_scores[0.005][0] == pytest.approx(_hand_f(pv[0], gv[0], 0.005)) == pytest.approx(0.75)
    assert e.rr_f_scores[0.015][0] == pytest.approx(1.0)
    scaled = hand_errors(2 * gj, gj, 2 * gv, gv)
    np.testing.assert_allclose(scaled.f_scores[0.005], 1.0)  # PA removes the scale
    expect = _hand_f(2 * gv[0] - 2 * gj[0, :1], gv[0] - gj[0, :1], 0.005)
    assert scaled.rr_f_scores[0.005][0] == pytest.approx(expect) and expect < 1.0


def test_handbooster_layout_reads_the_twelve_columns(tmp_path):
    from handsynth.eval.recon_eval import HANDBOOSTER_COLUMNS, flat_metrics, layout_row

    rng = np.random.default_rng(8)
    g = rng.normal(scale=0.05, size=(2, 21, 3))
    verts = rng.normal(scale=0.05, size=(2, 30, 3))
    (tmp_path / "pred.json").write_text(json.dumps([(g + 0.003).tolist(), (verts + 0.003).tolist()]))
    (tmp_path / "gt.json").write_text(json.dumps([g.tolist(), verts.tolist()]))
    res = evaluate_recon(pair_hands(read_hands(tmp_path / "pred.json"), read_hands(tmp_path / "gt.json")))
    row = layout_row(flat_metrics(res.summary, res.extra), "handbooster")
    assert list(row) == list(HANDBOOSTER_COLUMNS) and len(row) == 12
    assert list(row)[:6] == ["PA J-PE", "PA J-AUC", "PA V-PE", "PA V-AUC", "PA F@5", "PA F@15"]
    # A pure translation: root-relative errors vanish, so every column is perfect.
    assert row["RR J-PE"] == pytest.approx(0, abs=1e-9) and row["RR V-PE"] == pytest.approx(0, abs=1e-9)
    assert row["RR F@5"] == pytest.approx(1.0) and row["RR F@15"] == pytest.approx(1.0)
    assert row["RR J-AUC"] == res.extra["AUC_J_root_relative"] and row["PA F@5"] == res.summary["F@5"]
    assert list(layout_row(res.summary, "table2"))[0] == "MPJPE"
