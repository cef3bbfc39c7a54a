"""Farthest pose sampling: the vectorised Alg. 1 picks exactly what the literal loop picks; the CLI keeps
M poses per object, expressed without the hand's global orientation."""

from __future__ import annotations

import numpy as np
import pytest
from posefixtures import pose_record, read_jsonl, write_jsonl
from scipy.spatial.transform import Rotation

from handsynth.cli import main
from handsynth.data.records import Sample
from handsynth.poses.features import VECTOR_SIZE, pose_vector
from handsynth.poses.fps import farthest_pose_sampling, farthest_pose_sampling_literal


def test_vectorised_picks_equal_the_literal_loop():
    rng = np.random.default_rng(0)
    for seed in range(2):
        vecs = rng.normal(size=(200, VECTOR_SIZE))
        assert farthest_pose_sampling(vecs, 25, seed) == farthest_pose_sampling_literal(vecs, 25, seed)


def test_picks_spread_out_and_never_repeat():
    # two tight clusters far apart: the second pick comes from the other cluster
    rng = np.random.default_rng(1)
    a = np.array([1.0, 0.0, 0.0]) + 0.01 * rng.normal(size=(50, 3))
    b = np.array([0.0, 1.0, 0.0]) + 0.01 * rng.normal(size=(50, 3))
    picks = farthest_pose_sampling(np.concatenate([a, b]), 100, seed=0)
    assert (picks[0] < 50) != (picks[1] < 50)
    assert sorted(picks) == list(range(100))


def test_exact_duplicates_are_never_picked_twice():
    # 5 distinct poses repeated to 12 rows: a picked row's own distance is ~0 like its duplicates', so
    # only marking picks (not just the first) keeps argmax off them; every distinct pose comes first
    rng = np.random.default_rng(4)
    for seed in range(50):
        idx = rng.integers(0, 5, size=12)
        idx[:5] = np.arange(5)
        vecs = rng.normal(size=(5, VECTOR_SIZE))[idx]
        picks = farthest_pose_sampling(vecs, 12, seed)
        assert sorted(picks) == list(range(12))
        assert {int(idx[p]) for p in picks[:5]} == set(range(5))


def test_pose_vector_ignores_the_global_orientation():
    rng = np.random.default_rng(2)
    hand_pose = rng.normal(size=45) * 0.3
    R_obj = Rotation.random(random_state=4).as_matrix()
    base = Sample.from_dict(pose_record("a", R_obj, (0.05, 0.0, 0.5), hand_pose=hand_pose))
    g = Rotation.from_rotvec([0.3, -1.1, 0.4])
    # the same grasp seen rotated: hand orientation and object pose rotated together about the wrist
    wrist = np.array(base.hands[0].joints_3d[0])
    rec = pose_record(
        "b",
        g.as_matrix() @ R_obj,
        tuple(wrist + g.apply(np.array([0.05, 0.0, 0.5]) - wrist)),
        hand_pose=hand_pose,
        global_orient=tuple(g.as_rotvec()),
    )
    turned = Sample.from_dict(rec)
    np.testing.assert_allclose(pose_vector(turned), pose_vector(base), atol=1e-12)
    v = pose_vector(base, translation_scale=10.0)
    assert v.shape == (VECTOR_SIZE,) and (v[0:64:4] >= 0).all()
    np.testing.assert_allclose(v[-3:], 10 * (np.array([0.05, 0.0, 0.5]) - wrist))


def test_cli_keeps_m_per_object_seeded_and_resumable(tmp_path):
    rng = np.random.default_rng(3)
    recs = [
        pose_record(
            f"{name}{i}",
            Rotation.random(random_state=i).as_matrix(),
            name=name,
            hand_pose=rng.normal(size=45),
        )
        for name in ("cup", "box")
        for i in range(30 if name == "cup" else 3)
    ]
    src = write_jsonl(tmp_path / "p.jsonl", recs)
    out = tmp_path / "out"
    args = ["poses", "fps", "--in", str(src), "--per-object", "5", "--out", str(out), "--seed", "7"]
    assert main(args) == 0
    got = read_jsonl(out / "metadata.jsonl")
    assert sum(r["objects"][0]["name"] == "cup" for r in got) == 5
    assert sum(r["objects"][0]["name"] == "box" for r in got) == 3  # fewer than M: all kept
    assert got[0]["source"]["handbooster"]["fps"]["seed"] == 7
    (out / "metadata.jsonl").write_text(
        "".join(line + "\n" for line in (out / "metadata.jsonl").read_text().splitlines()[:2])
    )
    assert main(args) == 0  # a killed run resumed: the same picks, none twice
    assert [r["id"] for r in read_jsonl(out / "metadata.jsonl")] == [r["id"] for r in got]


def test_fps_picks_are_less_alike_than_random_picks():
    """The report's claim: mean pairwise similarity of FPS picks is below that of random picks."""
    from handsynth.poses.features import unit_rows
    from handsynth.poses.report import _mean_off_diagonal

    unit = unit_rows(np.random.default_rng(5).normal(size=(500, VECTOR_SIZE)) + 1.0)
    picks = farthest_pose_sampling(unit, 30, seed=0)
    rand = np.random.default_rng(0).choice(500, 30, replace=False)
    assert _mean_off_diagonal(unit[picks] @ unit[picks].T) < _mean_off_diagonal(unit[rand] @ unit[rand].T)


def test_bad_report_path_is_refused_before_output(tmp_path, capsys):
    src = write_jsonl(
        tmp_path / "p.jsonl",
        [pose_record("a"), pose_record("b", Rotation.random(random_state=1).as_matrix())],
    )
    out = tmp_path / "out"
    assert (
        main(
            [
                "poses",
                "fps",
                "--in",
                str(src),
                "--per-object",
                "1",
                "--out",
                str(out),
                "--report",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "must be a .png file path" in capsys.readouterr().err
    assert not out.exists()


def test_duplicate_input_ids_are_refused_and_repeated_picks_never_silently_dropped(
    tmp_path, capsys, monkeypatch
):
    recs = [pose_record(f"a{i}", hand_pose=np.full(45, 0.1 * i)) for i in range(4)]
    src = write_jsonl(tmp_path / "dup.jsonl", [*recs, recs[1]])
    assert main(["poses", "fps", "--in", str(src), "--per-object", "2", "--out", str(tmp_path / "o")]) == 2
    assert "'a1' appears more than once" in capsys.readouterr().err
    # a command that would write one record twice stops instead of keeping the first silently
    import handsynth.poses.fps as fps

    monkeypatch.setattr(fps, "farthest_pose_sampling", lambda v, m, seed=0: [0, 0])
    src = write_jsonl(tmp_path / "ok.jsonl", recs)
    with pytest.raises(RuntimeError, match="'a0' would be written twice"):
        main(["poses", "fps", "--in", str(src), "--per-object", "2", "--out", str(tmp_path / "o2")])


def test_overwrite_restarts_the_output_and_the_input_is_never_the_output(tmp_path, capsys):
    rng = np.random.default_rng(5)
    recs = [pose_record(f"a{i}", hand_pose=rng.normal(size=45)) for i in range(12)]
    src = tmp_path / "in"
    src.mkdir()
    write_jsonl(src / "metadata.jsonl", recs)
    out = tmp_path / "out"
    args = ["poses", "fps", "--in", str(src), "--per-object", "4", "--out", str(out)]
    assert main([*args, "--seed", "0"]) == 0
    assert main([*args, "--seed", "5", "--overwrite"]) == 0
    assert main([*args[:-1], str(tmp_path / "fresh"), "--seed", "5"]) == 0
    # the restarted folder holds exactly what a fresh run with the new settings writes (not both runs)
    assert read_jsonl(out / "metadata.jsonl") == read_jsonl(tmp_path / "fresh" / "metadata.jsonl")
    before = (src / "metadata.jsonl").read_bytes()
    assert main([*args[:-1], str(src), "--overwrite"]) == 2
    assert "is the input folder" in capsys.readouterr().err
    assert (src / "metadata.jsonl").read_bytes() == before


def test_a_command_that_keeps_nothing_still_writes_the_dataset_it_prints(tmp_path, capsys, monkeypatch):
    import handsynth.poses.fps as fps

    recs = [pose_record(f"a{i}", hand_pose=np.full(45, 0.1 * i)) for i in range(3)]
    src = write_jsonl(tmp_path / "in.jsonl", recs)
    out = tmp_path / "o"
    monkeypatch.setattr(fps, "farthest_pose_sampling", lambda v, m, seed=0: [])  # e.g. no valid grasp
    assert main(["poses", "fps", "--in", str(src), "--per-object", "2", "--out", str(out)]) == 0
    assert str(out / "metadata.jsonl") in capsys.readouterr().out
    assert (out / "metadata.jsonl").read_text() == ""
