"""Lai-Robbins bound against a hand computation; Bernoulli KL against scipy's entropy."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from policies.lai_robbins import bernoulli_kl, lai_robbins_bound, lai_robbins_constant


@settings(max_examples=100, deadline=None)
@given(st.floats(0.0, 1.0), st.floats(0.001, 0.999))
def test_bernoulli_kl_matches_scipy_entropy(p: float, q: float) -> None:
    expected = sps.entropy([p, 1 - p], [q, 1 - q])
    assert math.isclose(float(bernoulli_kl(p, q)), expected, rel_tol=1e-9, abs_tol=1e-12)


def test_bernoulli_kl_edges() -> None:
    assert bernoulli_kl(0.3, 0.3) == 0.0
    assert math.isclose(float(bernoulli_kl(0.0, 0.4)), -math.log(0.6))  # only the (1-p) term remains
    assert bernoulli_kl(0.5, 1.0) == np.inf


def test_two_arm_bound_matches_the_hand_computation() -> None:
    # KL(0.10, 0.12) = 0.1 ln(0.10/0.12) + 0.9 ln(0.90/0.88)
    #               = 0.1 x (-0.1823215568) + 0.9 x 0.0224728559 = -0.0182321557 + 0.0202255703 = 0.0019934146
    # C = 0.02 / 0.0019934146 = 10.03304; at T = 100,000: C ln T = 10.03304 x 11.5129255 = 115.5097.
    assert math.isclose(lai_robbins_constant([0.10, 0.12]), 10.03304, rel_tol=1e-6)
    np.testing.assert_allclose(lai_robbins_bound([0.10, 0.12], [1, 100_000]), [0.0, 115.5097], rtol=1e-6, atol=1e-9)


def test_five_arm_bound_is_a_sum_over_suboptimal_arms() -> None:
    # Four arms at 0.45 against 0.5: 4 x 0.05 / KL(0.45, 0.5), KL = 0.45 ln 0.9 + 0.55 ln 1.1 = 0.0050083...
    kl = 0.45 * math.log(0.9) + 0.55 * math.log(1.1)
    assert math.isclose(lai_robbins_constant([0.5, 0.45, 0.45, 0.45, 0.45]), 4 * 0.05 / kl, rel_tol=1e-12)
    assert math.isclose(lai_robbins_constant([0.45, 0.5, 0.45]), 2 * 0.05 / kl, rel_tol=1e-12)  # order-free


def test_arms_tied_with_the_best_or_unconfusable_add_nothing() -> None:
    assert lai_robbins_constant([0.3, 0.3]) == 0.0
    assert lai_robbins_constant([0.7]) == 0.0
    assert lai_robbins_constant([1.0, 0.5]) == 0.0  # KL(0.5, 1) is infinite: one failure tells the arms apart


def test_bound_grows_like_log_t() -> None:
    t = np.array([10, 100, 1_000, 10_000])
    b = lai_robbins_bound([0.1, 0.2, 0.3], t)
    np.testing.assert_allclose(np.diff(b), np.full(3, lai_robbins_constant([0.1, 0.2, 0.3]) * math.log(10)))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        pytest.param(lambda: lai_robbins_constant([]), "means: expected a non-empty list", id="empty"),
        pytest.param(lambda: lai_robbins_constant([0.1, 1.5]), r"means: .* in \[0, 1\]", id="above-1"),
        pytest.param(lambda: lai_robbins_constant([0.1, float("nan")]), r"means: .* in \[0, 1\]", id="nan"),
        pytest.param(lambda: lai_robbins_bound([0.1, 0.2], [0]), "horizons: must be finite and at least 1", id="t0"),
        pytest.param(lambda: bernoulli_kl(-0.1, 0.5), r"p: .* in \[0, 1\]", id="kl-p"),
        pytest.param(lambda: bernoulli_kl(0.1, 2.0), r"q: .* in \[0, 1\]", id="kl-q"),
    ],
)
def test_bad_input_is_refused(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
