"""Policies: allocation properties, exact epsilon-greedy weights, knobs, validation, draws and decoding."""

import math
from typing import Any, cast

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from policies.allocation import sample_arms
from policies.epsilon_greedy import EpsilonGreedy
from policies.fixed import FixedSplit
from policies.policy import PolicyConfig, decode_policy
from policies.posterior import RewardKind, StudentTPosterior, prob_best_beta_exact
from policies.stats import StatsArray
from policies.thompson import ThompsonSampling

PROPERTY = settings(max_examples=60, deadline=None)
MC_DRAWS = 4_000  # Thompson draws in property tests: enough for a 6-standard-error tolerance


# ---------------------------------------------------------------------------------------------
# Strategies


@st.composite
def arm_counts(draw: st.DrawFn, k: int) -> tuple[list[int], list[int]]:
    """Success and trial counts for k arms: small, zero and huge counts mixed."""
    trials = draw(st.lists(st.one_of(st.integers(0, 60), st.integers(0, 10**9)), min_size=k, max_size=k))
    successes = [draw(st.integers(0, t)) for t in trials]
    return successes, trials


@st.composite
def active_masks(draw: st.DrawFn, k: int) -> np.ndarray:
    """A boolean mask over k arms with at least one active arm."""
    mask = draw(st.lists(st.booleans(), min_size=k, max_size=k))
    mask[draw(st.integers(0, k - 1))] = True
    return np.array(mask)


@st.composite
def policies_for(draw: st.DrawFn, k: int) -> PolicyConfig:
    """Any policy config valid for k arms."""
    floor = draw(st.one_of(st.just(0.0), st.just(1.0 / k), st.floats(0.0, 1.0 / k)))
    burn_in = draw(st.integers(0, 30))
    kind = draw(st.sampled_from(["fixed", "epsilon_greedy", "thompson_mc", "thompson_exact", "thompson_normal"]))
    if kind == "fixed":
        raw = np.array(draw(st.lists(st.floats(0.01, 1.0), min_size=k, max_size=k)))
        return FixedSplit(weights=tuple((raw / raw.sum()).tolist()))
    if kind == "epsilon_greedy":
        return EpsilonGreedy(epsilon=draw(st.floats(0.0, 1.0)), burn_in=burn_in, min_weight=floor)
    if kind == "thompson_exact":
        return ThompsonSampling(burn_in=burn_in, min_weight=floor, method="integration")
    reward: RewardKind = "continuous" if kind == "thompson_normal" else "bernoulli"
    return ThompsonSampling(reward=reward, burn_in=burn_in, min_weight=floor, draws=MC_DRAWS)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[PolicyConfig, StatsArray, np.ndarray, int]:
    """A policy, statistics, an active mask and a seed, for k in 1..6 arms."""
    k = draw(st.integers(1, 6))
    successes, trials = draw(arm_counts(k))
    return draw(policies_for(k)), StatsArray.from_counts(successes, trials), draw(active_masks(k)), draw(seeds)


seeds = st.integers(0, 2**32 - 1)


def monte_carlo_draws(policy: PolicyConfig) -> int | None:
    """The number of posterior draws behind the weights, or None for a deterministic policy."""
    if isinstance(policy, ThompsonSampling) and policy.method == "monte_carlo":
        return policy.draws
    return None


def mc_tolerance(p: np.ndarray, draws: int, n_estimates: int = 2) -> np.ndarray:
    """Six standard errors of a difference of `n_estimates` independent Monte Carlo proportions.

    `p` is the true probability: sqrt(p(1-p)/draws) is the standard error only at the true p. An
    estimate of 0 or 1 would give a zero width while 3,999/4,000 against 4,000/4,000 is a legal
    outcome. Six standard errors: a property run makes a few thousand comparisons and
    P(|Z| > 6) is about 2e-9 each, so a failure means a real difference, not an unlucky seed.
    """
    q = np.clip(p, 0.0, 1.0)
    return 6.0 * np.sqrt(n_estimates * q * (1.0 - q) / draws) + 1e-12


def pooled(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The pooled estimate of the true probability behind two Monte Carlo shares of equal size.

    Both shares estimate the same p, so their mean is its maximum-likelihood estimate (the
    two-proportion z-test's pooled p). It is 0 or 1 only when both shares are, and then they agree.
    For small counts x and y the tolerance is about 6*sqrt(x + y) draws, and given x + y the
    difference x - y has standard deviation exactly sqrt(x + y): six standard errors still.
    A weight shrunk by the floor, f + s*share with s <= 1 - f, overstates the share's variance,
    so the tolerance errs wide, never narrow.
    """
    return (a + b) / 2.0


def test_mc_tolerance_admits_an_edge_outcome_and_refuses_a_real_gap() -> None:
    draws = 4_000
    certain, almost = np.array([1.0, 0.0]), np.array([3_999 / draws, 1 / draws])
    assert np.all(np.abs(certain - almost) <= mc_tolerance(pooled(certain, almost), draws))
    none, some = np.array([0.0]), np.array([100 / draws])  # 0 against 100 draws: about 10 standard errors
    assert np.all(np.abs(none - some) > mc_tolerance(pooled(none, some), draws))


# ---------------------------------------------------------------------------------------------
# Properties for every policy


@PROPERTY
@given(scenarios())
def test_weights_are_a_floored_distribution_that_respects_the_mask(case: Any) -> None:
    policy, stats, mask, seed = case
    w = policy.allocate(stats, np.random.default_rng(seed), active=mask)
    assert w.shape == (stats.k,)
    assert np.all(np.isfinite(w)) and np.all(w >= 0.0)
    assert abs(w.sum() - 1.0) <= 1e-12
    assert np.all(w[~mask] == 0.0)
    floor = getattr(policy, "min_weight", 0.0)
    assert np.all(w[mask] >= floor - 1e-12)


@PROPERTY
@given(scenarios(), st.data())
def test_reordering_the_arms_permutes_the_weights(case: Any, data: st.DataObject) -> None:
    policy, stats, mask, seed = case
    perm = np.array(data.draw(st.permutations(range(stats.k))))
    if isinstance(policy, FixedSplit):
        permuted_policy: PolicyConfig = FixedSplit(weights=tuple(np.array(policy.weights)[perm].tolist()))
    else:
        permuted_policy = policy
    w = policy.allocate(stats, np.random.default_rng(seed), active=mask)
    w_perm = permuted_policy.allocate(stats.take(perm), np.random.default_rng(seed + 1), active=mask[perm])
    draws = monte_carlo_draws(policy)
    if draws is not None:
        # Each weight is a Monte Carlo share of `draws` posterior draws (shrunk by the floor).
        assert np.all(np.abs(w_perm - w[perm]) <= mc_tolerance(pooled(w_perm, w[perm]), draws))
    else:
        np.testing.assert_allclose(w_perm, w[perm], rtol=0, atol=1e-10)


@PROPERTY
@given(scenarios(), st.integers(1, 20))
def test_same_seed_same_output(case: Any, size: int) -> None:
    policy, stats, mask, seed = case
    first = policy.allocate(stats, np.random.default_rng(seed), active=mask)
    second = policy.allocate(stats, np.random.default_rng(seed), active=mask)
    np.testing.assert_array_equal(first, second)
    picks = policy.choose(stats, np.random.default_rng(seed), size=size, active=mask)
    np.testing.assert_array_equal(picks, policy.choose(stats, np.random.default_rng(seed), size=size, active=mask))
    assert picks.shape == (size,) and picks.dtype == np.int64
    assert np.all(mask[picks])  # a held arm is never chosen


@PROPERTY
@given(st.integers(1, 5), st.integers(1, 4), st.data())
def test_batched_rows_match_per_row_calls(batch: int, k: int, data: st.DataObject) -> None:
    policy = data.draw(policies_for(k))
    rows = [data.draw(arm_counts(k)) for _ in range(batch)]
    stats = StatsArray.from_counts([r[0] for r in rows], [r[1] for r in rows])
    mask = np.stack([data.draw(active_masks(k)) for _ in range(batch)])
    seed = data.draw(seeds)
    w = policy.allocate(stats, np.random.default_rng(seed), active=mask)
    assert w.shape == (batch, k)
    for i in range(batch):
        row_stats = StatsArray(stats.n[i], stats.total[i], stats.total_sq[i])
        w_row = policy.allocate(row_stats, np.random.default_rng(seed), active=mask[i])
        draws = monte_carlo_draws(policy)
        if draws is not None:
            assert np.all(np.abs(w[i] - w_row) <= mc_tolerance(pooled(w[i], w_row), draws))
        else:
            np.testing.assert_allclose(w[i], w_row, rtol=0, atol=1e-12)
    assert policy.choose(stats, np.random.default_rng(seed), active=mask).shape == (batch,)
    picks = policy.choose(stats, np.random.default_rng(seed), size=7, active=mask)
    assert picks.shape == (batch, 7)
    assert np.all(np.take_along_axis(mask, picks, axis=-1))


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param(FixedSplit(weights=(1.0,)), id="fixed"),
        pytest.param(EpsilonGreedy(epsilon=0.3, min_weight=1.0), id="epsilon-greedy"),
        pytest.param(ThompsonSampling(), id="thompson"),
        pytest.param(ThompsonSampling(method="integration", burn_in=3), id="thompson-exact"),
        pytest.param(ThompsonSampling(reward="continuous"), id="thompson-normal"),
    ],
)
@pytest.mark.parametrize("counts", [([0], [0]), ([1], [1]), ([7], [10**12])], ids=["empty", "one", "huge"])
def test_a_single_arm_gets_everything(policy: PolicyConfig, counts: Any, rng: np.random.Generator) -> None:
    stats = StatsArray.from_counts(*counts)
    np.testing.assert_array_equal(policy.allocate(stats, rng), [1.0])
    np.testing.assert_array_equal(policy.choose(stats, rng, size=5), [0] * 5)


# ---------------------------------------------------------------------------------------------
# Epsilon-greedy


@PROPERTY
@given(st.integers(1, 6).flatmap(lambda k: st.tuples(arm_counts(k), active_masks(k))), seeds)
def test_epsilon_zero_is_argmax_and_epsilon_one_is_uniform(case: Any, seed: int) -> None:
    (successes, trials), mask = case
    trials = [max(t, 1) for t in trials]  # every arm tried, so no untried-first rule applies
    stats = StatsArray.from_counts(successes, trials)
    rng = np.random.default_rng(seed)
    means = np.where(mask, stats.mean, -np.inf)
    best = means == means.max()
    np.testing.assert_allclose(EpsilonGreedy(epsilon=0.0).allocate(stats, rng, mask), best / best.sum(), atol=1e-15)
    np.testing.assert_allclose(EpsilonGreedy(epsilon=1.0).allocate(stats, rng, mask), mask / mask.sum(), atol=1e-15)


@pytest.mark.parametrize(
    ("successes", "trials", "active", "epsilon", "expected"),
    [
        pytest.param([1, 3, 2], [10, 10, 10], None, 0.3, [0.1, 0.8, 0.1], id="one-best"),
        pytest.param([3, 3, 1], [10, 10, 10], None, 0.3, [0.45, 0.45, 0.1], id="tie-splits"),
        pytest.param([1, 2, 5], [3, 6, 15], None, 0.6, [1 / 3] * 3, id="three-way-tie-exact-rationals"),
        pytest.param([0, 0, 0], [5, 9, 1], None, 0.2, [1 / 3] * 3, id="all-zero-rewards"),
        pytest.param([0, 0, 0], [0, 0, 0], None, 0.2, [1 / 3] * 3, id="no-data"),
        pytest.param([5, 0, 0], [10, 0, 3], None, 0.2, [0.0, 1.0, 0.0], id="untried-first"),
        pytest.param([5, 0, 0], [10, 0, 0], None, 0.2, [0.0, 0.5, 0.5], id="untried-share"),
        pytest.param([1, 9, 2], [10, 10, 10], [True, False, True], 0.2, [0.1, 0.0, 0.9], id="held-best"),
        pytest.param([5, 0, 1], [10, 0, 3], [True, False, True], 0.2, [0.9, 0.0, 0.1], id="held-untried"),
        pytest.param([1, 2, 3, 4], [10, 10, 10, 10], None, 0.0, [0, 0, 0, 1], id="greedy"),
        pytest.param([1, 2], [10**12, 10**12], None, 0.5, [0.25, 0.75], id="huge-counts"),
    ],
)
def test_epsilon_greedy_exact_weights(
    successes: list[int],
    trials: list[int],
    active: list[bool] | None,
    epsilon: float,
    expected: list[float],
    rng: np.random.Generator,
) -> None:
    stats = StatsArray.from_counts(successes, trials)
    w = EpsilonGreedy(epsilon=epsilon).allocate(stats, rng, active=None if active is None else np.array(active))
    np.testing.assert_allclose(w, expected, rtol=0, atol=1e-15)


def test_epsilon_greedy_uses_continuous_means(rng: np.random.Generator) -> None:
    stats = StatsArray.from_rewards([[2.0, 4.0], [3.5], [-1.0, 10.0, 0.0]])  # means 3, 3.5, 3
    np.testing.assert_allclose(EpsilonGreedy(epsilon=0.3).allocate(stats, rng), [0.1, 0.8, 0.1], atol=1e-15)


# ---------------------------------------------------------------------------------------------
# Knobs: burn-in, floor, hold


ADAPTIVE = [
    pytest.param(lambda **kw: EpsilonGreedy(epsilon=0.1, **kw), id="epsilon-greedy"),
    pytest.param(lambda **kw: ThompsonSampling(method="integration", **kw), id="thompson-exact"),
    pytest.param(lambda **kw: ThompsonSampling(draws=2_000, **kw), id="thompson-mc"),
    pytest.param(lambda **kw: ThompsonSampling(reward="continuous", draws=2_000, **kw), id="thompson-normal"),
]


@pytest.mark.parametrize("make", ADAPTIVE)
def test_burn_in_splits_equally_until_every_active_arm_has_n(make: Any, rng: np.random.Generator) -> None:
    policy = make(burn_in=5)
    stats = StatsArray.from_counts([1, 40, 0], [10, 50, 4])  # arm 2 has 4 < 5 observations
    np.testing.assert_array_equal(policy.allocate(stats, rng), [1 / 3] * 3)
    held = np.array([True, True, False])
    after = policy.allocate(stats, rng, active=held)  # the held arm does not keep the burn-in going
    assert after[1] > 0.9 and after[2] == 0.0
    done = StatsArray.from_counts([1, 40, 0], [10, 50, 5])
    assert policy.allocate(done, rng)[1] > 0.9
    picks = policy.choose(stats, rng, size=30_000)
    counts = np.bincount(picks, minlength=3)
    assert sps.chisquare(counts).pvalue > 1e-3  # uniform during burn-in
    batched = StatsArray.from_counts([[1, 40, 0], [1, 40, 0]], [[10, 50, 4], [10, 50, 5]])
    w = policy.allocate(batched, rng)
    np.testing.assert_array_equal(w[0], [1 / 3] * 3)
    assert w[1, 1] > 0.9


@pytest.mark.parametrize("make", ADAPTIVE[:2])
@pytest.mark.parametrize("active", [None, [True, False, True, True]], ids=["all", "held"])
def test_floor_is_additive_over_the_active_arms(make: Any, active: Any, rng: np.random.Generator) -> None:
    stats = StatsArray.from_counts([1, 9, 30, 4], [10, 10, 50, 20])
    mask = np.ones(4, dtype=bool) if active is None else np.array(active)
    m = int(mask.sum())
    plain = make().allocate(stats, rng, active=mask)
    floored = make(min_weight=0.05).allocate(stats, rng, active=mask)
    np.testing.assert_allclose(floored[mask], 0.05 + (1 - m * 0.05) * plain[mask], atol=1e-15)
    assert np.all(floored[~mask] == 0.0)
    full = make(min_weight=0.25).allocate(stats, rng)  # k * floor == 1: exactly uniform
    np.testing.assert_allclose(full, [0.25] * 4, atol=1e-15)


@pytest.mark.parametrize("make", ADAPTIVE)
@pytest.mark.parametrize("active", [None, [True, False, True]], ids=["all", "held"])
def test_a_floor_above_one_over_k_is_refused(make: Any, active: Any, rng: np.random.Generator) -> None:
    policy = make(min_weight=0.34)
    stats = StatsArray.from_counts([1, 2, 3], [10, 10, 10])
    mask = None if active is None else np.array(active)
    with pytest.raises(ValueError, match=r"^min_weight: 3 arms"):
        policy.allocate(stats, rng, active=mask)
    with pytest.raises(ValueError, match=r"^min_weight: 3 arms"):
        policy.choose(stats, rng, size=3, active=mask)


def test_a_fixed_split_gives_a_held_arms_share_to_the_others(rng: np.random.Generator) -> None:
    policy = FixedSplit(weights=(0.2, 0.3, 0.5))
    stats = StatsArray.zeros(3)
    np.testing.assert_allclose(policy.allocate(stats, rng), [0.2, 0.3, 0.5])
    np.testing.assert_allclose(policy.allocate(stats, rng, active=np.array([True, False, True])), [2 / 7, 0, 5 / 7])
    with pytest.raises(ValueError, match=r"^active: every active arm has weight 0"):
        FixedSplit(weights=(0.0, 1.0)).allocate(StatsArray.zeros(2), rng, active=np.array([True, False]))


@pytest.mark.parametrize(
    ("active", "match"),
    [
        pytest.param([True, False], r"^active: mismatched lengths", id="short"),
        pytest.param([1, 0, 1], r"^active: expected booleans", id="integers"),
        pytest.param([False, False, False], r"^active: at least one arm", id="all-held"),
        pytest.param([[True, True, True]] * 3, r"^active: shape .* does not broadcast", id="bad-batch"),
    ],
)
def test_invalid_active_masks_are_refused(active: Any, match: str, rng: np.random.Generator) -> None:
    stats = StatsArray.from_counts([[1, 2, 3], [1, 2, 3]], [[10, 10, 10], [10, 10, 10]])
    for policy in (FixedSplit(weights=(0.2, 0.3, 0.5)), EpsilonGreedy(), ThompsonSampling(draws=10)):
        with pytest.raises(ValueError, match=match):
            policy.allocate(stats, rng, active=np.array(active))


# ---------------------------------------------------------------------------------------------
# Validation of the configs


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        pytest.param((0.5, -0.1, 0.6), r"^weights: weights must be non-negative", id="negative"),
        pytest.param((0.5, float("nan")), r"^weights: .*finite", id="nan"),
        pytest.param((0.5, float("inf")), r"^weights: .*finite", id="inf"),
        pytest.param((0.5, 0.5 + 2e-9), r"^weights: weights must sum to 1", id="sum-above"),
        pytest.param((0.3, 0.3), r"^weights: weights must sum to 1", id="sum-below"),
    ],
)
def test_fixed_split_refuses_invalid_weights(weights: tuple[float, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FixedSplit(weights=weights)


def test_fixed_split_accepts_rounding_and_checks_the_length(rng: np.random.Generator) -> None:
    FixedSplit(weights=(0.5, 0.5 + 5e-10))
    FixedSplit(weights=(0.1,) * 10)  # sums to 0.9999999999999999
    with pytest.raises(ValueError, match=r"^weights: mismatched lengths, 2 weights for 3 arms"):
        FixedSplit(weights=(0.5, 0.5)).allocate(StatsArray.zeros(3), rng)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        pytest.param(lambda: EpsilonGreedy(epsilon=-0.1), r"^epsilon: ", id="epsilon-negative"),
        pytest.param(lambda: EpsilonGreedy(epsilon=1.5), r"^epsilon: ", id="epsilon-above-one"),
        pytest.param(lambda: EpsilonGreedy(epsilon=float("nan")), r"^epsilon: ", id="epsilon-nan"),
        pytest.param(lambda: EpsilonGreedy(epsilon=True), r"^epsilon: ", id="epsilon-bool"),
        pytest.param(lambda: EpsilonGreedy(burn_in=-1), r"^burn_in: ", id="burn-in-negative"),
        pytest.param(lambda: EpsilonGreedy(burn_in=cast(Any, 2.5)), r"^burn_in: ", id="burn-in-fraction"),
        pytest.param(lambda: EpsilonGreedy(min_weight=1.2), r"^min_weight: ", id="floor-above-one"),
        pytest.param(lambda: ThompsonSampling(min_weight=-0.1), r"^min_weight: ", id="ts-floor-negative"),
        pytest.param(lambda: ThompsonSampling(burn_in=-3), r"^burn_in: ", id="ts-burn-in"),
        pytest.param(lambda: ThompsonSampling(draws=0), r"^draws: ", id="draws-zero"),
        pytest.param(lambda: ThompsonSampling(draws=2_000_000), r"^draws: ", id="draws-too-many"),
        pytest.param(lambda: ThompsonSampling(reward=cast(Any, "poisson")), r"^reward: ", id="reward-kind"),
        pytest.param(lambda: ThompsonSampling(method=cast(Any, "grid")), r"^method: ", id="method-kind"),
        pytest.param(
            lambda: ThompsonSampling(reward="continuous", method="integration"), r"^method: ", id="exact-continuous"
        ),
        pytest.param(lambda: ThompsonSampling(prior_alpha=0.0), r"^prior_alpha: ", id="prior-alpha"),
        pytest.param(lambda: ThompsonSampling(prior_beta=float("inf")), r"^prior_beta: ", id="prior-beta"),
        pytest.param(lambda: ThompsonSampling(prior_kappa=-1.0), r"^prior_kappa: ", id="prior-kappa"),
        pytest.param(lambda: ThompsonSampling(prior_shape=0.0), r"^prior_shape: ", id="prior-shape"),
        pytest.param(lambda: ThompsonSampling(prior_scale=float("nan")), r"^prior_scale: ", id="prior-scale"),
        pytest.param(lambda: ThompsonSampling(prior_mean=float("nan")), r"^prior_mean: ", id="prior-mean"),
    ],
)
def test_invalid_policy_configs_are_refused(build: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize("size", [-1, 2.5, True], ids=["negative", "fraction", "bool"])
def test_an_invalid_number_of_decisions_is_refused(size: Any, rng: np.random.Generator) -> None:
    stats = StatsArray.from_counts([1, 2], [10, 10])
    for policy in (FixedSplit(weights=(0.5, 0.5)), EpsilonGreedy(), ThompsonSampling(draws=10)):
        with pytest.raises(ValueError, match=r"^size: "):
            policy.choose(stats, rng, size=size)


def test_thompson_refuses_non_binary_stats_for_bernoulli_rewards(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match=r"^stats: Beta posteriors need 0/1 rewards"):
        ThompsonSampling().allocate(StatsArray.from_rewards([[0.5, 1.0], [2.0]]), rng)


# ---------------------------------------------------------------------------------------------
# choose against allocate


def chi_square_matches(counts: np.ndarray, weights: np.ndarray) -> bool:
    """Goodness of fit at level 1e-3 on the arms with positive weight; the others must get nothing."""
    positive = weights > 0
    if np.any(counts[~positive]):
        return False
    if positive.sum() == 1:
        return True
    expected = weights[positive] / weights[positive].sum() * counts.sum()
    return bool(sps.chisquare(counts[positive], expected).pvalue > 1e-3)


STATS = StatsArray.from_counts([[12, 15, 9, 30], [3, 3, 3, 3]], [[100, 100, 80, 250], [10, 10, 10, 10]])
MASK = np.array([True, True, False, True])


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param(FixedSplit(weights=(0.1, 0.2, 0.3, 0.4)), id="fixed"),
        pytest.param(EpsilonGreedy(epsilon=0.2, min_weight=0.05), id="epsilon-greedy"),
        pytest.param(ThompsonSampling(method="integration"), id="thompson"),
        pytest.param(ThompsonSampling(method="integration", min_weight=0.05), id="thompson-floor"),
        pytest.param(ThompsonSampling(method="integration", min_weight=0.1, burn_in=50), id="thompson-burn-in"),
    ],
)
@pytest.mark.parametrize("active", [None, MASK], ids=["all", "held"])
def test_choose_frequencies_match_allocate_weights(policy: PolicyConfig, active: Any, rng: np.random.Generator) -> None:
    # For Thompson sampling `allocate` uses exact P(best) while `choose` draws one posterior
    # sample per decision: agreement checks probability matching itself.
    weights = policy.allocate(STATS, rng, active=active)
    picks = policy.choose(STATS, rng, size=40_000, active=active)
    for row in range(2):
        counts = np.bincount(picks[row], minlength=4)
        assert chi_square_matches(counts, weights[row]), (counts, weights[row])


def test_thompson_choose_on_continuous_rewards_matches_p_best(rng: np.random.Generator) -> None:
    policy = ThompsonSampling(reward="continuous", min_weight=0.05)
    stats = StatsArray.from_rewards([[1.0, 2.0, 0.5], [1.5, 2.5], [0.2]])
    post = policy.posterior(stats)
    assert isinstance(post, StudentTPosterior)
    # P(best) of Student-t posteriors by quadrature over a fine grid (independent of the policy's draws).
    x = np.linspace(-200.0, 200.0, 400_001)
    pdf = np.stack([sps.t.pdf(x, d, loc=m, scale=s) for d, m, s in zip(post.df, post.loc, post.scale, strict=True)])
    cdf = np.stack([sps.t.cdf(x, d, loc=m, scale=s) for d, m, s in zip(post.df, post.loc, post.scale, strict=True)])
    p_best = np.array([np.trapezoid(pdf[i] * np.prod(np.delete(cdf, i, axis=0), axis=0), x) for i in range(3)])
    p_best /= p_best.sum()  # the grid leaves out the far tails of df = 2 to 4 posteriors
    expected = 0.05 + (1 - 3 * 0.05) * p_best
    counts = np.bincount(policy.choose(stats, rng, size=40_000), minlength=3)
    assert chi_square_matches(counts, expected), (counts, expected)


def test_thompson_breaks_ties_between_equal_draws_evenly(rng: np.random.Generator) -> None:
    # Beta(0.01, 0.01) draws round to exactly 0 or 1 about a third of the time; symmetry says 1/2 each.
    policy = ThompsonSampling(prior_alpha=0.01, prior_beta=0.01, draws=100_000)
    stats = StatsArray.zeros(2)
    w = policy.allocate(stats, rng)
    assert abs(w[0] - 0.5) <= 4 * 0.5 / math.sqrt(policy.draws)
    picks = policy.choose(stats, rng, size=100_000)
    assert abs(picks.mean() - 0.5) <= 4 * 0.5 / math.sqrt(picks.size)


class _LargestUniform:
    """A stand-in generator whose uniforms are all the largest double below 1."""

    def random(self, shape: Any) -> np.ndarray:
        return np.full(shape, np.nextafter(1.0, 0.0))


def test_sample_arms_never_picks_a_trailing_arm_of_weight_zero() -> None:
    weights = np.array([0.1] * 10 + [0.0])  # the cumulative sum ends at 0.9999999999999999
    assert np.cumsum(weights)[-1] <= np.nextafter(1.0, 0.0)
    largest = cast(np.random.Generator, _LargestUniform())
    np.testing.assert_array_equal(sample_arms(weights, largest, size=3), [9, 9, 9])
    assert sample_arms(np.array([[0.0, 1.0], [1.0, 0.0]]), largest).tolist() == [1, 0]


def test_sample_arms_frequencies_match_the_weights(rng: np.random.Generator) -> None:
    weights = np.array([[0.0, 0.25, 0.0, 0.75], [0.5, 0.1, 0.4, 0.0]])
    picks = sample_arms(weights, rng, size=50_000)
    for row in range(2):
        assert chi_square_matches(np.bincount(picks[row], minlength=4), weights[row])


# ---------------------------------------------------------------------------------------------
# Thompson sampling edge cases


def test_thompson_on_continuous_rewards_with_no_or_one_observation(rng: np.random.Generator) -> None:
    policy = ThompsonSampling(reward="continuous", draws=20_000)
    w0 = policy.allocate(StatsArray.zeros(2), rng)
    assert np.all(np.abs(w0 - 0.5) <= mc_tolerance(np.array([0.5, 0.5]), policy.draws, 1))
    w1 = policy.allocate(StatsArray.from_rewards([[1.0], [2.0]]), rng)
    assert np.all(np.isfinite(w1)) and 0.5 < w1[1] < 0.99  # one observation each: favoured, not certain
    w_mixed = policy.allocate(StatsArray.from_rewards([[1.0] * 50, [], [0.5]]), rng)
    assert np.all(np.isfinite(w_mixed)) and abs(w_mixed.sum() - 1.0) <= 1e-12


def test_exact_thompson_matches_the_beta_integral(rng: np.random.Generator) -> None:
    stats = StatsArray.from_counts([12, 15, 9], [100, 100, 80])
    w = ThompsonSampling(method="integration", prior_alpha=2.0, prior_beta=3.0).allocate(stats, rng)
    p = prob_best_beta_exact(np.array([14.0, 17.0, 11.0]), np.array([91.0, 88.0, 74.0]))
    np.testing.assert_allclose(w, p / p.sum(), rtol=0, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# decode_policy


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param('{"kind": "fixed", "weights": [0.25, 0.75]}', FixedSplit(weights=(0.25, 0.75)), id="fixed"),
        pytest.param('{"kind": "epsilon_greedy"}', EpsilonGreedy(), id="epsilon-defaults"),
        pytest.param(
            '{"kind": "epsilon_greedy", "epsilon": 0.2, "burn_in": 30, "min_weight": 0.01}',
            EpsilonGreedy(epsilon=0.2, burn_in=30, min_weight=0.01),
            id="epsilon-greedy",
        ),
        pytest.param('{"kind": "thompson", "min_weight": 0.01}', ThompsonSampling(min_weight=0.01), id="thompson"),
        pytest.param(
            '{"kind": "thompson", "reward": "continuous", "prior_mean": 2.5, "draws": 500}',
            ThompsonSampling(reward="continuous", prior_mean=2.5, draws=500),
            id="thompson-continuous",
        ),
    ],
)
def test_decode_policy_reads_each_kind(text: str, expected: PolicyConfig) -> None:
    decoded = decode_policy(text)
    assert decoded == expected and type(decoded) is type(expected)
    assert decode_policy(msgspec.json.encode(decoded)) == decoded
    assert decode_policy(text.encode()) == decoded


@pytest.mark.parametrize(
    ("text", "match"),
    [
        pytest.param('{"kind": "fixed", "weights": [0.5, 0.6]}', r"weights: weights must sum to 1", id="fixed-sum"),
        pytest.param('{"kind": "fixed", "weights": [1.5, -0.5]}', r"weights: .*non-negative", id="fixed-negative"),
        pytest.param('{"kind": "epsilon_greedy", "epsilon": 1.5}', r"\$\.epsilon", id="epsilon-range"),
        pytest.param('{"kind": "epsilon_greedy", "burn_in": -1}', r"\$\.burn_in", id="burn-in-range"),
        pytest.param('{"kind": "thompson", "draws": 0}', r"\$\.draws", id="draws-range"),
        pytest.param('{"kind": "thompson", "reward": "poisson"}', r"\$\.reward", id="reward-kind"),
        pytest.param(
            '{"kind": "thompson", "reward": "continuous", "method": "integration"}', r"method: ", id="exact-continuous"
        ),
        pytest.param('{"kind": "thompson", "min_weights": 0.1}', r"unknown field `min_weights`", id="unknown-field"),
        pytest.param('{"kind": "ucb"}', r"Invalid value 'ucb' - at `\$\.kind`", id="unknown-kind"),
        pytest.param('{"epsilon": 0.1}', r"missing required field `kind`", id="no-kind"),
        pytest.param('{"kind": "thompson",,}', r"JSON is malformed", id="malformed"),
    ],
)
def test_decode_policy_refuses_invalid_configs(text: str, match: str) -> None:
    # msgspec's DecodeError and ValidationError are ValueErrors, so callers need catch only that.
    with pytest.raises(ValueError, match=match):
        decode_policy(text)
