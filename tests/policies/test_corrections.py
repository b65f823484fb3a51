"""Holm and Bonferroni adjustments against statsmodels' multipletests."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from policies.corrections import adjust_p_values, bonferroni, holm

p_lists = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12)


@settings(max_examples=30, deadline=None)  # multipletests runs gc.collect() on every call: slow
@given(p_lists)
def test_matches_statsmodels(p):
    for method, ours in (("holm", holm), ("bonferroni", bonferroni)):
        expected = multipletests(p, method=method)[1]
        np.testing.assert_allclose(ours(p), expected, rtol=1e-12, atol=0)
        np.testing.assert_allclose(adjust_p_values(p, method), expected, rtol=1e-12, atol=0)


@settings(max_examples=50, deadline=None)
@given(p_lists)
def test_holm_is_between_raw_and_bonferroni(p):
    raw = np.asarray(p)
    assert np.all(raw <= holm(p) + 1e-15)
    assert np.all(holm(p) <= bonferroni(p) + 1e-15)


def test_ties_and_an_example_by_hand():
    # m = 4, sorted 0.01, 0.02, 0.02, 0.04 -> 0.04, 0.06, 0.06 (step-down max), 0.06
    np.testing.assert_allclose(holm([0.02, 0.01, 0.04, 0.02]), [0.06, 0.04, 0.06, 0.06])
    np.testing.assert_allclose(bonferroni([0.02, 0.3]), [0.04, 0.6])


def test_batched_rows_are_adjusted_independently(rng):
    p = rng.random((6, 5))
    batched = holm(p)
    for row, expected in zip(p, batched, strict=True):
        np.testing.assert_allclose(holm(row), expected)


def test_none_returns_the_p_values_unchanged():
    p = [0.2, 0.01, 0.04, 1.0]
    np.testing.assert_array_equal(adjust_p_values(p, "none"), p)
    with pytest.raises(ValueError, match="p_values"):
        adjust_p_values([0.1, float("nan")], "none")  # checked like the others


@pytest.mark.parametrize(
    ("p", "method", "message"),
    [
        pytest.param([], "holm", "p_values", id="empty"),
        pytest.param([0.1, float("nan")], "holm", "p_values", id="nan"),
        pytest.param([0.1, 1.2], "bonferroni", "p_values", id="above-one"),
        pytest.param([-0.1], "holm", "p_values", id="negative"),
        pytest.param([0.1], "sidak", "method", id="unknown-method"),
    ],
)
def test_bad_input_is_refused(p, method, message):
    with pytest.raises(ValueError, match=message):
        adjust_p_values(p, method)
