"""Invalid report inputs and criteria are refused with a ValueError naming the field."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from bandit_service.core.reporting import DecisionCriteria, Guardrail, PrimaryCriterion
from policies.sketch import QuantileSketch
from policies.stats import StatsArray
from tests.service.reporting.factory import bernoulli_input

S, T = [10, 12], [100, 100]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param({"arms": ("A",)}, "arms: need at least two", id="one-arm"),
        pytest.param({"arms": ("A", "A")}, "arms: names must be", id="duplicate-arms"),
        pytest.param({"control": 2}, "control", id="control-out-of-range"),
        pytest.param({"control": True}, "control", id="bool-control"),
        pytest.param({"reward": "poisson"}, "reward", id="unknown-reward"),
        pytest.param({"weights": (0.7, 0.7)}, "weights: must sum to 1", id="weights-not-summing"),
        pytest.param({"weights": (1.0,)}, "weights: expected one value per arm", id="weights-length"),
        pytest.param({"units": (1, -1)}, "units", id="negative-units"),
        pytest.param({"expired": (0,)}, "expired", id="expired-length"),
        pytest.param({"stats": StatsArray.zeros(3)}, "stats", id="stats-shape"),
        pytest.param({"period_stats": StatsArray.zeros(2)}, "period_stats", id="period-stats-1d"),
        pytest.param({"period_assigned": ((1.0, 2.0), (3.0, 4.0))}, "period_assigned", id="period-rows"),
        pytest.param(
            {"period_weights": ((0.6, 0.6),), "weights": (0.5, 0.5)},
            "period_weights: every row",
            id="period-weights-sum",
        ),
        pytest.param({"metrics": {"reward": StatsArray.zeros(2)}}, "metrics: 'reward'", id="metric-named-reward"),
        pytest.param({"metrics": {"error": StatsArray.zeros(3)}}, r"metrics\['error'\]", id="metric-shape"),
        pytest.param({"period_metrics": {"x": StatsArray.zeros(2, (1,))}}, "period_metrics", id="unknown-metric"),
        pytest.param({"sketches": {"latency_ms": (QuantileSketch(),)}}, "sketches", id="sketch-per-arm"),
        pytest.param({"min_sample_size": 0}, "min_sample_size", id="zero-min-sample"),
        pytest.param({"minimum_detectable_effect": 0.0}, "minimum_detectable_effect", id="zero-mde"),
        pytest.param({"minimum_detectable_effect": float("nan")}, "minimum_detectable_effect", id="nan-mde"),
        pytest.param({"level": 0.4}, "level", id="level-too-low"),
        pytest.param({"power": 1.0}, "power", id="power-one"),
        pytest.param({"srm_threshold": 0.0}, "srm_threshold", id="srm-threshold"),
        pytest.param({"seed": -1}, "seed", id="negative-seed"),
        pytest.param({"draws": 0}, "draws", id="zero-draws"),
    ],
)
def test_bad_report_input_is_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bernoulli_input(S, T, **overrides)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param({"guardrails": [{"metric": "error"}]}, "exactly one bound", id="no-bound"),
        pytest.param(
            {"guardrails": [{"metric": "error", "max_increase": 0.01, "max_decrease": 0.01}]},
            "exactly one bound",
            id="two-bounds",
        ),
        pytest.param({"guardrails": [{"metric": "error", "max_increase": -0.01}]}, "max_increase", id="negative"),
        pytest.param({"guardrails": [{"metric": "", "max_increase": 0.01}]}, "metric", id="empty-metric"),
        pytest.param({"primary": {"min_improvement": -1}}, "min_improvement", id="negative-improvement"),
        pytest.param({"primary": {"metric": "reward", "typo": 1}}, "typo", id="unknown-field"),
    ],
)
def test_bad_criteria_documents_are_refused_at_decode(document: dict[str, Any], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.convert(document, DecisionCriteria)


def test_criteria_decode_from_the_documented_json() -> None:
    raw = (
        b'{"primary": {"metric": "reward", "min_improvement": 0.0, "relative": false},'
        b' "guardrails": [{"metric": "error", "max_increase": 0.01},'
        b' {"metric": "latency_ms", "max_relative_increase": 0.10}]}'
    )
    criteria = msgspec.json.decode(raw, type=DecisionCriteria)
    assert criteria.primary == PrimaryCriterion()
    assert [g.bound for g in criteria.guardrails] == [("max_increase", 0.01), ("max_relative_increase", 0.10)]
    assert msgspec.json.decode(msgspec.json.encode(criteria), type=DecisionCriteria) == criteria
    assert Guardrail(metric="x", max_decrease=0.0).bound == ("max_decrease", 0.0)
