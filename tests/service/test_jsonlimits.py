"""JSON depth on raw bytes (oracle: recursion over json.loads) and paths of too-deep values."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit_service.core.json_limits import body_depth, deep_path, free_json_problem

FREE = frozenset({"payload", "metrics"})


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


tricky_text = st.text(alphabet='[]{}"\\,:ab \n\x01é', max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | tricky_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(tricky_text, children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=100, deadline=None)
@given(json_values, st.booleans())
def test_body_depth_matches_recursion_over_the_parsed_value(value, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert body_depth(text.encode()) == depth_of(value)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(
            b'{"key":"x","arms":[{"name":"a"},{"name":"b\\"[[","payload":' + b"[" * 50 + b"]" * 50 + b"}]}",
            "arms[1].payload",
            id="payload-of-the-second-arm",
        ),
        pytest.param(
            b'[{"decision_id":"d","reward":1},{"decision_id":"e","reward":1,"metrics":'
            + b'{"a":' * 50
            + b"1"
            + b"}" * 50
            + b"}]",
            "[1].metrics",
            id="metrics-of-a-batch-item",
        ),
        pytest.param(b"[" * 50 + b"]" * 50, "[0][0][0][0][0][0]", id="bare-arrays-cut-after-six-parts"),
    ],
)
def test_deep_path_names_the_field(body, field):
    assert body_depth(body) > 32
    assert deep_path(body, 32, FREE) == field


def test_ten_thousand_levels_are_measured_without_recursion():
    body = b'{"payload":' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    assert body_depth(body) == 10_001
    assert deep_path(body, 32, FREE) == "payload"


def test_free_json_refuses_nul_anywhere():
    assert free_json_problem({"a": [1, "x", {"b": None}]}) is None
    assert "NUL" in (free_json_problem({"a": ["x\x00"]}) or "")
    assert "NUL" in (free_json_problem({"a\x00": 1}) or "")
