"""``poses grasp-status``: RRE/RTE against the sequence's first frame, thresholds strict, OR/AND rule."""

from __future__ import annotations

import numpy as np
import pytest
from posefixtures import pose_record, read_jsonl, write_jsonl
from scipy.spatial.transform import Rotation

from handsynth.cli import main


def _rot_deg(deg: float) -> np.ndarray:
    return Rotation.from_rotvec([0.0, np.radians(deg), 0.0]).as_matrix()


def _sequence(tmp_path):
    R0 = Rotation.random(random_state=3).as_matrix()
    t0 = np.array([0.02, -0.01, 0.6])
    frames = [  # frame 0 listed last: the first frame is the lowest frame number, not the first line
        ("rot49", R0 @ _rot_deg(4.9), t0),
        ("rot51", R0 @ _rot_deg(5.1), t0),
        ("mm9", R0, t0 + [0.009, 0.0, 0.0]),
        ("mm11", R0, t0 + [0.0, 0.011, 0.0]),
        ("both", R0 @ _rot_deg(6.0), t0 + [0.0, 0.0, 0.012]),
        ("start", R0, t0),
    ]
    recs = [pose_record(name, R, tuple(t), sequence=("s1", i + 1)) for i, (name, R, t) in enumerate(frames)]
    recs[-1]["sequence"]["frame"] = 0
    recs.append(pose_record("other0", _rot_deg(80.0), sequence=("s2", 3)))  # its own first frame
    return write_jsonl(tmp_path / "seq.jsonl", recs)


@pytest.mark.parametrize(
    "rule, grasping",
    [
        ("or", {"rot49": False, "rot51": True, "mm9": False, "mm11": True, "both": True, "start": False}),
        ("and", {"rot49": False, "rot51": False, "mm9": False, "mm11": False, "both": True, "start": False}),
    ],
)
def test_thresholds_and_rules(tmp_path, rule, grasping):
    src = _sequence(tmp_path)
    assert (
        main(["poses", "grasp-status", "--in", str(src), "--out", str(tmp_path / "out"), "--rule", rule]) == 0
    )
    got = {r["id"]: r["grasping"] for r in read_jsonl(tmp_path / "out" / "metadata.jsonl")}
    assert got == {**grasping, "other0": False}
    rec = read_jsonl(tmp_path / "out" / "metadata.jsonl")[0]
    assert rec["source"]["handbooster"]["grasp_status"] == {"rre_deg": 5.0, "rte_mm": 10.0, "rule": rule}
    assert rec["sequence"]["id"] == "s1" and rec["objects"][0]["name"] == "cup"


def test_thresholds_are_strict():
    """Exactly at a threshold is not grasping ("exceeds"), either rule."""
    from handsynth.poses.grasp_status import GraspRule

    for rule in ("or", "and"):
        r = GraspRule(rule=rule)
        assert not r.grasping(5.0, 0.0) and not r.grasping(0.0, 10.0) and not r.grasping(5.0, 10.0)
        assert r.grasping(5.0 + 1e-9, 10.0 + 1e-9)


def test_records_without_sequence_are_refused_before_output(tmp_path, capsys):
    recs = [pose_record("a", sequence=("s", 0)), pose_record("nosq"), pose_record("nosq2")]
    src = write_jsonl(tmp_path / "in.jsonl", recs)
    assert main(["poses", "grasp-status", "--in", str(src), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "record nosq has no 'sequence'" in err and "nosq2" not in err
    assert not (tmp_path / "out" / "metadata.jsonl").exists()


def test_resumed_run_appends_nothing_twice(tmp_path):
    src = _sequence(tmp_path)
    args = ["poses", "grasp-status", "--in", str(src), "--out", str(tmp_path / "out")]
    assert main(args) == 0
    assert main(args) == 0
    assert len(read_jsonl(tmp_path / "out" / "metadata.jsonl")) == 7
    assert main([*args, "--rule", "and"]) == 2  # other settings into the same folder: refused


def test_images_stay_readable_from_the_output_folder(tmp_path):
    from PIL import Image

    from handsynth.data.folder import iter_records

    src = tmp_path / "in"
    (src / "images").mkdir(parents=True)
    Image.new("RGB", (256, 256), "red").save(src / "images" / "a.png")
    rec = pose_record("a", sequence=("s", 0))
    rec["file_name"] = "images/a.png"
    write_jsonl(src / "metadata.jsonl", [rec])
    out = tmp_path / "out"
    assert main(["poses", "grasp-status", "--in", str(src), "--out", str(out)]) == 0
    (sample,) = list(iter_records(out))
    assert Image.open(out / sample.file_name).getpixel((0, 0)) == (255, 0, 0)
