"""The importers' optional record fields: accepted when well formed, rejected with the field named."""

from __future__ import annotations

import re

import numpy as np
import pytest

from handsynth.data import RecordError, Sample
from handsynth.data.records import object_pose


def _record(**extra) -> dict:
    return {
        "id": "a",
        "width": 640,
        "height": 480,
        "camera": {"K": [[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]]},
        "hands": [],
        **extra,
    }


GOOD = {
    "hands_2d": [
        {"side": "left", "bbox": [1, 2, 30, 40], "joints_2d": [[1.0, 2.0]] * 21, "visibility": [2] * 21}
    ],
    "unlabelled_hands": [{"side": "right", "bbox": [1, 2, 3, 4], "root_3d": [0.0, 0.1, 0.5]}],
    "body": {"keypoints_2d": [[1.0, 2.0, 2.0]] * 17},
    "objects": [
        {"name": "003_cracker_box", "pose": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0.5]], "mesh": "m.obj"}
    ],
    "sequence": {"id": "20200709-subject-01/20200709_141754/836212060125", "frame": 3},
}


IDENTITY = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]


def test_well_formed_fields_round_trip():
    s = Sample.from_dict(_record(**GOOD))
    assert {k: s.to_dict()[k] for k in GOOD} == GOOD


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("hands_2d", [{**GOOD["hands_2d"][0], "joints_2d": [[1.0, 2.0]] * 20}], "hands_2d[0].joints_2d"),
        ("hands_2d", [{**GOOD["hands_2d"][0], "side": "both"}], "hands_2d[0].side"),
        ("unlabelled_hands", [{"side": "right", "bbox": [0, 0, 0, 4]}], "unlabelled_hands[0].bbox"),
        ("body", {"keypoints_2d": [[1.0, 2.0]] * 17}, "body.keypoints_2d[0]"),
        ("objects", [{"name": "x", "pose": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}], "objects[0].pose[0]"),
        ("objects", [{"pose": GOOD["objects"][0]["pose"]}], "objects[0].name"),
        ("sequence", {"id": "s", "frame": -1}, "sequence.frame"),
        ("objects", [{"name": "x", "R": IDENTITY}], "objects[0].t"),
        ("objects", [{"name": "x", "R": IDENTITY, "t": [0, 0], "mesh": "world:box"}], "objects[0].t"),
        ("objects", [{**GOOD["objects"][0], "R": IDENTITY, "t": [0, 0, 1]}], "objects[0]"),
        ("objects", [{"name": "x", "R": IDENTITY, "t": [0, 0, 1], "scale": 0}], "objects[0].scale"),
        ("objects", [{"name": "x", "R": IDENTITY, "t": [0, 0, 1], "mesh": "world:"}], "objects[0].mesh"),
        ("objects", [{"name": "x", "R": [[0, 1, 0], [1, 0, 0], [0, 0, 1]], "t": [0, 0, 1]}], "objects[0].R"),
        ("grasping", 1, "grasping"),
    ],
)
def test_malformed_fields_are_named(field, value, named):
    with pytest.raises(RecordError, match=re.escape(f"field '{named}'")):
        Sample.from_dict(_record(**{field: value}))


def test_object_pose_reads_both_spellings():
    """``pose`` = [R | t] (the importers) and ``R`` + ``t`` + ``scale`` (issue 12) give the same transform."""
    c, s_ = np.cos(0.3), np.sin(0.3)
    R = [[c, -s_, 0.0], [s_, c, 0.0], [0.0, 0.0, 1.0]]
    t = [0.1, -0.2, 0.6]
    a = Sample.from_dict(_record(objects=[{"name": "x", "pose": np.c_[R, t].tolist()}], grasping=True))
    b = Sample.from_dict(_record(objects=[{"name": "x", "R": R, "t": t, "scale": 2.0, "mesh": "world:cup"}]))
    Ra, ta, sa = object_pose(a.extra["objects"][0])
    Rb, tb, sb = object_pose(b.extra["objects"][0])
    assert np.allclose(Ra, Rb) and np.allclose(ta, tb) and (sa, sb) == (1.0, 2.0)
    assert a.extra["grasping"] is True


def test_rotation_tolerance_is_the_documented_one():
    """‖RᵀR − I‖ ≤ 1e-4 passes, above fails: R = (1 + e)·I gives ‖RᵀR − I‖ ≈ 2e·√3 (7e-5, then 3.5e-4)."""
    Sample.from_dict(_record(objects=[{"name": "x", "R": (np.eye(3) * (1 + 2e-5)).tolist(), "t": [0, 0, 1]}]))
    with pytest.raises(RecordError, match="orthonormal"):
        Sample.from_dict(
            _record(objects=[{"name": "x", "R": (np.eye(3) * (1 + 1e-4)).tolist(), "t": [0, 0, 1]}])
        )
