"""`handsynth filter`: records are kept or rejected exactly as the thresholds say; a record whose joints
were corrupted is rejected by a tiny trained estimator while the faithful one is kept."""

from __future__ import annotations

import json

import numpy as np
import pytest
from recon_helpers import StandInHand, make_dataset, tiny_config, use_standin_hand_models

from handsynth.cli import main
from handsynth.data import read_dataset
from handsynth.errors import UserError
from handsynth.recon import edge_filter as ef
from handsynth.recon.predict import ReconEstimator
from handsynth.recon.train import train


def _scores(rows: list[tuple[str, str, float, float, float, float]], vertices: bool = True) -> ef.HandScores:
    errors = np.array([r[2:] for r in rows], float)
    keys = [(r[0], r[1]) for r in rows]
    by_metric = {m: errors[:, k] for k, m in enumerate(ef.METRICS) if vertices or m not in ef.VERTEX_METRICS}
    z = np.zeros((len(rows), 21, 3))
    return ef.HandScores(keys, by_metric, z, z)


def test_decide_keeps_and_rejects_exactly_as_the_thresholds_say():
    th, _ = ef.resolve_thresholds("dexycb", {})
    assert th == {"mpjpe": 25.0, "mpvpe": 25.0, "pa_mpjpe": 10.0, "pa_mpvpe": 10.0}  # the paper's values
    scores = _scores(
        [
            ("at_limit", "right", 25.0, 25.0, 10.0, 10.0),  # equal to every threshold: kept
            ("mpjpe", "right", 25.01, 1.0, 1.0, 1.0),
            ("pa_mpvpe", "right", 1.0, 1.0, 1.0, 10.5),
            ("two", "right", 1.0, 1.0, 1.0, 1.0),
            ("two", "left", 1.0, 1.0, 12.0, 1.0),  # one bad hand rejects the record
            ("fine", "left", 24.0, 24.0, 9.0, 9.0),
            ("bad_first", "left", 1.0, 30.0, 1.0, 1.0),  # a bad hand before a good one still rejects
            ("bad_first", "right", 1.0, 1.0, 1.0, 1.0),
        ]
    )
    d = ef.decide(scores, th)
    assert d.kept == {
        "at_limit": True, "mpjpe": False, "pa_mpvpe": False, "two": False, "fine": True, "bad_first": False
    }  # fmt: skip
    assert d.failures["two"] == [("left", "pa_mpjpe")] and d.failures["mpjpe"] == [("right", "mpjpe")]
    # without vertex metrics the vertex thresholds are not applied
    d2 = ef.decide(_scores([("v", "right", 1.0, 99.0, 1.0, 99.0)], vertices=False), th)
    assert d2.kept == {"v": True} and set(d2.applied) == {"mpjpe", "pa_mpjpe"}


def test_a_nan_prediction_is_rejected_and_left_out_of_percentiles_and_histograms(tmp_path):
    scores = _scores([("ok", "right", 1.0, 1.0, 1.0, 1.0), ("nan", "right", *[float("nan")] * 4)])
    scores.pred_joints = scores.pred_joints.copy()
    scores.pred_joints[1] = np.nan
    d = ef.decide(scores, {"mpjpe": 25.0})
    assert d.kept == {"ok": True, "nan": False} and d.failures["nan"] == [("right", "mpjpe")]
    th, _ = ef.resolve_thresholds(100.0, {}, scores)  # the 100th percentile of the finite errors
    assert th["mpjpe"] == 1.0
    assert ef._worst_rejects(scores, d, 5) == []  # nothing to draw for a prediction that is not a hand
    with pytest.raises(UserError, match="no finite hand on the reference set"):
        ef.resolve_thresholds(95.0, {}, _scores([("nan", "right", *[float("nan")] * 4)]))
    from handsynth.eval.plots import histogram_plot

    assert histogram_plot([1.0, float("nan"), float("inf")], "t", "mm", 2.0).size == (480, 300)


def test_thresholds_from_presets_flags_and_percentiles():
    th, src = ef.resolve_thresholds("ho3d", {"mpjpe": 40.0, "mpvpe": None})
    assert th == {"mpjpe": 40.0, "mpvpe": 50.0, "pa_mpjpe": 20.0, "pa_mpvpe": 20.0} and "ho3d" in src
    ref = _scores([(f"r{i}", "right", float(i), 2.0 * i, 0.5 * i, float(i)) for i in range(1, 101)])
    th, _ = ef.resolve_thresholds(ef.parse_preset("percentile:95"), {}, ref)
    assert th["mpjpe"] == pytest.approx(np.percentile(np.arange(1, 101), 95))
    assert th["mpvpe"] == pytest.approx(2 * th["mpjpe"])
    for bad in ("dexycb2", "percentile:0", "percentile:x", "percentile:101"):
        with pytest.raises(UserError, match="--preset"):
            ef.parse_preset(bad)
    with pytest.raises(UserError, match="--reference"):
        ef.resolve_thresholds(95.0, {})
    with pytest.raises(UserError, match="no threshold"):
        ef.resolve_thresholds(None, {"mpjpe": None})


@pytest.fixture
def standin_models(monkeypatch):
    use_standin_hand_models(monkeypatch)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny estimator trained for a few steps on real data, and a generated set: two records on the
    same image, one with faithful labels, one whose joints were moved ~8 cm each (wrist kept)."""
    tmp = tmp_path_factory.mktemp("edge_filter")
    real = make_dataset(tmp / "real", 8, seed=3, sides=("right",))
    run = tmp / "run"
    train(tiny_config([str(real)], run, steps=6), hand_model=StandInHand(), progress=False)
    gen = tmp / "gen"
    (gen / "images").mkdir(parents=True)
    src = json.loads((real / "metadata.jsonl").read_text().splitlines()[0])
    (gen / src["file_name"]).write_bytes((real / src["file_name"]).read_bytes())
    bad = json.loads(json.dumps(src))
    joints = np.asarray(bad["hands"][0]["joints_3d"])
    noise = np.random.default_rng(0).normal(0.0, 0.05, joints.shape)
    noise[0] = 0.0
    bad["hands"][0]["joints_3d"] = (joints + noise).tolist()
    records = [{**src, "id": "faithful"}, {**bad, "id": "corrupted"}]
    (gen / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return real, run, gen


def test_corrupted_record_is_rejected_and_faithful_one_kept(trained, tmp_path, standin_models, capsys):
    real, run, gen = trained
    est = ReconEstimator.from_checkpoint(run)
    scores = ef.score_hands(est, gen, show_progress=False)
    err = dict(zip([k[0] for k in scores.keys], scores.errors["mpjpe"]))
    assert err["corrupted"] > err["faithful"] + 20  # the same image: only the labels differ
    assert set(scores.errors) == set(ef.METRICS)  # the records use the estimator's hand model
    threshold = (err["corrupted"] + err["faithful"]) / 2
    out = tmp_path / "kept"
    args = ["filter", "--in", str(gen), "--estimator", str(run), "--out", str(out)]
    assert main([*args, "--max-mpjpe", f"{threshold:.3f}"]) == 0
    kept = read_dataset(out)
    assert [s.id for s in kept] == ["faithful"]
    image = out / kept[0].file_name
    assert image.is_symlink() and image.resolve() == (gen / kept[0].file_name).resolve()  # linked, not copied
    report = json.loads((out / "filter_report.json").read_text())
    assert report["summary"]["pass_rate"] == 0.5 and report["summary"]["thresholds_mm"] == {
        "mpjpe": pytest.approx(threshold, abs=1e-3)
    }
    assert report["records"][1] == {"id": "corrupted", "kept": False, "over": ["right:mpjpe"]}
    for f in ("filter_report.md", "filter_hist_mpjpe.png", "filter_hist_pa_mpvpe.png", "filter_rejects.png"):
        assert (out / f).is_file()
    assert "kept 1 of 2 records" in capsys.readouterr().out
    # thresholds nothing passes: an empty dataset (metadata.jsonl present), not a folder without one
    assert main([*args[:-1], str(tmp_path / "none"), "--max-mpjpe", "0.001"]) == 0
    assert (tmp_path / "none" / "metadata.jsonl").exists() and read_dataset(tmp_path / "none") == []


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_broken_prediction_of_a_real_estimator_is_scored_nan_with_vertices(
    trained, standin_models, monkeypatch, bad
):
    """score_hands on the estimator's own hand model (vertex metrics and F-scores computed): a hand
    predicted NaN or infinite gets NaN errors (before: scipy's k-d tree stopped the run, or an infinite
    MPJPE reached the percentiles and the report) and the other hand keeps its score."""
    real, run, gen = trained
    real_predict = ef.predict_dataset

    def predict(est, data, **kw):
        keys, pred = real_predict(est, data, **kw)
        i = keys.index(("corrupted", "right"))
        pred["joints"][i, 5, 1] = bad
        pred["verts"][i, 9, 0] = bad
        return keys, pred

    est = ReconEstimator.from_checkpoint(run)
    good = ef.score_hands(est, gen, show_progress=False)
    monkeypatch.setattr(ef, "predict_dataset", predict)
    scores = ef.score_hands(est, gen, show_progress=False)
    i = scores.keys.index(("corrupted", "right"))
    assert set(scores.errors) == set(ef.METRICS)
    for m, v in scores.errors.items():
        assert np.isnan(v[i]), m
        np.testing.assert_allclose(np.delete(v, i), np.delete(good.errors[m], i))
    assert any("NaN or infinite" in n for n in scores.notes)


def test_percentile_preset_uses_the_reference_errors(trained, tmp_path, standin_models):
    real, run, gen = trained
    out = tmp_path / "kept"
    args = ["filter", "--in", str(gen), "--estimator", str(run), "--out", str(out)]
    assert main([*args, "--preset", "percentile:50", "--reference", str(real)]) == 0
    report = json.loads((out / "filter_report.json").read_text())
    ref = ef.score_hands(ReconEstimator.from_checkpoint(run), real, show_progress=False)
    for m in ef.METRICS:
        assert report["summary"]["thresholds_mm"][m] == pytest.approx(np.percentile(ref.errors[m], 50))


def test_a_killed_run_resumes_when_its_percentile_thresholds_differ_only_by_float_noise(
    trained, tmp_path, standin_models
):
    """Percentile thresholds are recomputed on every run and move in the last digits with --batch-size
    or --threads: a rerun into the folder of a killed run keeps the thresholds it started with instead
    of being refused as "different settings"; a real change (another percentile) is still refused."""
    real, run, gen = trained
    out = tmp_path / "kept"
    args = ["filter", "--in", str(gen), "--estimator", str(run), "--out", str(out), "--reference", str(real)]
    assert main([*args, "--preset", "percentile:50"]) == 0
    settings = json.loads((out / "handsynth_run.json").read_text())
    noisy = {m: v * (1 + 3e-9) for m, v in settings["thresholds_mm"].items()}  # as another batch size gave
    (out / "handsynth_run.json").write_text(json.dumps({**settings, "thresholds_mm": noisy}))
    (out / "metadata.jsonl").write_text("")  # killed before its first kept record
    assert main([*args, "--preset", "percentile:50"]) == 0
    report = json.loads((out / "filter_report.json").read_text())
    assert report["summary"]["thresholds_mm"] == noisy  # the folder's own thresholds, reused
    assert [s.id for s in read_dataset(out)] == [r["id"] for r in report["records"] if r["kept"]]
    assert main([*args, "--preset", "percentile:90"]) == 2


def test_thresholds_of_an_earlier_report_are_reused_without_scoring_the_reference(
    trained, tmp_path, standin_models, monkeypatch
):
    real, run, gen = trained
    args = ["filter", "--in", str(gen), "--estimator", str(run)]
    assert (
        main([*args, "--out", str(tmp_path / "a"), "--preset", "percentile:50", "--reference", str(real)])
        == 0
    )
    first = json.loads((tmp_path / "a" / "filter_report.json").read_text())["summary"]
    scored = []
    real_score = ef.score_hands
    monkeypatch.setattr(
        ef, "score_hands", lambda est, data, **kw: scored.append(data) or real_score(est, data, **kw)
    )
    reused = tmp_path / "a" / "filter_report.json"
    assert (
        main([*args, "--out", str(tmp_path / "b"), "--thresholds", str(reused), "--max-mpjpe", "1000"]) == 0
    )
    assert scored == [str(gen)]  # only the generated set: the reference was not scored again
    second = json.loads((tmp_path / "b" / "filter_report.json").read_text())["summary"]
    assert second["thresholds_mm"] == {**first["thresholds_mm"], "mpjpe": 1000.0}
    assert str(reused) in second["thresholds_from"] and "percentile" in second["thresholds_from"]
    assert "--max-mpjpe 1000" in second["thresholds_from"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "no threshold"),
        (["--preset", "percentile:95"], "--reference"),
        (["--preset", "dexcyb"], "--preset 'dexcyb'"),
        (["--thresholds", "missing.json"], "--thresholds missing.json: cannot read"),
        (["--thresholds", "x.json", "--preset", "dexycb"], "replaces --preset and --reference"),
        (["--preset", "dexycb", "--device", "gpu0"], "--device 'gpu0' is not a torch device"),
    ],
)
def test_bad_settings_fail_before_any_output(trained, tmp_path, standin_models, capsys, extra, message):
    _, run, gen = trained
    out = tmp_path / "kept"
    assert main(["filter", "--in", str(gen), "--estimator", str(run), "--out", str(out), *extra]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_a_thresholds_file_without_thresholds_is_refused_naming_it(tmp_path):
    bad = tmp_path / "report.json"
    bad.write_text(json.dumps({"summary": {"thresholds_mm": {"mpjpee": 3}}}))
    with pytest.raises(UserError, match=r"report.json: thresholds_mm entries \['mpjpee'\]"):
        ef.load_thresholds(bad)
    bad.write_text("[]")
    with pytest.raises(UserError, match="no thresholds_mm mapping"):
        ef.load_thresholds(bad)
    bad.write_text(json.dumps({"thresholds_mm": {"mpjpe": 25, "pa_mpjpe": 10}}))
    assert ef.load_thresholds(bad) == ({"mpjpe": 25.0, "pa_mpjpe": 10.0}, f"{bad} (given)")
