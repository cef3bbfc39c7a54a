"""Statistics and labelling rules of the micro benchmark's report (pure functions, unit-tested).

Why a module of its own: the labels are the benchmark's conclusions, so their rules must be written
once, tested on hand-made tables, and quoted by the report exactly as they are applied.

- A *paired difference* is taken per seed between the two methods a claim compares, oriented so that
  a positive value means "as the paper claims"; its mean gets a two-sided 95 % Student-t interval and
  a p-value (H0: mean difference 0).
- The p-values of all tests in one report are Holm-corrected together (family-wise error 5 %).
- A metric is *measurable* for a claim only when both compared methods beat the metric's trivial row
  (a constant predictor / blank images / shuffled labels); otherwise nothing it says about the claim
  is evidence.
- Per metric: *as claimed* (Holm-adjusted p < 0.05, positive), *opposite* (same, negative), *unclear*.
- Per claim: *not measurable* (a gate failed, or no metric is measurable), *reproduced* (some metric
  as claimed, none opposite), *contradicted* (some opposite, none as claimed), *mixed* (both),
  *inconclusive* (none significant after correction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as _st

ALPHA = 0.05


@dataclass
class Interval:
    """Mean of paired differences with its two-sided t-interval and p-value (None with < 2 pairs)."""

    n: int
    mean: float
    low: float | None
    high: float | None
    p: float | None


def t_interval(diffs: list[float] | np.ndarray, confidence: float = 0.95) -> Interval:
    """The mean of ``diffs`` with a Student-t interval (df = n - 1) and the two-sided one-sample p-value."""
    d = np.asarray([x for x in diffs if x is not None and not math.isnan(x)], np.float64)
    n = len(d)
    if n == 0:
        return Interval(0, float("nan"), None, None, None)
    mean = float(d.mean())
    if n < 2:
        return Interval(n, mean, None, None, None)
    se = float(d.std(ddof=1) / math.sqrt(n))
    if se == 0.0:  # identical differences: the interval is the point, the test is decided by its sign
        return Interval(n, mean, mean, mean, 1.0 if mean == 0.0 else 0.0)
    q = float(_st.t.ppf(0.5 + confidence / 2, n - 1))
    t = mean / se
    p = float(2 * _st.t.sf(abs(t), n - 1))
    return Interval(n, mean, mean - q * se, mean + q * se, p)


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (None stays None and is not counted as a test)."""
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    m = len(idx)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda k: pvalues[k])):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        out[i] = running
    return out


def by_seed(
    table: dict[str, dict[str, dict[int, float | None]]], seeds: list[int]
) -> dict[str, dict[str, list[float | None]]]:
    """{row: {metric: {seed: value}}} -> {row: {metric: [value per seed]}}, None where a row lacks a seed.

    Why: :func:`paired_test` pairs two rows' lists by position, so position i must be the same seed
    in every row; a row that is missing a seed (a stage not finished there, a set too small to train,
    a row drawn at fewer seeds) must leave a gap, not shift its later seeds onto earlier ones. Seeds
    no row has are dropped."""
    used = [s for s in seeds if any(s in vals for cols in table.values() for vals in cols.values())]
    return {row: {k: [vals.get(s) for s in used] for k, vals in cols.items()} for row, cols in table.items()}


def beats(value: float | None, trivial: float | None, higher_is_better: bool) -> bool | None:
    """Whether a method's mean beats the trivial row's value (None when either is missing)."""
    if value is None or trivial is None or math.isnan(value) or math.isnan(trivial):
        return None
    return value > trivial if higher_is_better else value < trivial


@dataclass
class MetricTest:
    """One metric of one claim: the paired test and whether it may count."""

    metric: str
    interval: Interval
    measurable: bool
    reason: str = ""
    p_holm: float | None = None

    @property
    def status(self) -> str:
        """'as claimed' / 'opposite' / 'unclear' / 'not measurable' (after Holm)."""
        if not self.measurable:
            return "not measurable"
        if self.p_holm is None or self.p_holm >= ALPHA:
            return "unclear"
        return "as claimed" if self.interval.mean > 0 else "opposite"


@dataclass
class ClaimResult:
    claim_id: str
    text: str
    tests: list[MetricTest] = field(default_factory=list)
    failed_gates: list[str] = field(default_factory=list)
    note: str = ""
    # test sets (a metric name's first word) whose gate failed: their tests are kept, marked not
    # measurable, and left out of the reason, which names the gate once instead
    stopped: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return claim_label(self.tests, self.failed_gates)

    @property
    def reason(self) -> str:
        """Why the claim got its label, in one sentence."""
        if self.failed_gates:
            return "stopped by: " + "; ".join(self.failed_gates)
        tests = [t for t in self.tests if t.metric.split(" ")[0] not in self.stopped]
        after = "".join(f"; {k} not judged, stopped by {why}" for k, why in self.stopped.items())
        if not any(t.measurable for t in tests):
            by_reason: dict[str, list[str]] = {}  # metrics that share a reason are named once, together
            for t in tests:
                by_reason.setdefault(t.reason, []).append(t.metric)
            text = "; ".join(f"{', '.join(m)}: {r}" for r, m in by_reason.items())
            return "no metric measurable: " + text + after
        parts = [f"{t.metric} {t.status}" for t in tests if t.measurable]
        dropped = [t.metric for t in tests if not t.measurable]
        return ", ".join(parts) + (f" (not measurable: {', '.join(dropped)})" if dropped else "") + after


def claim_label(tests: list[MetricTest], failed_gates: list[str] | None = None) -> str:
    """The claim's label from its metric tests (rules in the module docstring)."""
    if failed_gates:
        return "not measurable"
    statuses = [t.status for t in tests if t.measurable]
    if not statuses:
        return "not measurable"
    yes, no = "as claimed" in statuses, "opposite" in statuses
    if yes and no:
        return "mixed"
    if yes:
        return "reproduced"
    if no:
        return "contradicted"
    return "inconclusive"


def paired_test(
    better: list[float | None],
    worse: list[float | None],
    higher_is_better: bool,
    metric: str,
    trivial: float | None,
) -> MetricTest:
    """The paired per-seed test of "``better`` beats ``worse`` on ``metric``", gated by the trivial row."""
    sign = 1.0 if higher_is_better else -1.0
    pairs = [(a, b) for a, b in zip(better, worse) if a is not None and b is not None]
    interval = t_interval([sign * (a - b) for a, b in pairs])
    reasons = []
    for name, vals in (("first", better), ("second", worse)):
        vals = [v for v in vals if v is not None]
        ok = beats(float(np.mean(vals)) if vals else None, trivial, higher_is_better)
        if ok is None:
            reasons.append(f"no {'value' if not vals else 'trivial row'} for the {name} method")
        elif not ok:
            reasons.append(f"the {name} method does not beat the trivial row ({trivial:.4g})")
    if len(pairs) < 2:
        reasons.append(f"{len(pairs)} paired seed(s)")
    return MetricTest(metric, interval, measurable=not reasons, reason="; ".join(reasons))


def correct(claims: list[ClaimResult]) -> int:
    """Holm-correct every measurable test of every claim not stopped by a gate; returns the test count."""
    tests = [t for c in claims if not c.failed_gates for t in c.tests if t.measurable]
    adjusted = holm([t.interval.p for t in tests])
    for t, p in zip(tests, adjusted):
        t.p_holm = p
    return sum(p is not None for p in adjusted)
