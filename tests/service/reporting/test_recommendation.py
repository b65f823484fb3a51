"""The recommendation table: ship, keep running, stop for no winner or for a guardrail, and what blocks shipping."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats import proportion as smp

from bandit_service.core.looks import SequentialLook, look_settings
from bandit_service.core.reporting import DecisionCriteria, Guardrail, PrimaryCriterion, Report, build_report
from policies.stats import StatsArray
from tests.service.reporting.factory import bernoulli_input, continuous_input

N = 10_000
ERROR_GUARD = DecisionCriteria(guardrails=(Guardrail(metric="error", max_increase=0.005),))


def errors(*counts: int) -> dict[str, StatsArray]:
    """An `error` metric with these error counts out of N per arm."""
    return {"error": StatsArray.from_counts(list(counts), [N] * len(counts))}


CASES = [
    pytest.param(([1000, 1300], [N, N]), {}, ("ship", "B"), "beats A", id="clear-winner-ships"),
    pytest.param(
        ([1000, 1300, 1250], [N, N, N]),
        {"metrics": errors(100, 100, 100)},
        ("ship", "B"),
        "beats A",
        id="best-of-two-winners-ships",
    ),
    pytest.param(
        ([500, 580], [5000, 5000]),
        {},
        ("keep_running", None),
        "continuous monitoring",
        id="peeking-guard-holds-a-fixed-horizon-result",
    ),
    pytest.param(
        ([500, 580], [5000, 5000]),
        {"min_sample_size": 5000},
        ("keep_running", None),
        "not yet under continuous monitoring",
        id="fixed-horizon-result-at-the-planned-size-waits-for-always-valid-evidence",
    ),
    pytest.param(
        ([500, 570, 505, 498], [5000] * 4),
        {"min_sample_size": 5000},
        ("stop_no_winner", None),
        "fixed-horizon p = 0.07",
        id="raw-significant-but-not-after-holm-never-ships",
    ),
    pytest.param(
        ([100, 105], [1000, 1000]),
        {"min_sample_size": 5000},
        ("keep_running", None),
        "about 8000 more units",
        id="minimum-sample-size-not-reached",
    ),
    pytest.param(
        ([1000, 1010], [N, N]),
        {"min_sample_size": N},
        ("stop_no_winner", None),
        "minimum sample size reached",
        id="no-winner-at-the-planned-size",
    ),
    pytest.param(
        ([1300, 1000], [N, N]),
        {},
        ("stop_no_winner", None),
        "confidence sequence rules out",
        id="futility-by-confidence-sequence",
    ),
    pytest.param(
        ([1000, 1300], [N, N]),
        {"metrics": errors(100, 300), "criteria": ERROR_GUARD},
        ("stop_guardrail", "B"),
        "breaches the error guardrail",
        id="guardrail-breach-stops",
    ),
    pytest.param(
        ([1000, 1300, 1250], [N, N, N]),
        {"metrics": errors(100, 300, 110), "criteria": ERROR_GUARD},
        ("ship", "C"),
        "beats A",
        id="guardrail-breach-excludes-an-arm-from-shipping",
    ),
    pytest.param(
        ([1000, 1300], [N, N]),
        {"criteria": DecisionCriteria(primary=PrimaryCriterion(min_improvement=0.5, relative=True))},
        ("stop_no_winner", None),
        "rules out the required improvement",
        id="required-relative-improvement-not-met",
    ),
    pytest.param(
        ([1000, 1300], [N, N]),
        {"criteria": DecisionCriteria(primary=PrimaryCriterion(min_improvement=0.1, relative=True))},
        ("ship", "B"),
        "required improvement 10% (relative) met",
        id="required-relative-improvement-met",
    ),
    pytest.param(
        ([1000, 1300], [N, N]),
        {"criteria": DecisionCriteria(primary=PrimaryCriterion(min_improvement=0.025))},
        ("keep_running", None),
        "is below the required 0.025",
        id="interval-must-clear-the-absolute-improvement",
    ),
    pytest.param(
        ([1000, 1300], [N, N]),
        {"criteria": DecisionCriteria(primary=PrimaryCriterion(metric="revenue"))},
        ("keep_running", None),
        "has no data yet",
        id="primary-metric-without-data",
    ),
]


@pytest.mark.parametrize(("counts", "extra", "expected", "reason"), CASES)
def test_recommendation_table(
    counts: tuple[list[int], list[int]], extra: dict[str, Any], expected: tuple[str, str | None], reason: str
) -> None:
    rec = build_report(bernoulli_input(*counts, **extra)).recommendation
    assert (rec.action, rec.arm) == expected
    assert reason in rec.reason


def test_min_sample_size_is_a_hard_floor_for_ship() -> None:
    # Before: the report said "minimum sample size not reached" and still recommended SHIP, because the
    # always-valid p-value alone let a clear winner ship before the floor the operator had set.
    report = build_report(bernoulli_input([1000, 1300], [N, N], min_sample_size=2 * N))
    assert report.health.sample_size.reached is False
    assert report.primary.comparisons[0].always_valid_p_adjusted < 0.05  # the evidence alone would ship
    rec = report.recommendation
    assert (rec.action, rec.arm) == ("keep_running", None)
    assert "minimum sample size not reached" in rec.reason
    assert f"floor {2 * N} observations per arm, observed A {N}, B {N}" in rec.reason
    assert "B beats A on the data so far" in rec.reason and "hard floor for shipping" in rec.reason
    assert rec.more_units == 2 * N


def test_a_power_calculated_floor_holds_a_ship_too() -> None:
    # minimum_detectable_effect plans a larger sample than the data: the floor is per arm, named in the reason.
    rec = build_report(bernoulli_input([1000, 1300], [N, N], minimum_detectable_effect=0.005)).recommendation
    assert rec.action == "keep_running"
    assert "minimum sample size not reached" in rec.reason and "observed A 10000, B 10000" in rec.reason


def test_srm_blocks_shipping_a_clear_winner() -> None:
    # The allocation said 50/50 but B has 10% fewer units: B's win cannot be trusted.
    inp = bernoulli_input([1000, 1300], [N, 9_000], [0.5, 0.5])
    report = build_report(inp)
    assert report.health.srm.flagged
    assert report.primary.comparisons[0].p_value_adjusted < 1e-10
    assert report.recommendation.action == "keep_running"
    assert report.recommendation.reason.startswith("sample ratio mismatch")


def test_a_guardrail_breach_stops_even_under_srm() -> None:
    inp = bernoulli_input([1000, 1300], [N, 9_000], [0.5, 0.5], metrics=errors(100, 400), criteria=ERROR_GUARD)
    rec = build_report(inp).recommendation
    assert (rec.action, rec.arm, rec.guardrail) == ("stop_guardrail", "B", "error")


@pytest.mark.parametrize("seed", range(6))
def test_proportion_guardrail_matches_a_one_sided_wald_test(seed: int) -> None:
    """Breach iff statsmodels' one-sided Wald test of H0: difference <= limit rejects at alpha."""
    rng = np.random.default_rng(seed)
    e = rng.binomial(N, [0.010, 0.010 + rng.uniform(0.0, 0.01)])
    report = build_report(bernoulli_input([1000, 1000], [N, N], metrics=errors(*e), criteria=ERROR_GUARD))
    (check,) = report.guardrails
    _, p = smp.test_proportions_2indep(
        e[1], N, e[0], N, value=0.005, method="wald", compare="diff", alternative="larger"
    )
    assert check.breached == (p < 0.05)
    assert check.estimate == pytest.approx((e[1] - e[0]) / N)


@pytest.mark.parametrize("seed", range(6))
def test_relative_latency_guardrail_uses_the_one_sided_fieller_bound(seed: int) -> None:
    """Relative limit L: breach iff the one-sided 95% bound of the lift B/A - 1 exceeds L.

    Oracle: Fieller's lower root recomputed in closed form from the raw samples, with scipy's
    Student t quantile at Welch's degrees of freedom: the ratio R solving
    (m_b - R m_a)^2 = t^2 (v_b + R^2 v_a).
    """
    rng = np.random.default_rng(seed)
    a = rng.gamma(2.0, 50.0, size=800)
    b = rng.gamma(2.0, 50.0 * rng.uniform(1.0, 1.2), size=900)
    guard = DecisionCriteria(guardrails=(Guardrail(metric="latency_ms", max_relative_increase=0.10),))
    inp = bernoulli_input(
        [100, 100], [800, 900], metrics={"latency_ms": StatsArray.from_rewards([a, b])}, criteria=guard
    )
    (check,) = build_report(inp).guardrails
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    ma, mb = a.mean(), b.mean()
    lift = mb / ma - 1
    t = sps.t.ppf(0.95, df)
    ratio = (ma * mb - t * np.sqrt(ma**2 * vb + mb**2 * va - t**2 * va * vb)) / (ma**2 - t**2 * va)
    bound = ratio - 1
    assert check.estimate == pytest.approx(lift)
    assert check.one_sided_bound == pytest.approx(bound, rel=1e-9)
    assert check.breached == (bound > 0.10)


def test_continuous_experiment_ships_on_welch(rng: np.random.Generator) -> None:
    rewards = [rng.normal(10.0, 3.0, size=4000), rng.normal(10.6, 3.0, size=4000)]
    rec = build_report(continuous_input(rewards)).recommendation
    assert (rec.action, rec.arm) == ("ship", "B")


def _check_ship_invariants(report: Report, min_improvement: float, relative: bool) -> None:
    rec = report.recommendation
    if rec.action == "stop_guardrail":
        assert any(g.breached and g.arm == rec.arm and g.metric == rec.guardrail for g in report.guardrails)
    if rec.action != "ship":
        return
    comp = next(c for c in report.primary.comparisons if c.arm == rec.arm)
    assert rec.arm != report.control
    assert not report.health.srm_flagged
    assert comp.always_valid_p_adjusted < 0.05 and comp.difference > 0  # fixed-horizon p alone never ships
    assert not report.health.sample_size.configured or report.health.sample_size.reached is True
    base = next(a.mean for a in report.primary.arms if a.arm == report.control)
    lower = comp.confidence_sequence[0] / base if relative else comp.confidence_sequence[0]
    assert lower >= min_improvement
    assert not any(g.breached and g.arm == rec.arm for g in report.guardrails)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    k=st.integers(2, 3),
    min_improvement=st.sampled_from([0.0, 0.01, 0.1]),
    relative=st.booleans(),
    min_sample_size=st.one_of(st.none(), st.integers(10, 3000)),
    skew=st.sampled_from([0.0, 0.0, 0.01, 0.1]),
)
def test_never_ships_without_significance_srm_health_and_guardrails(
    data: st.DataObject, k: int, min_improvement: float, relative: bool, min_sample_size: int | None, skew: float
) -> None:
    trials = data.draw(st.lists(st.integers(20, 3000), min_size=k, max_size=k))
    successes = [data.draw(st.integers(0, t)) for t in trials]
    error_counts = [data.draw(st.integers(0, t // 5)) for t in trials]
    share = np.array(trials, dtype=float) / sum(trials)
    weights = share + skew * (np.eye(k)[0] - share)  # skew > 0 claims more traffic for A than it got
    inp = bernoulli_input(
        successes,
        trials,
        weights,
        min_sample_size=min_sample_size,
        metrics={"error": StatsArray.from_counts(error_counts, trials)},
        criteria=DecisionCriteria(
            primary=PrimaryCriterion(min_improvement=min_improvement, relative=relative),
            guardrails=(Guardrail(metric="error", max_increase=0.01),),
        ),
        draws=200,
    )
    report = build_report(inp)
    _check_ship_invariants(report, min_improvement, relative)
    # The p-value the rule reads is the textbook one.
    for comp, i in zip(report.primary.comparisons, range(1, k), strict=True):
        if np.isfinite(comp.p_value):
            _, p = smp.proportions_ztest([successes[i], successes[0]], [trials[i], trials[0]])
            assert comp.p_value == pytest.approx(p, rel=1e-6, abs=1e-12)


def test_primary_criterion_on_an_extra_metric(rng: np.random.Generator) -> None:
    revenue = StatsArray.from_rewards([rng.normal(5.0, 2.0, size=4000), rng.normal(5.5, 2.0, size=4000)])
    criteria = DecisionCriteria(primary=PrimaryCriterion(metric="revenue"))
    inp = bernoulli_input([400, 400], [4000, 4000], metrics={"revenue": revenue}, criteria=criteria)
    rec = build_report(inp).recommendation
    assert (rec.action, rec.arm) == ("ship", "B")
    assert "on revenue" in rec.reason


def test_an_empty_running_intersection_never_ships() -> None:
    # B is far better at this look, but an earlier look's confidence sequence ended below this one's:
    # the intersection is empty (the effect moved), and the report does not ship on it.
    settings = look_settings(0.95, 5_000)  # the report's defaults: the stored look is one of its own
    earlier = SequentialLook(
        metric="reward", arm="B", p_value=0.5, lower=-0.05, upper=0.001, looks=3, settings=settings
    )
    inp = bernoulli_input([200, 400], [2_000, 2_000], min_sample_size=100, looks=(earlier,))
    report = build_report(inp)
    b = report.primary.comparisons[0]
    assert b.always_valid_p_adjusted < 1e-6 and b.confidence_sequence[0] > b.confidence_sequence[1]
    assert report.recommendation.action == "keep_running"
    assert "no longer intersect" in report.recommendation.reason


def test_a_relative_criterion_divides_by_the_controls_upper_bound() -> None:
    # Control 100/1,000 (Wilson upper bound 0.120), B 260/1,000. Over the point estimate the
    # sequence's lower end (about +0.103) clears +95% relative; over the control's upper bound it does not.
    inp = bernoulli_input(
        [100, 260],
        [1_000, 1_000],
        criteria=DecisionCriteria(primary=PrimaryCriterion(metric="reward", min_improvement=0.95, relative=True)),
    )
    report = build_report(inp)
    b = report.primary.comparisons[0]
    control = report.primary.arms[0]
    assert b.confidence_sequence[0] / control.mean > 0.95 > b.confidence_sequence[0] / control.confidence_interval[1]
    assert report.recommendation.action != "ship" and "relative improvement" in report.recommendation.reason
