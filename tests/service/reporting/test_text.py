"""The fixed-width text rendering prints every arm, every section and the recommendation."""

from __future__ import annotations

import numpy as np

from bandit_service.core.reporting import DecisionCriteria, Guardrail, build_report, render_text
from policies.sketch import QuantileSketch
from policies.stats import StatsArray
from tests.service.reporting.factory import bernoulli_input


def test_text_report_shows_every_arm_section_and_the_recommendation(rng: np.random.Generator) -> None:
    trials = [[1000, 1000, 1000], [500, 1500, 1000]]
    successes = [[100, 130, 95], [50, 200, 90]]
    latency = tuple(QuantileSketch().add(rng.gamma(2.0, 40.0, size=500)) for _ in range(3))
    inp = bernoulli_input(
        successes,
        trials,
        arms=("control", "gpt-small", "gpt-large"),
        metrics={"error": StatsArray.from_counts([10, 12, 30], [1500, 2500, 2000])},
        sketches={"latency_ms": latency},
        criteria=DecisionCriteria(guardrails=(Guardrail(metric="error", max_increase=0.02),)),
        min_sample_size=500,
    )
    report = build_report(inp)
    text = render_text(report)
    sections = {part.split(" ", 1)[0]: part for part in text.split("\n== ")[1:]}
    assert list(sections) == ["reward", "error", "operational", "guardrails", "health", "recommendation:"]
    for name in ("reward", "error", "operational"):
        rows = sections[name].splitlines()
        for arm in inp.arms:
            assert any(row.startswith(arm + " ") for row in rows), (name, arm)
    for arm in inp.arms[1:]:  # arms, always valid, fixed horizon, pooled (the weights changed), Bayesian
        assert sum(row.startswith(arm + " ") for row in sections["reward"].splitlines()) == 5
    assert "P(best)" in text and "confidence sequence" in text and "latency_ms p50/p95/p99" in text
    rec = report.recommendation
    assert f"recommendation: {rec.action.upper().replace('_', ' ')}" in text
    assert rec.reason.split()[0] in text
    assert all(len(line) <= 160 for line in text.splitlines())


def test_text_report_marks_undefined_figures_with_a_dash() -> None:
    text = render_text(build_report(bernoulli_input([0, 0], [1, 1])))
    assert "nan" not in text.lower() and "inf" not in text.lower()
    b_row = next(line for line in text.splitlines() if line.startswith("B ") and "[" in line)
    assert b_row.split()[4] == "-"  # no standard deviation from a single observation
    assert "undefined" in text  # the lift over a control mean of 0
