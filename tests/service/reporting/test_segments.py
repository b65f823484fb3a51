"""Segmented reports: one report per attribute value, with a note where a segment is too small."""

from __future__ import annotations

import msgspec
import pytest

from bandit_service.core.reporting import build_report, build_segment_reports, render_segments_text
from tests.service.reporting.factory import bernoulli_input


def test_each_segment_gets_its_own_report_and_small_ones_a_note() -> None:
    segments = {
        "en": bernoulli_input([1000, 1300], [10_000, 10_000], seed=5),
        "de": bernoulli_input([300, 330], [3_000, 3_000], seed=6),
        "fr": bernoulli_input([3, 9], [40, 120], seed=7),
    }
    result = build_segment_reports("language", segments)
    assert [e.value for e in result.segments] == ["de", "en", "fr"]
    by_value = {e.value: e for e in result.segments}
    for value in ("de", "en"):
        entry = by_value[value]
        assert not entry.too_small and entry.note is None
        assert msgspec.json.encode(entry.report) == msgspec.json.encode(build_report(segments[value]))
    assert by_value["en"].report.recommendation.action == "ship"
    small = by_value["fr"]
    assert small.too_small
    assert small.note is not None and "fewer than 100 observations" in small.note and "A (40)" in small.note
    assert "B (120)" not in small.note
    assert small.report.recommendation.action == "keep_running"
    assert small.report.primary.arms[1].n == 120  # the figures are still there
    assert "not across segments" in result.note
    text = render_segments_text(result)
    for value in ("de", "en", "fr"):
        assert f"language = {value}" in text
    assert "too small to say anything" in text


def test_a_small_segment_never_ships_even_when_significant() -> None:
    result = build_segment_reports("tenant", {"t1": bernoulli_input([5, 60], [90, 90])}, min_observations=100)
    (entry,) = result.segments
    assert entry.report.primary.comparisons[0].p_value_adjusted < 1e-6
    assert entry.too_small and entry.report.recommendation.action == "keep_running"


@pytest.mark.parametrize(
    ("attribute", "minimum", "message"),
    [
        pytest.param("", 100, "attribute", id="empty-attribute"),
        pytest.param("language", 0, "min_observations", id="zero-minimum"),
        pytest.param("language", True, "min_observations", id="bool-minimum"),
    ],
)
def test_bad_segment_arguments_are_refused(attribute: str, minimum: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_segment_reports(attribute, {}, min_observations=minimum)
