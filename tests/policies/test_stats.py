"""Sufficient statistics: merging, moments against numpy, constructors and invalid inputs."""

import math
from collections.abc import Callable

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.stats import ArmStats, StatsArray

# Integer-valued statistics keep float64 sums exact, so merging can be compared with ==.
counts = st.integers(0, 10**6)


@st.composite
def integer_stats(draw: st.DrawFn, k: int) -> StatsArray:
    """Statistics of integer rewards in [-50, 50] for k arms (every field exact in float64)."""
    n = draw(st.lists(counts, min_size=k, max_size=k))
    total = [draw(st.integers(-50 * m, 50 * m)) for m in n]
    total_sq = [draw(st.integers(abs(t), 2500 * m)) if m else 0 for t, m in zip(total, n, strict=True)]
    return StatsArray(n, total, total_sq)


three_stats = st.integers(1, 6).flatmap(lambda k: st.tuples(*(integer_stats(k) for _ in range(3))))


@settings(max_examples=75, deadline=None)
@given(three_stats)
def test_merging_is_associative_and_commutative(triple: tuple[StatsArray, StatsArray, StatsArray]) -> None:
    a, b, c = triple
    assert a + b == b + a
    assert (a + b) + c == a + (b + c)
    assert a + StatsArray.zeros(a.k) == a


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.lists(st.integers(-1000, 1000), max_size=30), min_size=1, max_size=5),
    st.lists(st.lists(st.integers(-1000, 1000), max_size=30), min_size=1, max_size=5),
)
def test_stats_of_two_periods_add_up(first: list[list[int]], second: list[list[int]]) -> None:
    k = min(len(first), len(second))
    first, second = first[:k], second[:k]
    merged = StatsArray.from_rewards([a + b for a, b in zip(first, second, strict=True)])
    assert StatsArray.from_rewards(first) + StatsArray.from_rewards(second) == merged


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(counts, st.integers(-(10**6), 10**6), counts), min_size=3, max_size=3))
def test_arm_stats_merge_like_the_vector_form(rows: list[tuple[int, int, int]]) -> None:
    arms = [ArmStats(n, t if n else 0, s + t * t if n else 0) for n, t, s in rows]
    a, b, c = arms
    assert a + b == b + a
    assert (a + b) + c == a + (b + c)
    assert StatsArray.from_arms([a + b]) == StatsArray.from_arms([a]) + StatsArray.from_arms([b])
    assert StatsArray.from_arms(arms)[1] == b


@settings(max_examples=75, deadline=None)
@given(
    st.lists(
        st.lists(st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), max_size=40),
        min_size=1,
        max_size=6,
    )
)
def test_mean_and_variance_match_numpy(rewards: list[list[float]]) -> None:
    stats = StatsArray.from_rewards(rewards)
    for i, r in enumerate(rewards):
        x = np.asarray(r)
        assert stats.n[i] == x.size
        if x.size == 0:
            assert np.isnan(stats.mean[i]) and np.isnan(stats.variance[i])
            continue
        scale = float(np.max(np.abs(x))) + 1.0
        assert stats.mean[i] == pytest.approx(np.mean(x), rel=1e-12, abs=1e-12 * scale)
        if x.size == 1:
            assert np.isnan(stats.variance[i]) and np.isnan(stats.std[i])
            continue
        # The sum-of-squares formula loses about n * eps * max(x)^2 / (n - 1) to cancellation.
        tolerance = 8 * np.finfo(float).eps * x.size * scale**2 / (x.size - 1)
        assert stats.variance[i] == pytest.approx(np.var(x, ddof=1), rel=1e-9, abs=tolerance)
        assert stats.variance[i] >= 0.0


def test_moments_of_known_data() -> None:
    stats = StatsArray.from_rewards([[1.0, 2.0, 3.0, 4.0], [5.0], []])
    np.testing.assert_array_equal(stats.n, [4, 1, 0])
    np.testing.assert_array_equal(stats.total, [10, 5, 0])
    np.testing.assert_array_equal(stats.total_sq, [30, 25, 0])
    assert stats.mean[0] == 2.5 and stats.mean[1] == 5.0 and np.isnan(stats.mean[2])
    assert stats.variance[0] == pytest.approx(5.0 / 3.0, rel=1e-15)
    assert stats.std[0] == pytest.approx(math.sqrt(5.0 / 3.0), rel=1e-15)
    assert np.isnan(stats.variance[1]) and np.isnan(stats.variance[2])


def test_variance_of_constant_rewards_is_zero_not_negative() -> None:
    # 0.1 is not exact in binary, so sum_sq - n * mean^2 rounds to a tiny negative number.
    stats = StatsArray.from_rewards([[0.1] * 1000, [1e6 + 0.1] * 7])
    assert np.all(stats.variance >= 0.0)
    assert stats.variance[0] == pytest.approx(0.0, abs=1e-15)


def test_from_counts_is_the_statistics_of_zero_one_rewards() -> None:
    successes, trials = [3, 0, 7], [10, 4, 7]
    rewards = [[1.0] * s + [0.0] * (t - s) for s, t in zip(successes, trials, strict=True)]
    stats = StatsArray.from_counts(successes, trials)
    assert stats == StatsArray.from_rewards(rewards)
    np.testing.assert_allclose(stats.mean, [0.3, 0.0, 1.0])
    np.testing.assert_allclose(stats.variance, [np.var(r, ddof=1) for r in rewards], rtol=1e-14, atol=1e-15)


def test_huge_counts_keep_the_mean_exact() -> None:
    stats = StatsArray.from_counts([123_456_789_012, 1], [10**12, 3])
    assert stats.mean[0] == 0.123456789012
    assert stats.variance[0] == pytest.approx(0.123456789012 * (1 - 0.123456789012) * 10**12 / (10**12 - 1))


def test_batched_statistics_keep_arms_on_the_last_axis() -> None:
    stats = StatsArray.from_counts([[1, 2, 3], [4, 5, 6]], [[10, 10, 10], [20, 20, 20]])
    assert stats.k == 3 and stats.n.shape == (2, 3)
    np.testing.assert_allclose(stats.mean, [[0.1, 0.2, 0.3], [0.2, 0.25, 0.3]])
    assert (stats + stats).n.shape == (2, 3)
    assert StatsArray.zeros(3, batch=(4, 2)).n.shape == (4, 2, 3)
    reordered = stats.take([2, 0, 1])
    np.testing.assert_array_equal(reordered.total, [[3, 1, 2], [6, 4, 5]])
    with pytest.raises(ValueError, match="unbatched"):
        stats[0]


def test_statistics_are_read_only_values() -> None:
    stats = StatsArray.from_counts([1, 2], [3, 4])
    with pytest.raises(ValueError, match="read-only"):
        stats.n[0] = 5.0
    with pytest.raises(AttributeError):
        ArmStats(1, 1, 1).n = 2  # type: ignore[misc]


def test_arm_stats_round_trip_through_json() -> None:
    arm = ArmStats(3, 2.5, 4.25)
    assert msgspec.json.decode(msgspec.json.encode(arm), type=ArmStats) == arm
    assert arm.mean == pytest.approx(2.5 / 3)
    assert math.isnan(ArmStats().mean)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        pytest.param(lambda: StatsArray([-1, 2], [0, 1], [0, 1]), r"^n: counts must be non-negative", id="negative-n"),
        pytest.param(lambda: StatsArray([1, 2], [0, float("nan")], [0, 1]), r"^total: .*finite", id="nan-total"),
        pytest.param(lambda: StatsArray([1, 2], [0, 1], [0, float("inf")]), r"^total_sq: .*finite", id="inf-total-sq"),
        pytest.param(lambda: StatsArray([float("nan")], [0], [0]), r"^n: .*finite", id="nan-n"),
        pytest.param(lambda: StatsArray([1, 2], [0, 1], [0, -1]), r"^total_sq: .*non-negative", id="negative-sq"),
        pytest.param(lambda: StatsArray([1, 2], [0, 1, 2], [0, 1, 2]), r"mismatched lengths", id="mismatched-lengths"),
        pytest.param(lambda: StatsArray([], [], []), r"^n: the arm list is empty", id="empty-arms"),
        pytest.param(lambda: StatsArray(3, 1, 1), r"^n: expected one value per arm", id="scalar"),
        pytest.param(lambda: StatsArray([0, 2], [1, 1], [1, 1]), r"^total, total_sq: must be 0", id="sum-without-n"),
        pytest.param(lambda: StatsArray.zeros(0), r"^k: need at least one arm", id="zeros-no-arms"),
        pytest.param(lambda: StatsArray.from_counts([1, -1], [2, 2]), r"^successes:", id="negative-successes"),
        pytest.param(lambda: StatsArray.from_counts([3, 1], [2, 2]), r"^successes:", id="successes-above-trials"),
        pytest.param(lambda: StatsArray.from_counts([0, 0], [2, -2]), r"^trials: .*non-negative", id="negative-trials"),
        pytest.param(lambda: StatsArray.from_counts([float("nan")], [2]), r"^successes: .*finite", id="nan-successes"),
        pytest.param(lambda: StatsArray.from_counts([1], [float("nan")]), r"^trials: .*finite", id="nan-trials"),
        pytest.param(
            lambda: StatsArray.from_counts([1, 2], [3]), r"^successes, trials: mismatched", id="counts-lengths"
        ),
        pytest.param(lambda: StatsArray.from_counts([], []), r"^n: the arm list is empty", id="counts-empty"),
        pytest.param(lambda: StatsArray.from_rewards([[1.0], [float("nan")]]), r"^rewards\[1\]: ", id="nan-reward"),
        pytest.param(lambda: StatsArray.from_rewards([[float("-inf")]]), r"^rewards\[0\]: ", id="inf-reward"),
        pytest.param(lambda: StatsArray.from_rewards([]), r"^rewards: the arm list is empty", id="rewards-empty"),
        pytest.param(lambda: StatsArray.from_arms([]), r"^arms: the arm list is empty", id="arms-empty"),
        pytest.param(lambda: ArmStats(-1, 0, 0), r"^n: counts must be non-negative", id="arm-negative-n"),
        pytest.param(lambda: ArmStats(1, float("nan"), 0), r"^total: .*finite", id="arm-nan-total"),
        pytest.param(
            lambda: StatsArray.zeros(2) + StatsArray.zeros(3), r"cannot merge statistics of shapes", id="merge-shapes"
        ),
    ],
)
def test_invalid_statistics_are_refused(build: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build()
