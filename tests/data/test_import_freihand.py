"""FreiHAND importer on a fixture tree in the release layout: labels, flat_hand_mean, errors, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures.freihand import write_freihand

from handsynth.cli import main
from handsynth.data import read_dataset
from handsynth.errors import UserError
from handsynth.importers import PrepareOptions, prepare


def _run(root, out, mano_dir, *extra):
    return main(["prepare", "--dataset", "freihand", "--root", str(root), "--out", str(out),
                 "--mano-dir", str(mano_dir), *extra])  # fmt: skip


@pytest.mark.parametrize("flat", [False, True])
def test_freihand_records_match_the_generator(tmp_path, mano_dir, flat, capsys):
    truth = write_freihand(tmp_path / "FreiHAND", mano_dir, n=3, flat=flat)
    assert _run(tmp_path / "FreiHAND", tmp_path / "out", mano_dir, "--versions", "gs,hom") == 0
    records = read_dataset(tmp_path / "out")
    assert [r.id for r in records] == [f"freihand_training_{k:08d}" for k in range(6)]
    for r in records:
        t = truth[r.source["label_index"]]
        (hand,) = r.hands
        assert hand.side == "right" and hand.model == "mano"
        assert r.source["flat_hand_mean"] is flat
        assert r.source["version"] == ("gs" if int(r.id[-8:]) < 3 else "hom")
        np.testing.assert_allclose(r.K, t["K"], atol=1e-9)
        np.testing.assert_allclose(hand.joints_3d, t["joints"], atol=2e-6)
        np.testing.assert_allclose(hand.betas, t["betas"], atol=1e-12)
        uv = np.asarray(t["joints"]) @ t["K"].T
        np.testing.assert_allclose(hand.joints_2d, uv[:, :2] / uv[:, 2:], atol=1e-3)
        np.testing.assert_allclose(hand.bbox, t["bbox"], atol=1e-3)
        assert (r.width, r.height) == (224, 224)
        image = tmp_path / "out" / r.file_name
        assert image.is_symlink() and image.resolve().name == f"{r.id[-8:]}.jpg"
    report = json.loads((tmp_path / "out" / "prepare_report.json").read_text())
    assert report["consistency_check"]["hands_checked"] == 6
    assert report["consistency_check"]["max_error_mm"] < 0.01 and not report["consistency_check"]["failed"]
    assert report["flat_hand_mean"] is flat
    assert "consistency check: 6 hands" in capsys.readouterr().out


def test_freihand_missing_file_is_named_before_writing(tmp_path, mano_dir):
    root = tmp_path / "FreiHAND"
    write_freihand(root, mano_dir, n=2)
    (root / "training_xyz.json").unlink()
    with pytest.raises(UserError, match=r"training_xyz\.json is missing.*training,evaluation"):
        prepare(
            "freihand", PrepareOptions(root=root, out=tmp_path / "out", mano_dir=mano_dir, progress=False)
        )
    assert not (tmp_path / "out").exists()


def test_freihand_missing_image_names_it(tmp_path, mano_dir):
    root = tmp_path / "FreiHAND"
    write_freihand(root, mano_dir, n=2)
    (root / "training" / "rgb" / "00000001.jpg").unlink()
    with pytest.raises(UserError, match=r"rgb/00000001\.jpg is missing"):
        prepare(
            "freihand", PrepareOptions(root=root, out=tmp_path / "out", mano_dir=mano_dir, progress=False)
        )


def test_freihand_rerun_skips_finished_records(tmp_path, mano_dir):
    root = tmp_path / "FreiHAND"
    write_freihand(root, mano_dir, n=3)
    opts = dict(root=root, out=tmp_path / "out", mano_dir=mano_dir, progress=False)
    first = prepare("freihand", PrepareOptions(**opts, limit=2))
    assert (first.written, first.present) == (2, 0)
    again = prepare("freihand", PrepareOptions(**opts))
    assert (again.written, again.present) == (1, 2)
    assert [r.id for r in read_dataset(tmp_path / "out")] == [f"freihand_training_{k:08d}" for k in range(3)]
    every = prepare("freihand", PrepareOptions(**{**opts, "out": tmp_path / "every"}, every=2, link="copy"))
    assert (
        every.written == 2
        and not (tmp_path / "every" / "images" / "freihand_training_00000000.jpg").is_symlink()
    )


def test_freihand_consistency_failure_is_reported_and_strict_refuses(tmp_path, mano_dir):
    root = tmp_path / "FreiHAND"
    write_freihand(root, mano_dir, n=3)
    xyz = json.loads((root / "training_xyz.json").read_text())
    xyz[2][5][1] += 0.004  # index MCP 4 mm off: the fit no longer reproduces this label
    (root / "training_xyz.json").write_text(json.dumps(xyz))
    opts = dict(root=root, mano_dir=mano_dir, progress=False)
    summary = prepare("freihand", PrepareOptions(**opts, out=tmp_path / "out"))
    assert [f["id"] for f in summary.check.failed] == ["freihand_training_00000002"]
    assert 3.9 < summary.check.failed[0]["error_mm"] < 4.1
    with pytest.raises(UserError, match=r"freihand_training_00000002 \(right hand\).*4\.0\d* mm away"):
        prepare("freihand", PrepareOptions(**opts, out=tmp_path / "strict", strict=True))


def test_prepare_render_writes_conditions_beside_the_records(tmp_path, mano_dir):
    root = tmp_path / "FreiHAND"
    write_freihand(root, mano_dir, n=2)
    assert _run(root, tmp_path / "out", mano_dir, "--render", "mesh,skeleton") == 0
    rendered = read_dataset(tmp_path / "out" / "render")
    assert [r.id for r in rendered] == [r.id for r in read_dataset(tmp_path / "out")]
    for r in rendered:
        assert set(r.conditions) == {"mesh", "skeleton"} and set(r.local.conditions) == {"mesh", "skeleton"}
        assert (tmp_path / "out" / "render" / r.conditions["mesh"]).is_file()
        assert (tmp_path / "out" / "render" / r.file_name).is_file()  # images shared with the import


def test_prepare_cli_error_is_one_line_without_traceback(tmp_path, mano_dir, capsys):
    root = tmp_path / "FreiHAND"
    write_freihand(root, mano_dir, n=1)
    (root / "training_K.json").unlink()
    assert _run(root, tmp_path / "out", mano_dir) == 2
    err = capsys.readouterr().err
    assert err.startswith("handsynth: error: FreiHAND file ") and "training_K.json is missing" in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_prepare_without_mano_files_says_what_to_pass(tmp_path, mano_dir):
    root = tmp_path / "FreiHAND"
    write_freihand(root, mano_dir, n=1)
    empty = tmp_path / "no_mano"
    empty.mkdir()
    with pytest.raises(UserError, match=r"MANO_RIGHT\.pkl \(or \.npz\) is not in .*no_mano.*--mano-dir"):
        prepare("freihand", PrepareOptions(root=root, out=tmp_path / "out", mano_dir=empty, progress=False))
    assert not (tmp_path / "out").exists()


def test_hand_behind_the_camera_is_skipped_and_counted(tmp_path, mano_dir):
    root = tmp_path / "FreiHAND"
    write_freihand(root, mano_dir, n=3)
    xyz = json.loads((root / "training_xyz.json").read_text())
    xyz[1] = [[x, y, z - 1.3] for x, y, z in xyz[1]]  # the whole hand moved 1.3 m back: behind the camera
    (root / "training_xyz.json").write_text(json.dumps(xyz))
    summary = prepare(
        "freihand", PrepareOptions(root=root, out=tmp_path / "out", mano_dir=mano_dir, progress=False)
    )
    assert summary.skipped == {"hand: not wholly in front of the camera": 1, "frame: no hand left": 1}
    assert not summary.check.failed  # the labels are consistent; the hand is just not visible
    assert [r.id for r in read_dataset(tmp_path / "out")] == [
        "freihand_training_00000000",
        "freihand_training_00000002",
    ]


def test_freihand_tips_from_freihand_vertices_pass_the_strict_check(tmp_path, mano_dir):
    """FreiHAND's xyz fingertips are MANO vertices 744, 320, 443, 555, 672 (lmb-freiburg/freihand
    utils/mano_utils.py kpId2vertices), not smplx's 744, 320, 443, 554, 671: the check compares the 16
    kinematic joints, so correct labels pass ``--strict``."""
    root = tmp_path / "FreiHAND"
    write_freihand(root, mano_dir, n=3)
    opts = PrepareOptions(root=root, out=tmp_path / "out", mano_dir=mano_dir, strict=True, progress=False)
    summary = prepare("freihand", opts)
    assert summary.check.checked == 3 and not summary.check.failed and summary.check.max_error_mm < 0.01
    # The official reading (utils/fh_utils.py): xyz are metres, camera frame, already in OpenPose order.
    xyz = json.loads((root / "training_xyz.json").read_text())
    kinematic = [i for i in range(21) if i not in (4, 8, 12, 16, 20)]
    for r in read_dataset(tmp_path / "out"):
        own = np.asarray(xyz[r.source["label_index"]])
        np.testing.assert_allclose(np.asarray(r.hands[0].joints_3d)[kinematic], own[kinematic], atol=2e-6)
