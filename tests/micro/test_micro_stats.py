"""The micro report's statistics (t-interval, Holm) against scipy, and its labelling rules on hand-made tables."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks" / "micro"))
from micro_stats import ClaimResult, Interval, MetricTest, correct, holm, paired_test, t_interval


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
