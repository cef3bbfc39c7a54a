"""The `body` map (SesaHand's coarse structure): forearm silhouette + OpenPose body skeleton."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from handsynth.cli import main
from handsynth.data import read_dataset
from handsynth.data.records import RecordError, Sample
from handsynth.errors import UserError
from handsynth.render import load_map
from handsynth.render.body import (
    LIMB_BRIGHTNESS,
    OPENPOSE_COLORS,
    SILHOUETTE_GREY,
    compose_body_map,
    openpose18,
)
from handsynth.render.conditions import ConditionRenderer, scale_sample

SIZE = 96


def coco17(scale: float = 1.0) -> np.ndarray:
    """A standing person: COCO-17 [u, v, visibility], all labelled."""
    kp = np.array(
        [
            [48, 10], [45, 8], [51, 8], [42, 10], [54, 10],  # nose, eyes, ears
            [38, 24], [58, 24], [34, 40], [62, 40], [30, 56], [66, 56],  # shoulders, elbows, wrists
            [42, 60], [54, 60], [41, 76], [55, 76], [40, 92], [56, 92],  # hips, knees, ankles
        ],
        float,
    )  # fmt: skip
    return np.concatenate([kp * scale, np.full((17, 1), 2.0)], axis=1)


def test_openpose18_adds_the_neck_and_drops_unlabelled_keypoints():
    kp = coco17()
    op = openpose18(kp)
    assert np.allclose(op[1], (kp[5, :2] + kp[6, :2]) / 2)  # neck = shoulders' midpoint
    assert np.allclose(op[2], kp[6, :2]) and np.allclose(op[5], kp[5, :2])  # OpenPose right = COCO right
    kp[6, 2] = 0  # right shoulder not labelled: it and the neck are missing
    op = openpose18(kp)
    assert np.isnan(op[2]).all() and np.isnan(op[1]).all() and np.isfinite(op[5]).all()


def test_body_skeleton_uses_openpose_colours_and_empty_input_is_black():
    assert not compose_body_map(SIZE, SIZE).any()
    body = compose_body_map(SIZE, SIZE, keypoints=[openpose18(coco17())])
    nose = tuple(body[10, 48])
    assert nose == OPENPOSE_COLORS[0]  # joint disc, full colour
    # The middle of the left upper arm (OpenPose limb 5-6, colour 4) at 60 % brightness.
    mid = tuple(body[32, 36])
    assert mid == tuple(int(round(c * LIMB_BRIGHTNESS)) for c in OPENPOSE_COLORS[4])
    assert not body[80:, :20].any()  # nothing far from the body


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two world records (they carry body.forearms) rendered with the body map; then without body data."""
    tmp = tmp_path_factory.mktemp("body")
    assert (
        main(["world", "render", "--domain", "lab", "--n", "2", "--size", str(SIZE), "--out", str(tmp / "w")])
        == 0
    )
    return tmp


def test_world_records_carry_their_forearm(world):
    s = read_dataset(world / "w")[0]
    arms = s.extra["body"]["forearms"]
    assert arms[0]["side"] == s.hands[0].side and arms[0]["length"] == 1.0


def test_forearm_silhouette_adjoins_the_hand_and_is_hidden_by_it(world):
    s = read_dataset(world / "w")[0]
    r = ConditionRenderer()
    out = r.render(s, ("body", "seg"), local=True)
    body, seg = out.global_maps["body"], out.global_maps["seg"]
    arm = (body == SILHOUETTE_GREY).all(-1)
    assert arm.sum() > 20 and not (arm & (seg > 0)).any()  # where the hand is, the arm is hidden
    # The arm touches the hand: some arm pixel has a hand pixel within 2 px.
    hand = np.pad(seg > 0, 2)
    near = np.zeros_like(arm)
    for dy in range(5):
        for dx in range(5):
            near |= hand[dy : dy + SIZE, dx : dx + SIZE]
    assert (arm & near).any()
    assert out.local_maps["body"].shape == (SIZE, SIZE, 3) and out.local_maps["body"].any()
    assert r.body_empty == []


def test_record_without_body_gets_an_empty_map_and_a_note(world, capsys):
    src = world / "w"
    plain = world / "plain.jsonl"
    with open(plain, "w") as f:
        for s in read_dataset(src):
            d = s.to_dict()
            d.pop("body")
            d["conditions"] = {}
            d.pop("local", None)
            f.write(json.dumps(d) + "\n")
    assert main(["render", "--in", str(plain), "--out", str(world / "plain"), "--maps", "mesh,body"]) == 0
    assert "2 of 2 records carry no body data" in capsys.readouterr().err
    for s in read_dataset(world / "plain"):
        assert not load_map("body", world / "plain" / s.conditions["body"]).any()
        assert load_map("mesh", world / "plain" / s.conditions["mesh"]).any()


def test_body_keypoints_are_drawn_and_follow_a_resize(world):
    s = read_dataset(world / "w")[0]
    s.extra["body"] = {"keypoints_2d": coco17().tolist()}
    small = scale_sample(s, SIZE // 2, SIZE // 2)
    assert np.allclose(np.asarray(small.extra["body"]["keypoints_2d"])[:, :2], coco17()[:, :2] / 2)
    assert np.allclose(np.asarray(s.extra["body"]["keypoints_2d"]), coco17())  # the original is untouched
    body = ConditionRenderer().render(small, ("body",), local=False).global_maps["body"]
    assert tuple(body[5, 24]) == OPENPOSE_COLORS[0]  # the nose at (48, 10) / 2


def test_forearm_on_a_missing_hand_is_refused(world):
    s = copy.deepcopy(read_dataset(world / "w")[0])
    other = "left" if s.hands[0].side == "right" else "right"
    s.extra["body"] = {"forearms": [{"side": other}]}
    with pytest.raises(UserError, match=f"body.forearms\\[0\\] is attached to the {other} hand"):
        ConditionRenderer().check_record(s)  # render_dataset checks every record before writing


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"forearms": [{"side": "middle"}]}, "body.forearms[0].side"),
        ({"forearms": [{"side": "left", "sleeve_start": -0.1}]}, "body.forearms[0].sleeve_start"),
        ({"forearms": [{"sleeve_start": 0.1}]}, "body.forearms[0].side"),
        ({"forearms": {"side": "left"}}, "body.forearms"),
    ],
)
def test_bad_forearm_fields_are_refused(world, body, field):
    d = read_dataset(world / "w")[0].to_dict()
    d["body"] = body
    with pytest.raises(RecordError, match=field.replace("[", "\\[").replace("]", "\\]")):
        Sample.from_dict(d)
