"""The importers' optional record fields: accepted when well formed, rejected with the field named."""

from __future__ import annotations

import re

import pytest

from handsynth.data import RecordError, Sample


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
    ],
)
def test_malformed_fields_are_named(field, value, named):
    with pytest.raises(RecordError, match=re.escape(f"field '{named}'")):
        Sample.from_dict(_record(**{field: value}))
