"""Hash-based assignment: P(arm) = weight, minimal churn, monotone exposure (oracles: scipy, closed forms)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from bandit_service.core.assignment import (
    choose_arm,
    churn_share,
    derive_seed,
    in_exposure,
    namespace_uniform,
    unit_uniform,
)

SALT = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
ARMS = ("a", "b", "c")


def arms_of(n: int, weights: tuple[float, ...], salt: str = SALT) -> np.ndarray:
    names = tuple(f"arm{i}" for i in range(len(weights)))
    return np.array([choose_arm(salt, f"user-{u}", names, weights) for u in range(n)])


def test_each_arm_gets_its_weight_chi_square():
    weights = (0.2, 0.3, 0.5)
    n = 60_000
    counts = np.bincount(arms_of(n, weights), minlength=3)
    result = stats.chisquare(counts, np.array(weights) * n)
    assert result.pvalue > 1e-3, (counts, result)


@pytest.mark.parametrize(("k", "units"), [(2, 20_000), (10, 30_000), (50, 25_000)])
def test_each_arm_gets_its_weight_at_2_10_and_50_arms_chi_square(k, units):
    # Unequal weights drawn once per k (at least 100 units expected per arm); one chi-square test per k.
    weights = np.random.default_rng(k).dirichlet(np.full(k, 5.0))
    weights = tuple(float(w) for w in (weights + 0.004) / (weights + 0.004).sum())
    assert min(weights) * units >= 100
    counts = np.bincount(arms_of(units, weights, salt=f"chi-square-{k}"), minlength=k)
    result = stats.chisquare(counts, np.array(weights) * units)
    assert result.pvalue > 1e-3, (counts, result)


def test_a_zero_weight_arm_never_wins():
    counts = np.bincount(arms_of(20_000, (0.5, 0.0, 0.5)), minlength=3)
    assert counts[1] == 0
    with pytest.raises(ValueError, match="weights"):
        choose_arm(SALT, "u", ARMS, (0.0, 0.0, 0.0))


def test_unit_uniform_is_uniform_kolmogorov_smirnov():
    u = np.array([unit_uniform(SALT, f"user-{i}") for i in range(20_000)])
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert np.all((u >= 0) & (u < 1))


def test_50_50_to_60_40_moves_about_ten_percent_and_only_toward_the_gainer():
    n = 100_000
    before = arms_of(n, (0.5, 0.5))
    after = arms_of(n, (0.6, 0.4))
    moved = before != after
    se = np.sqrt(0.1 * 0.9 / n)
    assert abs(moved.mean() - 0.1) < 4 * se, moved.mean()
    # A unit leaves an arm only if that arm lost weight: nobody leaves the gaining arm 0.
    assert not np.any(moved & (before == 0))
    assert churn_share((0.5, 0.5), (0.6, 0.4)) == pytest.approx(0.1, abs=1e-12)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param((0.2, 0.3, 0.5), (0.4, 0.4, 0.2), id="three-arms"),
        pytest.param((0.25, 0.25, 0.25, 0.25), (0.7, 0.1, 0.1, 0.1), id="four-arms-to-a-winner"),
        pytest.param((0.5, 0.5, 0.0), (0.3, 0.3, 0.4), id="an-arm-from-zero"),
    ],
)
def test_churn_share_matches_a_simulation_of_the_hash(old, new):
    n = 60_000
    moved = (arms_of(n, old) != arms_of(n, new)).mean()
    p = churn_share(old, new)
    assert abs(moved - p) < 4 * np.sqrt(p * (1 - p) / n) + 1e-9, (moved, p)
    # Rendezvous churn is at least the total-variation distance (the least any scheme can move).
    assert p >= 0.5 * np.abs(np.subtract(old, new)).sum() - 1e-12


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.01, 1.0), min_size=2, max_size=6))
def test_churn_share_is_zero_for_equal_weights_and_within_bounds(raw):
    w = tuple(np.array(raw) / sum(raw))
    assert churn_share(w, w) == pytest.approx(0.0, abs=1e-12)
    other = tuple(np.roll(w, 1))
    assert 0.0 <= churn_share(w, other) <= 1.0


def test_raising_exposure_keeps_every_unit_that_was_in():
    units = [f"user-{i}" for i in range(20_000)]
    in_10 = np.array([in_exposure(SALT, u, 0.1) for u in units])
    in_50 = np.array([in_exposure(SALT, u, 0.5) for u in units])
    assert np.all(in_50[in_10])
    for share, inside in ((0.1, in_10), (0.5, in_50)):
        assert abs(inside.mean() - share) < 4 * np.sqrt(share * (1 - share) / len(units))


def test_exposure_and_arm_are_independent_hashes():
    weights = (0.3, 0.7)
    units = [f"user-{i}" for i in range(40_000)]
    exposed = [u for u in units if in_exposure(SALT, u, 0.5)]
    counts = np.bincount([choose_arm(SALT, u, ("a", "b"), weights) for u in exposed], minlength=2)
    assert stats.chisquare(counts, np.array(weights) * len(exposed)).pvalue > 1e-3


def test_different_salts_give_independent_assignments():
    a = arms_of(20_000, (0.5, 0.5), salt=SALT)
    b = arms_of(20_000, (0.5, 0.5), salt="another-salt")
    table = np.array([[np.sum((a == i) & (b == j)) for j in range(2)] for i in range(2)])
    assert stats.chi2_contingency(table).pvalue > 1e-3


def test_derive_seed_is_keyed_blake2b_and_differs_per_version():
    expected = hashlib.blake2b(b"reweight\x003", digest_size=8, key=SALT.encode()).digest()
    assert derive_seed(SALT, 3) == int.from_bytes(expected, "big") >> 1
    assert len({derive_seed(SALT, v) for v in range(100)}) == 100
    assert 0 <= derive_seed(SALT, 1) < 2**63


def _reference_arm(salt: str, unit: str, arms: tuple[str, ...], weights: tuple[float, ...]) -> int:
    """The rendezvous arm straight from its definition: one keyed blake2b of "arm\\0unit\\0arm" per arm."""
    scores = []
    for arm, w in zip(arms, weights, strict=True):
        digest = hashlib.blake2b(f"arm\x00{unit}\x00{arm}".encode(), digest_size=8, key=salt.encode()).digest()
        u = ((int.from_bytes(digest, "big") >> 11) + 0.5) * 2.0**-53
        scores.append(-np.log(u) / w if w > 0 else np.inf)
    return int(np.argmin(scores))


@pytest.mark.parametrize(
    "weights",
    [(0.5, 0.5), (0.2, 0.3, 0.5), (0.0, 0.7, 0.3), (0.1, 0.1, 0.1, 0.6, 0.1)],
    ids=["two", "three", "a-zero-arm", "five"],
)
def test_the_hashes_are_their_definition_so_stored_units_never_move_on_an_upgrade(weights):
    # Every stored sticky assignment and every SDK's local evaluation depends on these exact bits.
    names = tuple(f"arm-{i}" for i in range(len(weights)))
    for i in range(3_000):
        unit = f"user-{i}é"  # non-ASCII: encoded as UTF-8
        assert choose_arm(SALT, unit, names, weights) == _reference_arm(SALT, unit, names, weights)
        exposure = hashlib.blake2b(f"exposure\x00{unit}".encode(), digest_size=8, key=SALT.encode()).digest()
        assert unit_uniform(SALT, unit) == (int.from_bytes(exposure, "big") >> 11) * 2.0**-53
        spread = hashlib.blake2b(f"namespace\x00ns\x00{unit}".encode(), digest_size=8, key=b"").digest()
        assert namespace_uniform("ns", unit) == (int.from_bytes(spread, "big") >> 11) * 2.0**-53
