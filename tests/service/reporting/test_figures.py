"""Report figures against independent computations (scipy, statsmodels, closed forms) on the same counts."""

from __future__ import annotations

import json
import math

import msgspec
import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
    samplesize_proportions_2indep_onetail,
)

from bandit_service.core.reporting import build_report
from policies.sketch import QuantileSketch
from policies.stats import StatsArray
from tests.service.reporting.factory import bernoulli_input, continuous_input

SUCCESSES = np.array([120, 150, 95, 131])
TRIALS = np.array([2000, 2100, 1900, 2050])


def test_z_test_p_values_and_holm_match_statsmodels() -> None:
    report = build_report(bernoulli_input(SUCCESSES, TRIALS))
    raw = []
    for comp, i in zip(report.primary.comparisons, (1, 2, 3), strict=True):
        _, p = proportions_ztest([SUCCESSES[i], SUCCESSES[0]], [TRIALS[i], TRIALS[0]])
        lo, hi = confint_proportions_2indep(SUCCESSES[i], TRIALS[i], SUCCESSES[0], TRIALS[0], method="wald")
        assert comp.test == "z_pooled"
        assert comp.p_value == pytest.approx(p, rel=1e-9)
        assert comp.difference_interval == pytest.approx((lo, hi), rel=1e-9)
        raw.append(p)
    _, holm, _, _ = multipletests(raw, method="holm")
    assert [c.p_value_adjusted for c in report.primary.comparisons] == pytest.approx(holm, rel=1e-9)


def test_welch_p_values_and_holm_match_scipy_and_statsmodels(rng: np.random.Generator) -> None:
    rewards = [rng.normal(10.0 + 0.3 * i, 2.0 + i, size=300 + 50 * i) for i in range(3)]
    report = build_report(continuous_input(rewards))
    raw = []
    for comp, i in zip(report.primary.comparisons, (1, 2), strict=True):
        a, c = rewards[i], rewards[0]
        expected = sps.ttest_ind_from_stats(
            a.mean(), a.std(ddof=1), a.size, c.mean(), c.std(ddof=1), c.size, equal_var=False
        )
        assert comp.test == "welch"
        assert comp.p_value == pytest.approx(expected.pvalue, rel=1e-7)
        assert comp.difference == pytest.approx(a.mean() - c.mean(), rel=1e-9)
        raw.append(expected.pvalue)
    _, holm, _, _ = multipletests(raw, method="holm")
    assert [c.p_value_adjusted for c in report.primary.comparisons] == pytest.approx(holm, rel=1e-7)


def test_arm_intervals_match_wilson_and_student_t(rng: np.random.Generator) -> None:
    report = build_report(bernoulli_input(SUCCESSES, TRIALS))
    for arm, x, n in zip(report.primary.arms, SUCCESSES, TRIALS, strict=True):
        assert arm.mean == pytest.approx(x / n)
        assert arm.sd == pytest.approx(math.sqrt(x / n * (1 - x / n) * n / (n - 1)))
        assert arm.confidence_interval == pytest.approx(proportion_confint(x, n, method="wilson"), rel=1e-9)
    rewards = [rng.exponential(3.0, size=40), rng.exponential(3.5, size=60)]
    report = build_report(continuous_input(rewards))
    for arm, r in zip(report.primary.arms, rewards, strict=True):
        expected = sps.t.interval(0.95, r.size - 1, loc=r.mean(), scale=sps.sem(r))
        assert arm.confidence_interval == pytest.approx(expected, rel=1e-9)
        assert arm.sd == pytest.approx(r.std(ddof=1))


def test_extra_metrics_pick_their_test_from_their_statistics(rng: np.random.Generator) -> None:
    errors = StatsArray.from_counts([20, 45, 22, 21], TRIALS)
    latency = [rng.gamma(2.0, 50.0 + 5 * i, size=n) for i, n in enumerate(TRIALS)]
    report = build_report(
        bernoulli_input(SUCCESSES, TRIALS, metrics={"error": errors, "latency_ms": StatsArray.from_rewards(latency)})
    )
    by_name = {m.name: m for m in report.metrics}
    assert by_name["error"].kind == "binary"
    assert by_name["latency_ms"].kind == "continuous"
    _, p = proportions_ztest([45, 20], [TRIALS[1], TRIALS[0]])
    assert by_name["error"].comparisons[0].p_value == pytest.approx(p, rel=1e-9)
    a, c = latency[1], latency[0]
    welch = sps.ttest_ind(a, c, equal_var=False)
    assert by_name["latency_ms"].comparisons[0].p_value == pytest.approx(welch.pvalue, rel=1e-6)
    assert [o.error_rate for o in report.operational] == pytest.approx((errors.total / errors.n).tolist())


def test_undefined_comparisons_are_left_out_of_holm() -> None:
    # Arm D has no observations of this metric; arm C has none with a non-zero value on either side.
    metric = StatsArray.from_counts([0, 9, 0, 0], [500, 520, 480, 0])
    report = build_report(bernoulli_input(SUCCESSES, TRIALS, metrics={"error": metric}))
    comps = report.metrics[0].comparisons
    assert math.isnan(comps[1].p_value) and math.isnan(comps[1].p_value_adjusted)
    assert math.isnan(comps[2].p_value) and math.isnan(comps[2].p_value_adjusted)
    _, p = proportions_ztest([9, 0], [520, 500])
    assert comps[0].p_value_adjusted == pytest.approx(p, rel=1e-9)  # a family of one
    encoded = json.loads(msgspec.json.encode(report))
    assert encoded["metrics"][0]["comparisons"][2]["p_value_adjusted"] is None


def test_srm_matches_scipy_chisquare_on_the_allocation_actually_used() -> None:
    trials = np.array([[1000, 1000], [600, 1400], [300, 1750]])
    weights = np.array([[0.5, 0.5], [0.3, 0.7], [0.15, 0.85]])
    report = build_report(bernoulli_input(trials // 10, trials, weights))
    observed = trials.sum(axis=0)
    expected = (trials.sum(axis=1)[:, None] * weights).sum(axis=0)
    chi = sps.chisquare(observed, expected * observed.sum() / expected.sum())
    srm = report.health.srm
    assert srm.statistic == pytest.approx(chi.statistic, rel=1e-9)
    assert srm.p_value == pytest.approx(chi.pvalue, rel=1e-9)
    assert srm.expected == pytest.approx(tuple(expected))


def test_headline_means_are_the_traffic_weighted_period_means_once_weights_changed() -> None:
    s = np.array([[30, 10], [20, 90]])
    t = np.array([[300, 100], [400, 1200]])
    report = build_report(bernoulli_input(s, t))
    share = t.sum(axis=1) / t.sum()
    for i, arm in enumerate(report.primary.arms):
        rates = s[:, i] / t[:, i]
        assert arm.mean == pytest.approx(float(share @ rates))
        se = math.sqrt(float(np.sum(share**2 * rates * (1 - rates) / (t[:, i] - 1))))
        assert arm.std_error == pytest.approx(se)
        assert arm.pooled_mean == pytest.approx(s[:, i].sum() / t[:, i].sum())
    assert report.primary.estimator == "stratified" and report.primary.periods == 2


def test_always_valid_p_value_and_confidence_sequence_follow_the_msprt_closed_form() -> None:
    report = build_report(bernoulli_input(SUCCESSES, TRIALS))
    alpha = 0.05
    rho2 = (-2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha))) / 5000.0
    xc, nc = SUCCESSES[0], TRIALS[0]
    for comp, i in zip(report.primary.comparisons, (1, 2, 3), strict=True):
        x, n = SUCCESSES[i], TRIALS[i]
        vi, vc = x / n * (1 - x / n) * n / (n - 1), xc / nc * (1 - xc / nc) * nc / (nc - 1)
        v = vi / n + vc / nc
        r = rho2 * (vi + vc) / v
        d = x / n - xc / nc
        lam = math.exp(-0.5 * math.log1p(r) + 0.5 * d * d / v * r / (1 + r))
        assert comp.always_valid_p_value == pytest.approx(min(1.0, 1.0 / lam), rel=1e-9)
        half = math.sqrt(v * (1 + r) / r * (math.log1p(r) - 2 * math.log(alpha)))
        assert comp.confidence_sequence == pytest.approx((d - half, d + half), rel=1e-9)
        # A confidence sequence pays for optional stopping: it is wider than the fixed-horizon interval.
        assert comp.confidence_sequence[0] < comp.difference_interval[0]
        assert comp.confidence_sequence[1] > comp.difference_interval[1]


def test_bayesian_figures_agree_with_an_independent_monte_carlo(rng: np.random.Generator) -> None:
    report = build_report(bernoulli_input(SUCCESSES, TRIALS, draws=20_000))
    draws = 200_000
    post = sps.beta(1 + SUCCESSES, 1 + TRIALS - SUCCESSES).rvs(size=(draws, 4), random_state=rng)
    best = np.bincount(post.argmax(axis=1), minlength=4) / draws
    arms = report.primary.arms
    assert sum(a.prob_best for a in arms) == pytest.approx(1.0)
    for i, arm in enumerate(arms):
        se = math.sqrt(best[i] * (1 - best[i]) / draws) + 1e-4
        assert arm.prob_best == pytest.approx(best[i], abs=5 * se)
        assert arm.credible_interval == pytest.approx(
            tuple(sps.beta.ppf([0.025, 0.975], 1 + SUCCESSES[i], 1 + TRIALS[i] - SUCCESSES[i])), rel=1e-9
        )
        loss = post.max(axis=1) - post[:, i]
        # The report's loss uses 20,000 draws: the tolerance is its standard error, 5 sigma.
        assert arm.expected_loss == pytest.approx(loss.mean(), abs=5 * loss.std() / math.sqrt(20_000))
    for comp, i in zip(report.primary.comparisons, (1, 2, 3), strict=True):
        beats = float(np.mean(post[:, i] > post[:, 0]))
        assert comp.prob_beats_control == pytest.approx(beats, abs=5 * math.sqrt(beats * (1 - beats) / draws) + 1e-4)


def test_sample_size_from_the_mde_matches_statsmodels_and_converts_to_units() -> None:
    s, t = np.array([100, 110]), np.array([1000, 1000])
    report = build_report(bernoulli_input(s, t, minimum_detectable_effect=0.03, weights=(0.25, 0.75)))
    size = report.health.sample_size
    n = math.ceil(samplesize_proportions_2indep_onetail(0.03, 0.1, 0.8, ratio=1, alpha=0.05) - 1e-9)
    assert size.required == (n, n)
    assert size.missing == (n - 1000, n - 1000)
    assert size.reached is False
    # The slowest arm is the one with the smaller weight: it fills at a quarter of the traffic.
    assert size.more_units == math.ceil((n - 1000) / 0.25)
    assert report.recommendation.action == "keep_running"
    assert report.recommendation.more_units == size.more_units


def test_quantiles_of_sketched_metrics_are_within_the_sketch_accuracy(rng: np.random.Generator) -> None:
    values = [rng.lognormal(4.0, 0.5 + 0.2 * i, size=3000) for i in range(2)]
    sketches = tuple(QuantileSketch().add(v) for v in values)
    report = build_report(bernoulli_input([10, 12], [100, 100], sketches={"latency_ms": sketches}))
    for row, v in zip(report.operational, values, strict=True):
        q = row.quantiles["latency_ms"]
        assert q.count == v.size
        for got, level in ((q.p50, 0.5), (q.p95, 0.95), (q.p99, 0.99)):
            exact = np.sort(v)[math.floor(level * (v.size - 1))]
            assert got == pytest.approx(exact, rel=0.0101)


def test_report_is_deterministic_and_json_encodable() -> None:
    inp = bernoulli_input(SUCCESSES, TRIALS, seed=42, reward="bernoulli")
    a, b = build_report(inp), build_report(inp)
    assert msgspec.json.encode(a) == msgspec.json.encode(b)
    data = json.loads(msgspec.json.encode(a))
    assert data["seed"] == 42
    assert data["primary"]["comparisons"][0]["arm"] == "B"
    assert data["control"] == "A"
