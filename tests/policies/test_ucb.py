"""UCB1: the index against its formula, untried arms first, ties, knobs, and Auer's pull bound."""

import math

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.environments import BernoulliEnv
from policies.simulation import simulate
from policies.stats import StatsArray
from policies.ucb import UCB1, ucb1_index


def test_index_is_mean_plus_auer_bonus() -> None:
    stats = StatsArray.from_counts([3, 10, 1], [10, 40, 5])
    n = 55
    expected = [
        0.3 + math.sqrt(2 * math.log(n) / 10),
        0.25 + math.sqrt(2 * math.log(n) / 40),
        0.2 + math.sqrt(2 * math.log(n) / 5),
    ]
    np.testing.assert_allclose(ucb1_index(stats), expected, rtol=1e-14)


def test_all_weight_on_the_highest_index(rng: np.random.Generator) -> None:
    stats = StatsArray.from_counts([3, 10, 1], [10, 40, 5])  # index order: arm 2 > arm 0 > arm 1
    np.testing.assert_array_equal(UCB1().allocate(stats, rng), [0.0, 0.0, 1.0])
    assert np.all(UCB1().choose(stats, rng, size=50) == 2)  # deterministic whatever the generator


def test_untried_arms_come_first_and_share_evenly(rng: np.random.Generator) -> None:
    stats = StatsArray.from_counts([9, 0, 0, 0], [10, 0, 4, 0])
    np.testing.assert_allclose(UCB1().allocate(stats, rng), [0.0, 0.5, 0.0, 0.5])
    np.testing.assert_allclose(UCB1().allocate(StatsArray.zeros(4), rng), [0.25] * 4)


def test_ties_split_and_choose_breaks_them_at_random(rng: np.random.Generator) -> None:
    stats = StatsArray.from_counts([5, 5, 1], [10, 10, 10])
    np.testing.assert_allclose(UCB1().allocate(stats, rng), [0.5, 0.5, 0.0])
    picks = UCB1().choose(stats, rng, size=4_000)
    assert set(np.unique(picks)) == {0, 1}
    assert abs(picks.mean() - 0.5) < 4 * 0.5 / math.sqrt(picks.size)


def test_knobs_hold_floor_and_burn_in(rng: np.random.Generator) -> None:
    stats = StatsArray.from_counts([3, 10, 1], [10, 40, 5])
    np.testing.assert_array_equal(UCB1().allocate(stats, rng, active=np.array([True, True, False])), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(UCB1(min_weight=0.1).allocate(stats, rng), [0.1, 0.1, 0.8])
    np.testing.assert_allclose(UCB1(burn_in=6).allocate(stats, rng), [1 / 3] * 3)  # arm 2 has 5 < 6 pulls


def test_batched_statistics_give_one_row_per_batch(rng: np.random.Generator) -> None:
    stats = StatsArray.from_counts([[3, 10], [9, 1]], [[10, 40], [10, 10]])
    np.testing.assert_array_equal(UCB1().allocate(stats, rng), [[1.0, 0.0], [1.0, 0.0]])
    assert UCB1().choose(stats, rng).shape == (2,)
    assert UCB1().choose(stats, rng, size=3).shape == (2, 3)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 500), st.integers(0, 500)), min_size=2, max_size=6),
    st.integers(0, 2**32 - 1),
    st.floats(0.0, 0.1),
)
def test_weights_are_a_floored_distribution_and_follow_reordering(pairs, seed: int, floor: float) -> None:
    trials = np.array([a + b for a, b in pairs], dtype=float)
    successes = np.array([a for a, _ in pairs], dtype=float)
    stats = StatsArray.from_counts(successes, trials)
    policy = UCB1(min_weight=floor)
    w = policy.allocate(stats, np.random.default_rng(seed))
    assert np.all(np.isfinite(w)) and np.all(w >= floor - 1e-12) and math.isclose(w.sum(), 1.0, abs_tol=1e-12)
    order = np.random.default_rng(seed).permutation(stats.k)
    np.testing.assert_allclose(policy.allocate(stats.take(order), np.random.default_rng(seed)), w[order], atol=1e-12)


def test_suboptimal_pulls_respect_auer_theorem_1(rng: np.random.Generator) -> None:
    # Auer et al. (2002), theorem 1: E[pulls of arm i] <= 8 ln T / gap_i^2 + 1 + pi^2 / 3.
    env = BernoulliEnv((0.5, 0.8))
    horizon = 3_000
    result = simulate(UCB1(), env, horizon, 30, rng)
    bound = 8 * math.log(horizon) / 0.3**2 + 1 + math.pi**2 / 3
    pulls = result.pulls[:, 0]
    assert pulls.mean() + 4 * pulls.std(ddof=1) / math.sqrt(pulls.size) < bound
    assert pulls.mean() > 0.05 * bound  # it does explore: not the degenerate "never pull arm 0"


def test_decodes_from_json() -> None:
    assert msgspec.json.decode(b'{"kind": "ucb1", "min_weight": 0.05}', type=UCB1) == UCB1(min_weight=0.05)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        pytest.param(lambda: UCB1(burn_in=-1), "burn_in: must be a non-negative integer", id="burn-in"),
        pytest.param(lambda: UCB1(min_weight=1.5), r"min_weight: must be a number in \[0, 1\]", id="floor"),
        pytest.param(lambda: UCB1(min_weight=float("nan")), r"min_weight: must be a number in \[0, 1\]", id="nan"),
        pytest.param(
            lambda: UCB1(min_weight=0.4).allocate(StatsArray.zeros(3), np.random.default_rng(0)),
            r"min_weight: .*floor 0.4 exceeds 1",
            id="floor-too-big",
        ),
        pytest.param(
            lambda: UCB1().allocate(StatsArray.zeros(2), np.random.default_rng(0), active=np.array([False, False])),
            "active: at least one arm must be active",
            id="all-held",
        ),
    ],
)
def test_bad_input_is_refused(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()
