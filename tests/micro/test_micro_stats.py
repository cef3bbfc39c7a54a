"""The micro report's statistics (t-interval, Holm) against scipy, and its labelling rules on hand-made tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "micro"))
from micro_stats import ClaimResult, Interval, MetricTest, by_seed, correct, holm, paired_test, t_interval


def test_t_interval_matches_scipy():
    d = np.array([1.3, 0.2, 2.9, 1.1, 0.7])
    iv = t_interval(d)
    ref = st.ttest_1samp(d, 0.0)
    lo, hi = st.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=st.sem(d))
    assert iv.mean == pytest.approx(d.mean())
    assert iv.low == pytest.approx(lo) and iv.high == pytest.approx(hi)
    assert iv.p == pytest.approx(ref.pvalue)


def test_t_interval_with_one_pair_has_no_interval_and_nans_are_dropped():
    iv = t_interval([2.0, float("nan")])
    assert iv.n == 1 and iv.low is None and iv.p is None


def test_holm_matches_the_step_down_definition():
    p = [0.01, 0.04, 0.03, 0.005, None]
    adj = holm(p)
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    assert adj[3] == pytest.approx(0.02) and adj[0] == pytest.approx(0.03)
    assert adj[2] == pytest.approx(0.06) and adj[1] == pytest.approx(0.06) and adj[4] is None
    # adjusted p-values are probabilities: capped at 1
    assert holm([0.6, 0.7, 0.02]) == pytest.approx([1.0, 1.0, 0.06])
    try:
        from statsmodels.stats.multitest import multipletests
    except ImportError:
        return
    ref = multipletests([x for x in p if x is not None], method="holm")[1]
    assert np.allclose([x for x in adj if x is not None], ref)


def _test(metric: str, mean: float, p: float | None, measurable: bool = True) -> MetricTest:
    t = MetricTest(metric, Interval(3, mean, None, None, p), measurable, "" if measurable else "trivial")
    t.p_holm = p
    return t


@pytest.mark.parametrize(
    "tests,label",
    [
        ([_test("FID", 5, 0.001), _test("KID", 1, 0.5)], "reproduced"),
        ([_test("FID", -5, 0.001), _test("KID", 1, 0.5)], "contradicted"),
        ([_test("FID", 5, 0.001), _test("KID", -1, 0.01)], "mixed"),
        ([_test("FID", 5, 0.2), _test("KID", -1, 0.3)], "inconclusive"),
        ([_test("FID", 5, 0.001, measurable=False)], "not measurable"),
        ([_test("FID", 5, 0.001, measurable=False), _test("KID", -2, 0.001)], "contradicted"),
    ],
)
def test_claim_labels_on_hand_made_tables(tests, label):
    assert ClaimResult("c", "claim", tests).label == label


def test_significance_needs_p_below_alpha():
    assert _test("FID", 5, 0.05).status == "unclear"
    assert _test("FID", 5, 0.0499).status == "as claimed" and _test("FID", -5, 0.0499).status == "opposite"


def test_a_failed_gate_makes_the_claim_not_measurable_whatever_the_metrics_say():
    c = ClaimResult(
        "c", "claim", [_test("FID", 5, 1e-9)], failed_gates=["(c) guided samples follow the mesh"]
    )
    assert c.label == "not measurable" and "stopped by" in c.reason


def test_a_metric_counts_only_when_both_methods_beat_the_trivial_row():
    # MSE-2D (lower is better): the trivial row scores 200; the second method scores 250 -> not measurable.
    t = paired_test([100.0, 110.0, 105.0], [250.0, 260.0, 240.0], False, "MSE-2D", trivial=200.0)
    assert not t.measurable and "second method does not beat" in t.reason
    t = paired_test([100.0, 110.0, 105.0], [150.0, 160.0, 140.0], False, "MSE-2D", trivial=200.0)
    assert t.measurable and t.interval.mean == pytest.approx(45.0)  # positive: as claimed
    t = paired_test([0.9, 0.8], [0.5, 0.6], True, "Hand Conf.", trivial=None)
    assert not t.measurable and "trivial row" in t.reason


def test_holm_correction_counts_only_tests_of_claims_that_pass_their_gates():
    a = ClaimResult("a", "a", [paired_test([1.0, 2.0, 3.0], [5.0, 6.0, 7.5], False, "MSE-2D", 100.0)])
    b = ClaimResult("b", "b", [paired_test([1.0, 2.0, 3.0], [5.0, 6.0, 7.5], False, "MSE-2D", 100.0)])
    b.failed_gates = ["(a)"]
    n = correct([a, b])
    assert n == 1 and a.tests[0].p_holm == pytest.approx(a.tests[0].interval.p) and b.tests[0].p_holm is None


def test_a_claim_reason_names_a_stopped_test_set_once_and_groups_shared_reasons():
    iv = t_interval([1.0, 2.0, 3.0])
    tests = [
        MetricTest("holab RR J-PE", iv, False, "0 paired seed(s)"),
        MetricTest("holab RR V-PE", iv, False, "0 paired seed(s)"),
        MetricTest("howild RR J-PE", iv, False, "stopped by Y3"),
    ]
    c = ClaimResult("x", "x", tests, stopped={"howild": "Y3 (howild): 1.24"})
    assert c.reason == (
        "no metric measurable: holab RR J-PE, holab RR V-PE: 0 paired seed(s); howild not judged, "
        "stopped by Y3 (howild): 1.24"
    )
    assert c.label == "not measurable"


def test_by_seed_leaves_gaps_where_a_row_lacks_a_seed():
    table = {"a": {"m": {0: 1.0, 1: 2.0, 2: 3.0}}, "b": {"m": {1: 5.0, 2: 6.0}}, "c": {"m": {}}}
    assert by_seed(table, [0, 1, 2, 3]) == {
        "a": {"m": [1.0, 2.0, 3.0]},
        "b": {"m": [None, 5.0, 6.0]},  # seed 3: no row has it, dropped
        "c": {"m": [None, None, None]},
    }


def _write_summary(path: Path, summary: dict) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "metrics.json").write_text(json.dumps({"summary": summary, "extra": {}, "rows": summary}))


def test_report_pairs_rows_by_seed_when_one_row_misses_a_seed(tmp_path, monkeypatch):
    """Table 2 with real lab at seeds 0-2 and AttentionHand at 1-2 only (seed 0 not finished): the paired
    differences must be taken per seed; before, AttentionHand's seeds 1, 2 were paired with real lab's 0, 1."""
    from types import SimpleNamespace

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks" / "micro"))
    from report import collect

    vals = {"real_lab": {0: 30.0, 1: 31.0, 2: 32.0}, "attentionhand": {1: 29.0, 2: 29.5}}
    for name, per_seed in vals.items():
        for seed, v in per_seed.items():
            _write_summary(tmp_path / name / f"seed{seed}" / "eval", {"PA-MPJPE": v})
    r = SimpleNamespace(
        cfg={"seeds": [0, 1, 2]},
        work=tmp_path / "none",
        downstream_sets=lambda: list(vals),
        down_dir=lambda name, seed: tmp_path / name / f"seed{seed}",
    )
    t2 = collect(r)["t2"]
    test = paired_test(t2["attentionhand"]["PA-MPJPE"], t2["real_lab"]["PA-MPJPE"], False, "PA-MPJPE", 80.0)
    # by hand: seed 1: 31 - 29 = 2, seed 2: 32 - 29.5 = 2.5 (positive = lower error, as claimed)
    assert test.interval.n == 2 and test.interval.mean == pytest.approx(2.25)
    assert test.interval.low == pytest.approx(2.25 - st.t.ppf(0.975, 1) * 0.25)


def test_handbooster_collect_pairs_rows_by_seed(tmp_path, monkeypatch):
    """A HandBooster row whose seed-1 set was too small to train: its seed 2 is compared with seed 2."""
    from types import SimpleNamespace

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks" / "micro"))
    from handbooster_suite import TEST_SETS, collect

    vals = {"a_real": {0: 30.0, 1: 31.0, 2: 32.0}, "e_normal_texture": {0: 28.0, 2: 29.0}}
    for name, per_seed in vals.items():
        for seed, v in per_seed.items():
            for t in TEST_SETS:
                _write_summary(tmp_path / name / f"seed{seed}" / f"eval_{t}", {"MPJPE": v})
    fid = {0: {"a_real": 5.0, "e_normal_texture": 3.0}, 2: {"a_real": 7.0}}
    for seed, rows in fid.items():
        (tmp_path / "eval" / f"seed{seed}").mkdir(parents=True)
        rows = {k: {"FID": v, "n": 10} for k, v in rows.items()}
        (tmp_path / "eval" / f"seed{seed}" / "fid.json").write_text(json.dumps({"rows": rows}))
    r = SimpleNamespace(
        cfg={"seeds": [0, 1, 2], "recon": {"width": 0.25}},
        work=tmp_path,
        downstream_rows=lambda: list(vals),
        widths=lambda row: [0.25],
        down=lambda row, width, seed: tmp_path / row / f"seed{seed}",
    )
    data = collect(r)
    down = data["downstream"][TEST_SETS[0]]
    assert down["a_real"]["RR J-PE"] == [30.0, 31.0, 32.0]
    assert down["e_normal_texture"]["RR J-PE"] == [28.0, None, 29.0]
    test = paired_test(down["e_normal_texture"]["RR J-PE"], down["a_real"]["RR J-PE"], False, "J", 80.0)
    assert test.interval.n == 2 and test.interval.mean == pytest.approx(2.5)  # (30-28 + 32-29) / 2
    assert data["fid"]["e_normal_texture"]["FID"] == [3.0, None]  # seeds 0 and 2 (1 has no fid.json)
    assert data["fid"]["a_real"]["n"] == [10, 10]
