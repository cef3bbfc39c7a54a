"""`poses views | align | compose`: grasps moved rigidly keep exact labels (joints re-posed through the hand
model agree with the rotated ones), the hand–object relation survives, and draws follow their rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from handsynth.cli import main
from handsynth.data import Sample, read_dataset
from handsynth.data.records import object_pose
from handsynth.pinhole import project
from handsynth.poses.features import pose_vector
from handsynth.poses.quaternions import axis_angle_to_matrix, matrix_to_axis_angle
from handsynth.poses.rigid import HandPoser
from handsynth.poses.views import euler_xyz, view_angles

OBJ_R = euler_xyz([10.0, -20.0, 35.0])


@pytest.fixture(scope="module")
def hands(tmp_path_factory) -> list[dict]:
    """Right-hand pose records from the sampler (labels exact for OpenHand), centred in a 256² image."""
    tmp = tmp_path_factory.mktemp("views")
    args = ["poses", "sample", "--n", "14", "--seed", "11", "--size", "256", "--out", str(tmp / "p.jsonl")]
    assert main(args) == 0
    records = [json.loads(line) for line in (tmp / "p.jsonl").read_text().splitlines()]
    right = [r for r in records if r["hands"][0]["side"] == "right"]
    assert len(right) >= 6
    return right[:6]


def _grasp(rec: dict, rec_id: str, name: str = "box", grasping: bool = True) -> dict:
    wrist = np.asarray(rec["hands"][0]["joints_3d"][0])
    t = wrist + np.array([0.02, 0.03, 0.01])
    obj = {"name": name, "mesh": f"world:{name}", "pose": np.c_[OBJ_R, t].tolist()}
    return {**rec, "id": rec_id, "hands": rec["hands"][:1], "objects": [obj], "grasping": grasping}


def _write(folder: Path, records: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_euler_and_axis_angle_helpers():
    R = euler_xyz([30.0, 0.0, 0.0])
    assert np.allclose(R @ [0, 1, 0], [0, np.cos(np.radians(30)), np.sin(np.radians(30))])
    # order and signs against scipy: upper-case "XYZ" is intrinsic, i.e. Rx·Ry·Rz
    from scipy.spatial.transform import Rotation

    for a in ([17.0, -33.0, 52.0], [-80.0, 10.0, -170.0]):
        assert np.allclose(euler_xyz(a), Rotation.from_euler("XYZ", a, degrees=True).as_matrix())
    aa = np.array([[0.3, -1.2, 2.0], [1e-10, 0, 0], [np.pi - 1e-9, 0, 0]])
    assert np.allclose(
        axis_angle_to_matrix(matrix_to_axis_angle(axis_angle_to_matrix(aa))), axis_angle_to_matrix(aa)
    )
    rng = np.random.default_rng(0)
    sym = np.stack([view_angles(rng, 30.0, "symmetric") for _ in range(4000)])
    rel = np.stack([view_angles(rng, 30.0, "released") for _ in range(4000)])
    assert sym.min() >= -30 and sym.max() < 30 and abs(sym.mean()) < 1.0
    assert rel.min() >= 0 and rel.max() < 30 and abs(rel.mean() - 15.0) < 1.0  # the released range's bias


def test_views_rotate_hand_and_object_about_the_wrist(hands, tmp_path):
    records = [_grasp(hands[0], "g0"), _grasp(hands[1], "still", grasping=False)]
    src = _write(tmp_path / "in", records)
    out = tmp_path / "views"
    assert (
        main(["poses", "views", "--in", str(src), "--out", str(out), "--n-per-pose", "4", "--max-deg", "20"])
        == 0
    )
    got = {s.id: s for s in read_dataset(out)}
    assert got["still"].to_dict() == Sample.from_dict(records[1]).to_dict()  # non-grasping: unchanged
    views = [s for k, s in got.items() if k.startswith("g0-view")]
    assert 1 <= len(views) <= 4
    poser = HandPoser()
    orig = Sample.from_dict(records[0])
    _, j0 = poser.pose(orig.hands[0])
    w = j0[0]
    R_o, t_o, _ = object_pose(records[0]["objects"][0])
    K = np.asarray(orig.K)
    for v in views:
        info = v.source["handbooster"]["views"]
        R = euler_xyz(info["angles_deg"])
        h = v.hands[0]
        # the re-posed model's joints are the rotated joints: labels stay exact
        assert np.allclose(h.joints_3d, (j0 - w) @ R.T + w, atol=2e-5)
        assert np.allclose(poser.pose(h)[1], h.joints_3d, atol=1e-6)
        assert np.allclose(h.joints_2d, project(np.asarray(h.joints_3d), K), atol=1e-6)
        assert h.hand_pose == orig.hands[0].hand_pose and h.betas == orig.hands[0].betas
        R_v, t_v, _ = object_pose(v.extra["objects"][0])
        assert np.allclose(R_v, R @ R_o) and np.allclose(t_v, R @ (t_o - w) + w)
        assert v.file_name is None and v.conditions == {} and v.extra["grasping"] is True
        # the grasp itself (pose vector: hand pose + object in the hand's root frame) is unchanged
        assert np.allclose(pose_vector(v), pose_vector(orig), atol=1e-5)


def test_inside_image_uses_width_for_u_and_height_for_v(hands):
    from handsynth.poses.rigid import inside_image

    s = Sample.from_dict({**hands[0], "width": 320, "height": 240})
    j2 = np.asarray(s.hands[0].joints_2d, dtype=float)
    j3 = np.asarray(s.hands[0].joints_3d, dtype=float)
    assert (j3[:, 2] > 0).all()
    s.hands[0].joints_2d = np.stack([np.full(len(j2), 260.0), np.full(len(j2), 100.0)], 1).tolist()
    assert inside_image(s)  # u = 260 < width 320 (though >= height 240)
    s.hands[0].joints_2d = np.stack([np.full(len(j2), 100.0), np.full(len(j2), 239.5)], 1).tolist()
    assert inside_image(s)
    s.hands[0].joints_2d = np.stack([np.full(len(j2), 100.0), np.full(len(j2), 260.0)], 1).tolist()
    assert not inside_image(s)  # v = 260 >= height 240


def test_views_leaving_the_image_are_dropped_and_counted(hands, tmp_path, caplog):
    rec = _grasp(hands[2], "edge")
    h = rec["hands"][0]
    u0 = np.asarray(h["joints_2d"])[:, 0].min()
    # shift the camera centre so the hand touches the left border: most rotations push it out
    rec["camera"]["K"][0][2] -= u0 - 0.5
    h["joints_2d"] = [[u - (u0 - 0.5), v] for u, v in h["joints_2d"]]
    h["bbox"][0] -= u0 - 0.5
    src = _write(tmp_path / "in", [rec])
    out = tmp_path / "views"
    with caplog.at_level("INFO"):
        assert main(["poses", "views", "--in", str(src), "--out", str(out), "--n-per-pose", "8"]) == 0
    n = len(read_dataset(out)) if (out / "metadata.jsonl").exists() else 0
    assert n < 8 and f"{n} views kept, {8 - n} dropped" in caplog.text
    for s in read_dataset(out) if n else []:
        assert np.asarray(s.hands[0].joints_2d).min() >= 0


def test_views_of_unlabelled_records_ask_for_grasp_status(hands, tmp_path, capsys):
    rec = _grasp(hands[0], "plain")
    rec.pop("grasping")
    src = _write(tmp_path / "in", [rec])
    assert main(["poses", "views", "--in", str(src), "--out", str(tmp_path / "v")]) == 2
    assert "poses grasp-status" in capsys.readouterr().err and not (tmp_path / "v").exists()


def test_align_takes_the_real_hand_placement_and_carries_the_object(hands, tmp_path):
    synthetic = _write(tmp_path / "syn", [_grasp(hands[3], "s0"), _grasp(hands[4], "s1")])
    real_recs = [_grasp(hands[5], "r0"), _grasp(hands[0], "r1", grasping=False)]
    real_recs[0]["hands"][0]["betas"] = [0.5] + [0.0] * 9  # a different shape, refitted below
    real_recs[0]["hands"][0]["transl"] = list(real_recs[0]["hands"][0]["transl"])
    poser = HandPoser()
    real0 = Sample.from_dict(real_recs[0])
    real_recs[0]["hands"][0] = poser.relabel(real0.hands[0], np.asarray(real0.K)).to_dict()
    real = _write(tmp_path / "real", real_recs)
    out = tmp_path / "aligned"
    assert main(["poses", "align", "--in", str(synthetic), "--reference", str(real), "--out", str(out)]) == 0
    ref = Sample.from_dict(real_recs[0])
    for s in read_dataset(out):
        assert s.source["handbooster"]["align"]["reference"] == "r0"  # the only grasping real record
        h = s.hands[0]
        assert np.allclose(
            axis_angle_to_matrix(np.asarray(h.global_orient)),
            axis_angle_to_matrix(np.asarray(ref.hands[0].global_orient)),
            atol=1e-6,
        )
        assert h.betas == ref.hands[0].betas and s.K == ref.K
        assert np.allclose(h.joints_3d[0], ref.hands[0].joints_3d[0], atol=1e-5)  # the real wrist position
        orig = next(
            Sample.from_dict(r) for r in [_grasp(hands[3], "s0"), _grasp(hands[4], "s1")] if r["id"] == s.id
        )
        assert h.hand_pose == orig.hands[0].hand_pose
        # the object keeps its place relative to the hand's root (pose vector excludes the orientation)
        assert np.allclose(pose_vector(s), pose_vector(orig), atol=1e-5)
    # a reference without grasp labels is refused before any output
    bare = _write(tmp_path / "bare", [{k: v for k, v in r.items() if k != "grasping"} for r in real_recs])
    assert (
        main(
            ["poses", "align", "--in", str(synthetic), "--reference", str(bare), "--out", str(tmp_path / "x")]
        )
        == 2
    )
    assert not (tmp_path / "x").exists()


def test_compose_mixes_sources_by_fraction_and_is_deterministic(hands, tmp_path):
    real = _write(tmp_path / "real", [_grasp(hands[0], "r0", "box"), _grasp(hands[1], "r1", "cup")])
    syn = _write(
        tmp_path / "syn",
        [_grasp(hands[2], "s0", "box"), _grasp(hands[3], "s1", "cup"), _grasp(hands[4], "s2", "ball")],
    )
    args = ["poses", "compose", "--real", str(real), "--synthetic", str(syn), "--n", "60", "--max-deg", "10"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    a, b = read_dataset(tmp_path / "a"), read_dataset(tmp_path / "b")
    assert [s.to_dict() for s in a] == [s.to_dict() for s in b]
    info = [s.source["handbooster"]["compose"] for s in a]
    assert {i["object"] for i in info} == {"box", "cup"}  # ball has no real pose: not a class
    n_syn = sum(i["pool"] == "synthetic" for i in info)
    assert 38 <= n_syn <= 58  # Binomial(60, 0.8): mean 48, sd 3.1
    for s, i in zip(a, info):
        assert s.id == f"compose{i['index']:06d}" and s.extra["objects"][0]["name"] == i["object"]
        assert all(abs(x) < 10 for x in i["angles_deg"])
