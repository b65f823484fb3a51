"""The Simpson's-paradox trap of adaptive weights, and unbiasedness of the corrected estimators."""

import numpy as np
import pytest

from policies.estimators import ipw_difference, ipw_means, naive_means, stratified_means
from policies.stats import StatsArray

# Two periods: a bad one (low base rates) and a good one. Arm 0 is better in both.
RATES = np.array([[0.05, 0.04], [0.20, 0.18]])
TRAFFIC = np.array([100_000, 100_000])
TRUTH = TRAFFIC @ RATES / TRAFFIC.sum()  # [0.125, 0.11]: the mean each arm would earn on all traffic


def simulate_log(rng, weights, traffic=TRAFFIC, rates=RATES):
    """Per-decision log (period, arm, reward, propensity) under per-period weights."""
    period = np.repeat(np.arange(len(traffic)), traffic)
    u = rng.random(period.size)
    arm = (u[:, None] >= np.cumsum(weights, axis=1)[period][:, :-1]).sum(axis=1)
    reward = (rng.random(period.size) < rates[period, arm]).astype(float)
    return period, arm, reward, weights[period, arm]


def period_stats(period, arm, reward, periods, k):
    n = np.zeros((periods, k))
    s = np.zeros((periods, k))
    np.add.at(n, (period, arm), 1.0)
    np.add.at(s, (period, arm), reward)
    return StatsArray(n, s, s)


def test_simpsons_paradox_trap(rng):
    # The bandit sends 90% of the good period's traffic to arm 1, the worse arm.
    weights = np.array([[0.5, 0.5], [0.1, 0.9]])
    period, arm, reward, propensity = simulate_log(rng, weights)
    per_period = period_stats(period, arm, reward, 2, 2)
    pooled = per_period.n.sum(axis=0)
    naive = naive_means(StatsArray(pooled, per_period.total.sum(axis=0), per_period.total_sq.sum(axis=0)))
    stratified = stratified_means(per_period)
    hajek = ipw_means(arm, reward, propensity, k=2)
    horvitz = ipw_means(arm, reward, propensity, k=2, self_normalised=False)

    assert naive.mean[1] > naive.mean[0]  # the naive reading ranks the arms the wrong way round
    assert all(abs(m - t) > 10 * se for m, t, se in zip(naive.mean, TRUTH, naive.std_error, strict=True))
    for est in (stratified, hajek, horvitz):
        assert est.mean[0] > est.mean[1]
        np.testing.assert_array_less(np.abs(np.array(est.mean) - TRUTH), 4 * np.array(est.std_error))


def test_corrected_estimators_are_unbiased_under_adaptive_weights(rng):
    """Period-2 weights depend on period-1 rewards, like a bandit; the corrections stay unbiased."""
    runs, traffic = 600, np.array([1_500, 1_500])
    results = {"naive": [], "stratified": [], "ipw_hajek": [], "ipw_horvitz_thompson": []}
    ses = {key: [] for key in results}
    for _ in range(runs):
        first = np.array([[0.5, 0.5]])
        _, a1, r1, _ = simulate_log(rng, first, traffic[:1], RATES[:1])
        means1 = [r1[a1 == j].mean() for j in range(2)]
        w2 = [0.1, 0.9] if means1[1] >= means1[0] else [0.7, 0.3]
        weights = np.array([[0.5, 0.5], w2])
        period, arm, reward, propensity = simulate_log(rng, weights, traffic)
        stats = period_stats(period, arm, reward, 2, 2)
        pooled = StatsArray(stats.n.sum(axis=0), stats.total.sum(axis=0), stats.total_sq.sum(axis=0))
        for est in (
            naive_means(pooled),
            stratified_means(stats),
            ipw_means(arm, reward, propensity, 2),
            ipw_means(arm, reward, propensity, 2, self_normalised=False),
        ):
            results[est.method].append(est.mean)
            ses[est.method].append(est.std_error)
    for method, values in results.items():
        values = np.array(values)
        bias = values.mean(axis=0) - TRUTH
        sd = values.std(axis=0, ddof=1)
        if method == "naive":
            assert np.any(np.abs(bias) > 10 * sd / np.sqrt(runs))
            continue
        np.testing.assert_array_less(np.abs(bias), 4 * sd / np.sqrt(runs))
        # The reported standard errors describe the spread across runs.
        np.testing.assert_allclose(np.mean(ses[method], axis=0), sd, rtol=0.15)


def test_small_cases_by_hand():
    stats = StatsArray([[10.0, 30.0], [40.0, 20.0]], [[2.0, 9.0], [20.0, 4.0]], [[2.0, 9.0], [20.0, 4.0]])
    est = stratified_means(stats)
    # Period traffic 40 and 60: arm 0 = 0.4 * 0.2 + 0.6 * 0.5, arm 1 = 0.4 * 0.3 + 0.6 * 0.2.
    assert est.mean == pytest.approx((0.38, 0.24))
    assert stratified_means(stats, traffic=[1.0, 0.0]).mean == pytest.approx((0.2, 0.3))
    one = StatsArray([[10.0, 20.0]], [[3.0, 5.0]], [[3.0, 5.0]])
    assert stratified_means(one).mean == pytest.approx(
        naive_means(StatsArray([10.0, 20.0], [3.0, 5.0], [3.0, 5.0])).mean
    )
    # Period traffic 10 and 20: arm 0 = (10 * 0.1 + 20 * 0.3) / 30; arm 1, missing from period 0,
    # is averaged over the periods where it has data.
    gap = StatsArray([[10.0, 0.0], [10.0, 10.0]], [[1.0, 0.0], [3.0, 6.0]], [[1.0, 0.0], [3.0, 6.0]])
    assert stratified_means(gap).mean == pytest.approx((7 / 30, 0.6))
    arm = np.array([0, 1, 1, 0, 2])
    reward = np.array([1.0, 0.0, 1.0, 3.0, 5.0])
    hajek = ipw_means(arm, reward, np.full(5, 0.25), k=4)
    assert hajek.mean[:3] == pytest.approx((2.0, 0.5, 5.0)) and np.isnan(hajek.mean[3])
    assert ipw_means(arm, reward, np.full(5, 0.25), k=4, self_normalised=False).mean[0] == pytest.approx(16 / 5)


def adaptive_log(rng, decisions=3_000, means=(5.0, 5.4, 4.8)):
    """Per-decision log with a different propensity vector per decision, like a bandit reweighting often."""
    weights = rng.dirichlet([4.0, 4.0, 4.0], size=decisions)
    arm = (rng.random(decisions)[:, None] >= np.cumsum(weights, axis=1)[:, :-1]).sum(axis=1)
    reward = rng.normal(np.asarray(means)[arm], 1.0)
    return arm, reward, weights[np.arange(decisions), arm]


def bootstrap_differences(arm, reward, propensity, k, control, rng, resamples, self_normalised):
    """Nonparametric bootstrap of decisions: the IPW difference recomputed on each resample."""
    w = np.zeros((arm.size, k))
    w[np.arange(arm.size), arm] = 1.0 / propensity
    times = rng.multinomial(arm.size, np.full(arm.size, 1.0 / arm.size), size=resamples)  # draws of each decision
    wy = times @ (w * reward[:, None])  # (resamples, k)
    mean = wy / (times @ w) if self_normalised else wy / arm.size
    return mean - mean[:, control : control + 1]


@pytest.mark.parametrize("self_normalised", [True, False], ids=["hajek", "horvitz-thompson"])
def test_ipw_difference_standard_error_matches_the_bootstrap(rng, self_normalised):
    arm, reward, propensity = adaptive_log(rng)
    est = ipw_difference(arm, reward, propensity, k=3, control=0, self_normalised=self_normalised)
    means = ipw_means(arm, reward, propensity, k=3, self_normalised=self_normalised)
    np.testing.assert_allclose(est.difference[1:], np.array(means.mean[1:]) - means.mean[0], rtol=1e-12)
    assert np.isnan(est.difference[0]) and np.isnan(est.std_error[0]) and est.control == 0
    boot = bootstrap_differences(arm, reward, propensity, 3, 0, rng, 2_000, self_normalised)
    # The bootstrap SE itself is uncertain by about 1 / sqrt(2 * 2000) = 1.6%.
    np.testing.assert_allclose(est.std_error[1:], boot[:, 1:].std(axis=0, ddof=1), rtol=0.05)
    old = np.sqrt(np.array(means.std_error[1:]) ** 2 + means.std_error[0] ** 2)
    if self_normalised:  # each decision feeds one arm: no cross term, the sum of variances is right
        np.testing.assert_allclose(est.std_error[1:], old, rtol=1e-12)
    else:  # the HT estimates share the -m/N terms of every decision: the sum of variances is too small
        assert np.all(old < 0.9 * boot[:, 1:].std(axis=0, ddof=1))


def test_horvitz_thompson_difference_variance_has_the_covariance_term(rng):
    arm, reward, propensity = adaptive_log(rng, decisions=500)
    est = ipw_difference(arm, reward, propensity, k=3, control=2, self_normalised=False)
    means = ipw_means(arm, reward, propensity, k=3, self_normalised=False)
    m, var = np.array(means.mean), np.array(means.std_error) ** 2
    closed = var[:2] + var[2] + 2 * m[:2] * m[2] / arm.size  # Var_a + Var_c + 2 m_a m_c / N
    np.testing.assert_allclose(np.array(est.std_error[:2]) ** 2, closed, rtol=1e-10)
    assert est.method == "ipw_horvitz_thompson" and np.isnan(est.difference[2])


def test_ipw_difference_of_an_arm_without_decisions_is_undefined_for_hajek():
    est = ipw_difference(np.array([0, 0, 1]), [1.0, 0.0, 1.0], [0.5, 0.5, 0.5], k=3, control=0)
    assert est.method == "ipw_hajek" and est.difference[1] == pytest.approx(0.5)
    assert np.isnan(est.difference[2]) and np.isnan(est.std_error[2])


def test_a_single_observation_period_borrows_the_pooled_variance():
    # Arm 1 has one observation in period 1: its stratum variance is taken from arm 1's pooled variance.
    rewards = {(0, 0): [1.0, 2.0, 4.0], (0, 1): [3.0, 5.0, 6.0, 2.0], (1, 0): [2.0, 2.5], (1, 1): [7.0]}
    n = np.array([[len(rewards[p, a]) for a in range(2)] for p in range(2)], dtype=float)
    total = np.array([[sum(rewards[p, a]) for a in range(2)] for p in range(2)])
    sq = np.array([[sum(x * x for x in rewards[p, a]) for a in range(2)] for p in range(2)])
    est = stratified_means(StatsArray(n, total, sq))
    w = n.sum(axis=1) / n.sum()
    pooled_arm1 = np.var(rewards[0, 1] + rewards[1, 1], ddof=1)
    se1 = np.sqrt(w[0] ** 2 * np.var(rewards[0, 1], ddof=1) / 4 + w[1] ** 2 * pooled_arm1 / 1)
    se0 = np.sqrt(w[0] ** 2 * np.var(rewards[0, 0], ddof=1) / 3 + w[1] ** 2 * np.var(rewards[1, 0], ddof=1) / 2)
    assert est.std_error == pytest.approx((se0, se1), rel=1e-12)
    lonely = stratified_means(StatsArray([[1.0, 3.0]], [[2.0, 3.0]], [[4.0, 5.0]]))
    assert np.isnan(lonely.std_error[0]) and np.isfinite(lonely.std_error[1])  # one observation in all: no SE


BAD = [
    pytest.param(lambda: stratified_means(StatsArray.from_counts([1, 2], [5, 5])), "period_stats", id="1d"),
    pytest.param(lambda: stratified_means(StatsArray.from_counts([[1, 2]], [[5, 5]]), [1, 2]), "traffic", id="len"),
    pytest.param(lambda: stratified_means(StatsArray.from_counts([[1, 2]], [[5, 5]]), [-1]), "traffic", id="neg"),
    pytest.param(lambda: ipw_means([0, 1], [1.0], [0.5, 0.5], 2), "mismatched", id="lengths"),
    pytest.param(lambda: ipw_means([0, 2], [1.0, 0.0], [0.5, 0.5], 2), "arm", id="arm-range"),
    pytest.param(lambda: ipw_means([0.0, 1.0], [1.0, 0.0], [0.5, 0.5], 2), "arm", id="arm-float"),
    pytest.param(lambda: ipw_means([0, 1], [1.0, np.nan], [0.5, 0.5], 2), "reward", id="reward-nan"),
    pytest.param(lambda: ipw_means([0, 1], [1.0, 0.0], [0.0, 0.5], 2), "propensity", id="propensity-zero"),
    pytest.param(lambda: ipw_means([0, 1], [1.0, 0.0], [0.5, 1.5], 2), "propensity", id="propensity-big"),
    pytest.param(lambda: ipw_means([], [], [], 2), "no decisions", id="empty"),
    pytest.param(lambda: ipw_means([0], [1.0], [1.0], 0), "k", id="k"),
    pytest.param(lambda: ipw_difference([0, 1], [1.0, 0.0], [0.5, 0.5], 2, control=2), "control", id="control"),
    pytest.param(lambda: ipw_difference([0, 1], [1.0, 0.0], [0.5, 0.0], 2, control=0), "propensity", id="diff-p"),
    pytest.param(lambda: naive_means(StatsArray.from_counts([[1, 2]], [[5, 5]])), "stats", id="naive-batched"),
]


@pytest.mark.parametrize(("call", "message"), BAD)
def test_bad_input_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
