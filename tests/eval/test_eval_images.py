"""2D/3D hand metrics with fake tools, the images evaluation end to end, and the CLI report."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
from evalfixtures import MeanStdFeatures, three_datasets

from handsynth.cli import main
from handsynth.data.folder import read_dataset
from handsynth.eval.estimator3d import Hand3DEstimator, squared_root_relative_error
from handsynth.eval.fid import fid_from_features
from handsynth.eval.image_eval import ImageTools, evaluate_images
from handsynth.eval.keypoints2d import Detection, Keypoint2DDetector, match_detections, score_hands, summarise


@pytest.fixture
def datasets(tmp_path):
    return three_datasets(tmp_path)


def test_matching_pairs_detections_with_their_hands_and_rejects_far_ones():
    g0 = np.zeros((21, 2)) + [10, 10]
    g1 = np.zeros((21, 2)) + [100, 100]
    boxes = [[5, 5, 10, 10], [95, 95, 10, 10]]
    dets = [Detection(g1 + 1, 0.9, "left"), Detection(g0 + [3, 4], 0.8, "right")]
    assert match_detections(dets, [g0, g1], boxes) == [1, 0]
    scores = score_hands("x", dets, ["right", "left"], [g0, g1], boxes)
    assert scores[0].sq_error == pytest.approx(25.0)  # 3-4-5 offset on every joint
    assert scores[1].sq_error == pytest.approx(2.0)
    assert [s.confidence for s in scores] == [0.8, 0.9]
    assert [s.detected_side for s in scores] == ["right", "left"]  # the matched detection's own side
    # A detection 40 px away from a 10 px hand is not that hand: unmatched, confidence 0.
    far = score_hands("y", [Detection(g0 + 40, 0.99)], ["right"], [g0], [boxes[0]])
    assert far[0].sq_error is None and far[0].confidence == 0.0
    s = summarise(scores + far)
    assert s["hand_conf"] == pytest.approx((0.8 + 0.9 + 0.0) / 3)
    assert s["mse_2d"] == pytest.approx(13.5) and s["detection_rate"] == pytest.approx(2 / 3)


def test_match_limit_is_half_the_boxs_longer_side_and_mse_is_the_mean_squared_distance():
    g = np.zeros((21, 2)) + [40, 40]
    tall = [[35, 30, 4, 20]]  # longer side 20 -> limit 10 px with the tools' default 0.5
    limit = ImageTools.max_dist * 20
    assert ImageTools.max_dist == 0.5
    # 8 px < 10 (half the width, 4, would refuse it)
    assert match_detections([Detection(g + [0, 8], 0.9)], [g], tall) == [0]
    assert match_detections([Detection(g + [0, 0.96 * limit], 0.9)], [g], tall) == [0]
    assert match_detections([Detection(g + [0, 1.04 * limit], 0.9)], [g], tall) == [None]
    # MSE-2D of a hand = mean over joints of the squared distance (not the squared mean distance)
    kp = g.copy()
    kp[:7] += [3.0, 4.0]  # 7 of 21 joints 5 px off
    (score,) = score_hands("z", [Detection(kp, 0.9)], ["right"], [g], tall)
    assert score.sq_error == pytest.approx(np.mean(np.sum((kp - g) ** 2, -1))) == pytest.approx(25.0 / 3)


class OracleDetector:
    """Returns the labelled keypoints (read from the dataset) shifted by a known offset."""

    name = "oracle"

    def __init__(self, folder, offset=(1.0, 2.0), conf=0.7):
        self.samples = read_dataset(folder)
        self.offset = np.asarray(offset)
        self.conf = conf
        self.calls = 0

    def detect(self, image):
        # Images arrive in record order (one pass per dataset).
        s = self.samples[self.calls]
        self.calls += 1
        return [Detection(np.asarray(h.joints_2d) + self.offset, self.conf, h.side) for h in s.hands]


class OracleEstimator:
    """Predicts each hand's labelled joints plus a constant 3D offset on joint 4 (4 mm)."""

    name = "oracle-3d"

    def __init__(self, folder):
        self.queue = [np.asarray(h.joints_3d) for s in read_dataset(folder) for h in s.hands]
        self.seen_bboxes = []

    def predict(self, images, bboxes):
        out = []
        for _ in images:
            j = self.queue.pop(0).copy()
            j[4, 0] += 0.004
            out.append(j)
        self.seen_bboxes.append(np.asarray(bboxes))
        return np.stack(out)


def test_protocols_are_structural():
    assert isinstance(OracleDetector.__new__(OracleDetector), Keypoint2DDetector)
    assert isinstance(OracleEstimator.__new__(OracleEstimator), Hand3DEstimator)
    a = np.zeros((1, 21, 3))
    b = a.copy()
    b[0, 3] = [0.01, 0, 0]
    assert squared_root_relative_error(a + 5, b)[0] == pytest.approx(1e-4 / 21)


def test_evaluate_images_end_to_end(datasets):
    tools = ImageTools(extractor=MeanStdFeatures(), kid_subsets=10)
    tools.detector = OracleDetector(datasets["fake_a"])
    tools.estimator = OracleEstimator(datasets["fake_a"])
    res = evaluate_images(datasets["real"], [datasets["fake_a"]], tools)
    row = res.rows["fake_a"]
    assert row["Hand Conf."] == pytest.approx(0.7)
    assert row["MSE-2D"] == pytest.approx(1.0 + 4.0)
    assert row["MSE-3D"] == pytest.approx(0.16 / 21)  # (0.4 cm)² on one joint of 21, in cm²
    assert row["MPJPE-3D_mm"] == pytest.approx(4.0 / 21)
    assert row["num_images"] == 8 and row["num_hand_crops"] == 12  # 4 one-hand + 4 two-hand records
    # FID equals the direct computation on the same features.
    scan, real = res.scans["fake_a"], res.real
    assert row["FID"] == pytest.approx(fid_from_features(real.feats, scan.feats))
    assert scan.crop_feats.shape == (12, 6)
    assert res.tools["feature_extractor"] == "mean/std test extractor"
    assert any("CLIP" in n for n in res.notes)


def test_fid_orders_methods_and_identical_sets_give_zero(datasets):
    tools = ImageTools(extractor=MeanStdFeatures(), kid_subsets=10)
    res = evaluate_images(datasets["real"], [datasets["real"], datasets["fake_a"], datasets["fake_b"]], tools,
                          names=["same", "near", "far"])  # fmt: skip
    assert abs(res.rows["same"]["FID"]) < 1e-6 and abs(res.rows["same"]["FID-H"]) < 1e-6
    assert res.rows["near"]["FID"] < res.rows["far"]["FID"]
    assert res.rows["near"]["KID-H"] < res.rows["far"]["KID-H"]


def _as_coco_wholebody(folder, out):
    """A copy of ``folder`` whose hands are 2D-only (``hands_2d``, ``hands: []``), as the COCO-WholeBody
    importer writes them; the images are shared."""
    out.mkdir()
    (out / "images").symlink_to(folder / "images")
    lines = []
    for line in (folder / "metadata.jsonl").read_text().splitlines():
        rec = json.loads(line)
        rec["hands_2d"] = [
            {"side": h["side"], "bbox": h["bbox"], "joints_2d": h["joints_2d"], "visibility": [2] * 21}
            for h in rec["hands"]
        ]
        rec["hands"] = []
        lines.append(json.dumps(rec))
    (out / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return out


def test_fid_h_counts_2d_only_hands_of_a_coco_wholebody_reference(datasets, tmp_path):
    """A real set labelled like COCO-WholeBody (the paper's real set) gives the same hand crops, hence the
    same FID-H / KID-H, as the same hands in ``hands``; before, it gave no crops and FID-H was silently
    missing. A set with no hands says so in the notes."""
    tools = ImageTools(extractor=MeanStdFeatures(), kid_subsets=10)
    coco = _as_coco_wholebody(datasets["real"], tmp_path / "coco")
    ref = evaluate_images(datasets["real"], [datasets["fake_a"]], tools).rows["fake_a"]
    got = evaluate_images(coco, [datasets["fake_a"]], tools)
    assert got.rows["fake_a"]["FID-H"] is not None
    assert got.rows["fake_a"]["FID-H"] == pytest.approx(ref["FID-H"], rel=1e-9)
    assert got.rows["fake_a"]["KID-H"] == pytest.approx(ref["KID-H"], rel=1e-9)
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "images").symlink_to(datasets["fake_a"] / "images")
    recs = [json.loads(x) for x in (datasets["fake_a"] / "metadata.jsonl").read_text().splitlines()]
    (bare / "metadata.jsonl").write_text("".join(json.dumps({**r, "hands": []}) + "\n" for r in recs))
    res = evaluate_images(datasets["real"], [bare], tools)
    assert res.rows["bare"]["FID-H"] is None and res.rows["bare"]["FID"] is not None
    assert any("FID-H/KID-H skipped" in n and "bare" in n for n in res.notes)


def test_cli_images_and_recon_reports(datasets, tmp_path):
    out = tmp_path / "report"
    rc = main(["evaluate", "images", "--real", str(datasets["real"]), "--fake", str(datasets["fake_a"]),
               str(datasets["fake_b"]), "--out", str(out), "--extractor", "import:evalfixtures:make_extractor",
               "--detector", "none", "--kid-subsets", "5"])  # fmt: skip
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert (
        set(m["rows"]) == {"fake_a", "fake_b"}
        and m["tools"]["feature_extractor"] == "mean/std test extractor"
    )
    md = (out / "report.md").read_text()
    assert "| Method | FID | KID | FID-H | KID-H | Hand Conf. | MSE-2D | MSE-3D |" in md
    assert (out / "grid_fake_a.png").stat().st_size > 1000

    rc = main(["evaluate", "recon", "--pred", str(datasets["fake_a"]), "--gt", str(datasets["real"]),
               "--out", str(tmp_path / "recon")])  # fmt: skip
    assert rc == 0
    m = json.loads((tmp_path / "recon/metrics.json").read_text())
    assert m["summary"]["MPJPE"] > 0 and m["extra"]["num_two_hand_samples"] == 4
    assert (
        "| MPJPE | PA-MPJPE | MPVPE | PA-MPVPE | AUC_J | AUC_V | F@5 | F@15 | MRRPE | RRVE |"
        in (tmp_path / "recon/report.md").read_text()
    )
    for f in ("pck_joints.png", "grid.png"):
        assert (tmp_path / "recon" / f).stat().st_size > 1000
    rc = main(["evaluate", "recon", "--pred", str(datasets["fake_a"]), "--gt", str(datasets["real"]),
               "--out", str(tmp_path / "recon_hb"), "--layout", "handbooster"])  # fmt: skip
    md = (tmp_path / "recon_hb/report.md").read_text()
    assert (
        rc == 0 and "| Method | PA J-PE | PA J-AUC | PA V-PE | PA V-AUC | PA F@5 | PA F@15 | RR J-PE |" in md
    )
    hb = json.loads((tmp_path / "recon_hb/metrics.json").read_text())
    assert hb["summary"] == m["summary"]  # the layout changes the report's columns, not the numbers


def test_cli_user_errors_write_nothing(datasets, tmp_path, capsys):
    out = tmp_path / "never"
    rc = main(["evaluate", "images", "--real", str(datasets["real"]), "--fake", str(datasets["fake_a"]),
               "--out", str(out), "--detector", "none", "--extractor", "inception"])  # fmt: skip
    assert rc == 2 and "--inception-weights" in capsys.readouterr().err and not out.exists()
    import torch

    if not torch.cuda.is_available():  # a GPU this machine lacks: one sentence, not torch's assertion
        rc = main(["evaluate", "images", "--real", str(datasets["real"]), "--fake", str(datasets["fake_a"]),
                   "--out", str(out), "--extractor", "world", "--device", "cuda"])  # fmt: skip
        assert rc == 2 and "--device cuda: no CUDA device is available here" in capsys.readouterr().err
    rc = main(["evaluate", "images", "--real", str(datasets["real"]), "--fake", str(datasets["fake_a"]),
               "--out", str(out), "--extractor", "world", "--device", "gpu0"])  # fmt: skip
    assert rc == 2 and "--device 'gpu0' is not a torch device" in capsys.readouterr().err and not out.exists()
    rc = main(["evaluate", "images", "--real", str(datasets["real"]), "--fake", str(datasets["fake_a"]),
               "--out", str(datasets["fake_a"]), "--extractor", "world"])  # fmt: skip
    assert rc == 2 and "is a dataset folder" in capsys.readouterr().err
    assert not (datasets["fake_a"] / "report.md").exists()
    rc = main(["evaluate", "recon", "--pred", str(tmp_path / "nope.json"), "--gt", str(datasets["real"]),
               "--out", str(out)])  # fmt: skip
    assert rc == 2 and not out.exists()


@pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None, reason="mediapipe extra not installed")
def test_mediapipe_detector_runs_offline():
    from handsynth.eval.mediapipe_detector import MediaPipeHandDetector

    det = MediaPipeHandDetector()
    assert det.detect(np.zeros((64, 64, 3), np.uint8)) == []
    assert "mediapipe" in sys.modules


def test_without_inception_weights_fid_is_skipped_and_world_tools_give_numbers(datasets, tmp_path, capsys):
    """docs/eval.md: an absent tool's metrics are skipped with a note; the shipped world tools give
    offline numbers."""
    out = tmp_path / "skipped"
    rc = main(["evaluate", "images", "--real", str(datasets["real"]), "--fake", str(datasets["fake_a"]),
               "--out", str(out), "--detector", "none"])  # fmt: skip
    assert rc == 2 and "nothing to compute" in capsys.readouterr().err and not out.exists()  # no tool at all
    rc = main(["evaluate", "images", "--real", str(datasets["real"]), "--fake", str(datasets["fake_a"]),
               "--out", str(out), "--detector", "world"])  # fmt: skip
    assert rc == 0 and "--extractor world" in capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert m["rows"]["fake_a"].get("FID") is None and "Hand Conf." in m["rows"]["fake_a"]
    assert any("FID/KID/FID-H/KID-H skipped" in n for n in m["notes"])
    out = tmp_path / "world"
    rc = main(["evaluate", "images", "--real", str(datasets["real"]), "--fake", str(datasets["fake_a"]),
               "--out", str(out), "--extractor", "world", "--detector", "world", "--kid-subsets", "5"])  # fmt: skip
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    row = m["rows"]["fake_a"]
    assert row["FID"] > 0 and "Hand Conf." in row and m["tools"]["feature_extractor"]
