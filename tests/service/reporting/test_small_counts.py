"""Small counts get honest relative figures and a note: issue 14's 2/44 against 4/36, and a zero control."""

from __future__ import annotations

import json
import math

import msgspec
import numpy as np
from statsmodels.stats.proportion import confint_proportions_2indep

from bandit_service.core.reporting import build_report, render_text
from bandit_service.core.reporting.notes import MIN_EVENTS, MIN_OBSERVATIONS
from tests.service.reporting.factory import bernoulli_input, continuous_input


def test_the_relative_interval_of_2_in_44_against_4_in_36_stays_in_range_and_is_noted() -> None:
    report = build_report(bernoulli_input([2, 4], [44, 36]))
    b = report.primary.comparisons[0]
    lower, upper = b.relative_interval
    assert b.relative_method == "log_ratio"
    assert -1.0 < lower < 0.0 < upper  # the old delta-method interval was [-256%, 545%]
    # The oracle: statsmodels' log (Katz) interval of the ratio of B's rate to A's.
    ref_lower, ref_upper = confint_proportions_2indep(4, 36, 2, 44, method="log", compare="ratio", alpha=0.05)
    assert math.isclose(lower, ref_lower - 1, rel_tol=1e-9) and math.isclose(upper, ref_upper - 1, rel_tol=1e-9)
    few = [n for n in report.notes if "few events" in n]
    assert few and "A 2/44" in few[0] and "B 4/36" in few[0] and f"fewer than {MIN_EVENTS} successes" in few[0]


def test_a_zero_control_is_undefined_everywhere_never_inf() -> None:
    report = build_report(bernoulli_input([0, 7], [300, 300]))
    b = report.primary.comparisons[0]
    assert math.isnan(b.relative) and all(math.isnan(x) for x in b.relative_interval)
    assert all(math.isnan(x) for x in b.lift_credible_interval)  # was [18%, 26,543%]
    assert any("relative lift undefined: control mean is 0" in n for n in report.notes)
    text = render_text(report)
    assert "undefined" in text and "inf" not in text.lower() and "nan" not in text.lower()
    as_json = msgspec.json.encode(report).decode()
    assert "Infinity" not in as_json and "inf" not in json.dumps(json.loads(as_json)).lower()


def test_enough_events_give_no_small_count_note() -> None:
    report = build_report(bernoulli_input([120, 150], [1_000, 1_000]))
    assert not [n for n in report.notes if "few " in n or "relative" in n]


def test_a_noisy_continuous_control_gets_an_unreliable_fieller_note(rng: np.random.Generator) -> None:
    # Control mean near 0 relative to its standard error: the ratio is poorly determined.
    a = rng.normal(0.05, 1.0, size=2 * MIN_OBSERVATIONS)
    b = rng.normal(0.5, 1.0, size=2 * MIN_OBSERVATIONS)
    report = build_report(continuous_input([a, b]))
    comparison = report.primary.comparisons[0]
    assert comparison.relative_method == "fieller"
    text = render_text(report)
    assert "inf" not in text.lower()
    assert any("relative" in n and "fieller" in n.lower() for n in report.notes), report.notes


def test_few_continuous_observations_are_noted(rng: np.random.Generator) -> None:
    report = build_report(continuous_input([rng.normal(10, 1, size=12), rng.normal(10.5, 1, size=40)]))
    few = [n for n in report.notes if "few observations" in n]
    assert few and "A n = 12" in few[0] and f"fewer than {MIN_OBSERVATIONS} observations" in few[0]
