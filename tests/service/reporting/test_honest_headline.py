"""The headline under changing weights: the analyst's case from issue 14, checked against the truth by simulation.

Three weights periods (50/50, then 10/90, then 90/10) with rates that drift between periods and a
true b - a of +0.02 in every period. B gets its traffic in the bad period, A in the good one, so
the pooled difference points the wrong way; every headline figure must not.
"""

from __future__ import annotations

import math

import numpy as np

from bandit_service.core.reporting import build_report, render_text
from tests.service.reporting.factory import bernoulli_input

WEIGHTS = np.array([[0.5, 0.5], [0.1, 0.9], [0.9, 0.1]])
RATES = np.array([[0.20, 0.22], [0.05, 0.07], [0.30, 0.32]])  # b - a = +0.02 in every period
TRAFFIC = np.array([800, 800, 800])
TRUE_DIFFERENCE = 0.02


def _draw(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    assigned = np.stack([rng.multinomial(n, w) for n, w in zip(TRAFFIC, WEIGHTS, strict=True)])
    return rng.binomial(assigned, RATES), assigned


def test_every_headline_figure_points_the_right_way(rng: np.random.Generator) -> None:
    successes, assigned = _draw(rng)
    report = build_report(bernoulli_input(successes, assigned, WEIGHTS, draws=20_000))
    m = report.primary
    b = m.comparisons[0]
    a_arm, b_arm = m.arms
    assert m.estimator == "stratified" and m.periods == 3
    assert b.pooled_difference < -0.02  # the naive figure is fooled ...
    assert b.difference > 0  # ... the headline is not
    assert b.difference_interval[0] < TRUE_DIFFERENCE < b.difference_interval[1]
    assert not b.p_value < 0.05  # nothing "significant" the wrong way
    assert b.prob_beats_control > 0.5 and b_arm.prob_best > a_arm.prob_best
    assert b_arm.expected_loss < a_arm.expected_loss
    assert b.relative > 0 and b.lift_credible_interval[1] > 0
    assert report.recommendation.action != "ship"
    notes = " ".join(report.notes)
    assert "drift-corrected" in notes and "Simpson" in notes
    text = render_text(report)
    assert "pooled (naive, secondary" in text and "stratified" in text


def test_headline_interval_covers_the_true_difference_95_percent(rng: np.random.Generator) -> None:
    """Over 1,500 replicates the 95% headline interval covers +0.02 in 94-96% of them (simulation error ~0.6%)."""
    replicates = 1_500
    covered = 0
    pooled_covered = 0
    for _ in range(replicates):
        successes, assigned = _draw(rng)
        report = build_report(bernoulli_input(successes, assigned, WEIGHTS, draws=1))
        b = report.primary.comparisons[0]
        covered += b.difference_interval[0] <= TRUE_DIFFERENCE <= b.difference_interval[1]
        pooled_covered += b.pooled_interval[0] <= TRUE_DIFFERENCE <= b.pooled_interval[1]
    coverage = covered / replicates
    assert 0.94 <= coverage <= 0.96, coverage
    assert pooled_covered / replicates < 0.5  # the naive interval is centred on the wrong value


def test_bayesian_headline_matches_the_stratified_posterior_by_simulation(rng: np.random.Generator) -> None:
    """P(b beats a) from the report against a Monte Carlo of the exact per-period Beta posteriors, weight-summed."""
    successes, assigned = _draw(rng)
    report = build_report(bernoulli_input(successes, assigned, WEIGHTS, draws=20_000))
    w = TRAFFIC / TRAFFIC.sum()
    draws = 200_000
    theta = np.zeros((draws, 2))
    for p in range(len(TRAFFIC)):
        theta += w[p] * rng.beta(1 + successes[p], 1 + assigned[p] - successes[p], size=(draws, 2))
    exact = float(np.mean(theta[:, 1] > theta[:, 0]))
    assert math.isclose(report.primary.comparisons[0].prob_beats_control, exact, abs_tol=0.02)


def test_a_starved_arm_over_many_periods_is_not_pulled_towards_the_prior(rng: np.random.Generator) -> None:
    """A Thompson run over 17 periods starves the worst arm: a few units a period, no events in most.

    With the whole Beta(1, 1) prior in each period, the worst arm's posterior mean sat near 0.15
    (its observed rate: 0.04) and it came out P(best) 0.97. The prior counts once: the posterior
    mean is the stratified mean within a small share of its standard error, and the best arm leads.
    """
    rates = np.array([0.04, 0.05, 0.07])
    weights = np.linspace([1 / 3, 1 / 3, 1 / 3], [0.01, 0.05, 0.94], 17)
    assigned = np.stack([rng.multinomial(350, w) for w in weights])
    successes = rng.binomial(assigned, rates)
    report = build_report(bernoulli_input(successes, assigned, weights, draws=20_000))
    arms = report.primary.arms
    assert report.primary.estimator == "stratified" and assigned[-1, 0] < 10  # a few units a period at the end
    for arm in arms:
        low, high = arm.credible_interval
        centre = (low + high) / 2
        assert abs(centre - arm.mean) < 0.5 * arm.std_error, (arm.arm, centre, arm.mean, arm.std_error)
    prob_best = [a.prob_best for a in arms]
    assert prob_best[2] == max(prob_best) and prob_best[0] < 0.2, prob_best


def test_a_ramp_from_100_0_compares_the_arms_over_the_periods_both_saw(rng: np.random.Generator) -> None:
    """An arm at weight 0 in the first period has no estimate there: no true effect, rates drifting up.

    Averaging the control over both periods and the arm over the second only showed a +0.025 gap
    that is all drift, "significant", and shipped in every replicate. Over the shared period the
    interval covers 0 about 95% of the time and ships stay under alpha.
    """
    weights = np.array([[1.0, 0.0], [0.5, 0.5]])
    rates = np.array([[0.05, 0.05], [0.10, 0.10]])
    covered, ships, replicates = 0, 0, 200
    for _ in range(replicates):
        assigned = np.stack([rng.multinomial(10_000, w) for w in weights])
        report = build_report(bernoulli_input(rng.binomial(assigned, rates), assigned, weights, draws=200))
        b = report.primary.comparisons[0]
        covered += b.difference_interval[0] <= 0.0 <= b.difference_interval[1]
        ships += report.recommendation.action == "ship"
    assert b.periods == 1 and report.primary.periods == 2
    assert any("uses the 1 of 2 weights periods where both had data" in n for n in report.notes)
    assert ships / replicates <= 0.05  # one look each: the always-valid rule ships at most alpha
    assert 0.91 <= covered / replicates <= 0.99  # 95% +- 3 binomial SEs over 200 replicates


def test_a_comparison_without_a_shared_period_is_undefined() -> None:
    # A only in the first period, B only in the second: no period in which both had traffic.
    report = build_report(bernoulli_input([[50, 0], [0, 80]], [[1_000, 0], [0, 1_000]], [[1.0, 0.0], [0.0, 1.0]]))
    b = report.primary.comparisons[0]
    assert b.periods == 0 and math.isnan(b.difference) and math.isnan(b.p_value)
    assert math.isnan(b.prob_beats_control) and all(math.isnan(x) for x in b.lift_credible_interval)
    assert report.recommendation.action != "ship"
    assert any("undefined: no weights period where both had data" in n for n in report.notes)
    text = render_text(report)
    assert "inf" not in text.lower() and "nan" not in text.lower()
