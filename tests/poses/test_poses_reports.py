"""``--report PNG`` of the ``poses`` commands other than fps / cross-sample: grasp (energy curves + sheet),
validate (pass-rate bars + kept/rejected sheet), grasp-status (error scatter) and the record sheets of
rest / views / align / compose; and the numpy preview that draws hand and object from the record's
camera."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from posefixtures import pose_record, write_jsonl

from handsynth.cli import main
from handsynth.data import read_dataset


def _pixels(png: Path) -> np.ndarray:
    return np.asarray(Image.open(png).convert("RGB")).astype(np.int32)


def _skin_pixels(img: np.ndarray) -> int:
    """Pixels of the shaded skin colour (0.93, 0.72, 0.60): red above green above blue, clearly warm."""
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return int(((r > 80) & (r > g + 15) & (g > b + 5) & (r - b > 35)).sum())


def test_scene_image_draws_hand_and_object_from_the_record_camera():
    from handsynth.data.records import Sample
    from handsynth.poses.report import scene_image
    from handsynth.poses.rigid import HandPoser

    rec = pose_record("r0", t=(0.05, 0.0, 0.55))
    rec["objects"][0]["mesh"] = "world:box#2060ff"  # a blue box beside the hand
    img = scene_image(Sample.from_dict(rec), HandPoser(), cell=128).astype(np.int32)
    assert img.shape == (128, 128, 3)
    assert _skin_pixels(img) > 300
    blue = (img[..., 2] > img[..., 0] + 40).sum()
    assert blue > 300  # the object, in its own colour
    bare = dict(rec, objects=[])
    img2 = scene_image(Sample.from_dict(bare), HandPoser(), cell=128).astype(np.int32)
    assert (img2[..., 2] > img2[..., 0] + 40).sum() == 0 and _skin_pixels(img2) > 300


@pytest.fixture(scope="module")
def grasps(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("reports")
    rest = tmp / "rest"
    png = tmp / "rest.png"
    assert (
        main(["poses", "rest", "--objects", "world", "--n", "1", "--out", str(rest), "--report", str(png)])
        == 0
    )
    out = tmp / "grasps"
    cmd = ["poses", "grasp", "--objects", "world", "--names", "box,ball", "--rest", str(rest),
           "--n-per-object", "2", "--batch", "2", "--iters", "5", "--out", str(out), "--report",
           str(tmp / "grasp.png")]  # fmt: skip
    assert main(cmd) == 0
    return tmp, out, cmd


def test_rest_report_shows_every_object(grasps):
    tmp, _, _ = grasps
    img = _pixels(tmp / "rest.png")
    assert img.std() > 20  # not blank
    assert img.shape[1] >= 4 * 192  # one cell per object, four to a row (the world has more than four)


def _curve_colours(img: np.ndarray) -> set[tuple[int, int, int]]:
    chart = img[18:300, :480]
    colours = {(40, 90, 200), (200, 70, 50)}  # one curve colour per object
    return {c for c in colours if (np.abs(chart - np.array(c)).sum(-1) == 0).any()}


def test_grasp_report_has_the_energy_curves_and_the_grasps(grasps):
    tmp, out, cmd = grasps
    img = _pixels(tmp / "grasp.png")
    assert img.std() > 20 and _skin_pixels(img) > 500  # the hands are drawn
    assert _curve_colours(img) == {(40, 90, 200), (200, 70, 50)}
    assert len(read_dataset(out)) == 4
    # A resumed run with nothing left to do: no curve, the grasps are still drawn.
    assert main(cmd[:-1] + [str(tmp / "grasp_again.png")]) == 0
    again = _pixels(tmp / "grasp_again.png")
    assert _curve_colours(again) == set() and _skin_pixels(again) > 500


def test_validate_report_has_pass_rate_bars_and_grasps(grasps):
    tmp, out, _ = grasps
    png = tmp / "validate.png"
    assert (
        main(["poses", "validate", "--in", str(out), "--out", str(tmp / "valid"), "--report", str(png)]) == 0
    )
    img = _pixels(png)
    assert img.std() > 20 and _skin_pixels(img) > 500
    bars = img[18:300, :480]
    blue = (np.abs(bars - np.array((40, 90, 200))).sum(-1) == 0).sum()
    rates = __import__("json").loads((tmp / "valid" / "validation.json").read_text())["pass_rate"]
    assert (blue > 0) == any(rates[k] > 0 for k in ("contact", "intersection", "self_penetration"))


def test_views_align_compose_reports_are_sheets_of_records(grasps):
    tmp, out, _ = grasps
    for name, args in (
        ("views", ["poses", "views", "--in", str(out), "--n-per-pose", "1"]),
        ("align", ["poses", "align", "--in", str(out), "--reference", str(out)]),
        ("compose", ["poses", "compose", "--real", str(out), "--synthetic", str(out), "--n", "3"]),
    ):
        png = tmp / f"{name}.png"
        assert main([*args, "--out", str(tmp / name), "--report", str(png)]) == 0
        img = _pixels(png)
        assert img.std() > 20 and _skin_pixels(img) > 300, name


def test_grasp_status_report_marks_grasping_records(tmp_path):
    recs = [pose_record(f"f{i}", t=(0.0, 0.0, 0.5 + 0.004 * i), sequence=("s", i)) for i in range(6)]
    png = tmp_path / "gs.png"
    src = write_jsonl(tmp_path / "seq.jsonl", recs)
    assert (
        main(["poses", "grasp-status", "--in", str(src), "--out", str(tmp_path / "o"), "--report", str(png)])
        == 0
    )
    img = _pixels(png)
    red = (np.abs(img - np.array((200, 40, 40))).sum(-1) == 0).sum()
    grey = (np.abs(img - np.array((110, 110, 110))).sum(-1) == 0).sum()
    assert red > 0 and grey > 0  # frames 3..5 moved more than 10 mm, 0..2 did not


def test_bad_report_path_is_refused_before_any_output(grasps, capsys):
    tmp, out, _ = grasps
    target = tmp / "refused"
    assert main(["poses", "validate", "--in", str(out), "--out", str(target), "--report", str(tmp)]) == 2
    assert "--report" in capsys.readouterr().err and not target.exists()
    cmd = ["poses", "grasp", "--objects", "world", "--names", "box", "--n-per-object", "1", "--iters", "1",
           "--out", str(target), "--report", "grasps.jpg"]  # fmt: skip
    assert main(cmd) == 2 and not target.exists()
