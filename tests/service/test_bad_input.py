"""Bad input on every endpoint: a 4xx problem detail naming the field, never a 500, the database unchanged."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from bandit_service.http.problems import PROBLEM_TYPES
from tests.service.api import decide, experiment_body, shared_client, snapshot, started

DEEP = 10_000
TYPE_PREFIX = "urn:bandit-service:problem:"
# One human title per problem type, whichever handler answers it (RFC 9457: it does not vary).
TITLES = {
    "already-exists": "Already exists",
    "conflict": "Conflict",
    "illegal-transition": "Illegal transition",
    "invalid-field": "Invalid field",
    "malformed-body": "Malformed body",
    "method-not-allowed": "Method Not Allowed",
    "not-found": "Not found",
    "request-entity-too-large": "Request Entity Too Large",
    "unprocessable-entity": "Unprocessable Entity",
    "unsupported-media-type": "Unsupported media type",
}
BIG = 1_100_000  # above the default 1,000,000-byte body limit


def deep_array(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


def deep_object(depth: int = DEEP) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def create(**changes: Any) -> dict[str, Any]:
    body = experiment_body("new")
    body.update(changes)
    return body


def raw_create(payload: str) -> bytes:
    return ('{"key":"new","name":"n","arms":[{"name":"a","payload":' + payload + '},{"name":"b"}]}').encode()


JSON = "application/json"
CASES = [
    # POST /v1/experiments
    pytest.param("POST", "/v1/experiments", b'{"key": "new",', JSON, 400, "body", id="create-malformed-json"),
    pytest.param("POST", "/v1/experiments", b"", JSON, 400, "body", id="create-empty-body"),
    pytest.param("POST", "/v1/experiments", b"[1, 2]", JSON, 422, "body", id="create-array-not-object"),
    pytest.param("POST", "/v1/experiments", create(arms="a,b"), JSON, 422, "arms", id="create-wrong-type-arms"),
    pytest.param("POST", "/v1/experiments", create(exposure="0.5"), JSON, 422, "exposure", id="create-string-number"),
    pytest.param("POST", "/v1/experiments", create(colour="red"), JSON, 422, "colour", id="create-unknown-field"),
    pytest.param(
        "POST",
        "/v1/experiments",
        create(arms=[{"name": "a", "wieght": 0.5}, {"name": "b"}]),
        JSON,
        422,
        "arms[0].wieght",
        id="create-unknown-arm-field",
    ),
    pytest.param("POST", "/v1/experiments", create(arms=[]), JSON, 422, "arms", id="create-empty-arms"),
    pytest.param("POST", "/v1/experiments", create(arms=[{"name": "a"}]), JSON, 422, "arms", id="create-one-arm"),
    pytest.param(
        "POST",
        "/v1/experiments",
        create(arms=[{"name": "a"}, {"name": "b"}, {"name": "a"}]),
        JSON,
        422,
        "arms[2].name",
        id="create-duplicate-arm-names",
    ),
    pytest.param(
        "POST",
        "/v1/experiments",
        create(arms=[{"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.4}]),
        JSON,
        422,
        "arms[].weight",
        id="create-weights-not-summing-to-1",
    ),
    pytest.param(
        "POST",
        "/v1/experiments",
        create(arms=[{"name": "a", "weight": 1.0}, {"name": "b"}]),
        JSON,
        422,
        "arms[].weight",
        id="create-weights-for-some-arms",
    ),
    pytest.param("POST", "/v1/experiments", create(control="zz"), JSON, 422, "control", id="create-unknown-control"),
    pytest.param("POST", "/v1/experiments", create(exposure=1.5), JSON, 422, "exposure", id="create-exposure-above-1"),
    pytest.param(
        "POST", "/v1/experiments", create(exposure=-0.1), JSON, 422, "exposure", id="create-exposure-negative"
    ),
    pytest.param(
        "POST", "/v1/experiments", b'{"key":"new","name":"n","exposure":1e400}', JSON, 422, "exposure", id="create-inf"
    ),
    pytest.param("POST", "/v1/experiments", b'{"key":"new","exposure":NaN}', JSON, 400, "body", id="create-nan"),
    pytest.param("POST", "/v1/experiments", create(key="Not A Slug"), JSON, 422, "key", id="create-bad-key"),
    pytest.param("POST", "/v1/experiments", create(name="a\u0000b"), JSON, 422, "name", id="create-nul-in-name"),
    pytest.param(
        "POST",
        "/v1/experiments",
        create(arms=[{"name": "a", "payload": {"prompt": "x\u0000"}}, {"name": "b"}]),
        JSON,
        422,
        "arms[0].payload",
        id="create-nul-in-payload",
    ),
    pytest.param(
        "POST", "/v1/experiments", raw_create(deep_array()), JSON, 422, "arms[0].payload", id="create-deep-payload"
    ),
    pytest.param(
        "POST", "/v1/experiments", raw_create(deep_array(40)), JSON, 422, "arms[0].payload", id="create-40-deep-payload"
    ),
    pytest.param(
        "POST",
        "/v1/experiments",
        create(policy={"kind": "ucb"}),
        JSON,
        422,
        "policy.kind",
        id="create-unknown-policy",
    ),
    pytest.param(
        "POST",
        "/v1/experiments",
        create(policy={"kind": "thompson", "min_weight": 0.6}),
        JSON,
        422,
        "policy.min_weight",
        id="create-floor-too-high",
    ),
    pytest.param(
        "POST",
        "/v1/experiments",
        create(reward="continuous", policy={"kind": "thompson", "method": "integration"}),
        JSON,
        422,
        "policy.method",
        id="create-integration-for-continuous",
    ),
    pytest.param(
        "POST",
        "/v1/experiments",
        create(default_reward=0.5),
        JSON,
        422,
        "default_reward",
        id="create-bernoulli-default",
    ),
    pytest.param(
        "POST", "/v1/experiments", create(reweight_every_s=10**30), JSON, 422, "reweight_every_s", id="create-huge-int"
    ),
    pytest.param("POST", "/v1/experiments", experiment_body("exp"), JSON, 409, "key", id="create-duplicate-key"),
    pytest.param("POST", "/v1/experiments", create(), "text/plain", 415, "body", id="create-text-plain"),
    pytest.param("POST", "/v1/experiments", create(), None, 415, "body", id="create-no-content-type"),
    pytest.param(
        "POST", "/v1/experiments", create(description="x" * BIG), JSON, 413, "body", id="create-oversized-body"
    ),
    pytest.param(
        "POST", "/v1/experiments", b'{"key":"new","name":"\xff\xfe"}', JSON, 400, "body", id="create-bad-utf8"
    ),
    pytest.param(
        "POST", "/v1/experiments", b'{"key":"new","name":"\\ud800"}', JSON, 400, "body", id="create-lone-surrogate"
    ),
    # GET /v1/experiments
    pytest.param("GET", "/v1/experiments?status=running", None, None, 422, "status", id="list-unknown-status"),
    pytest.param("GET", "/v1/experiments?limit=0", None, None, 422, "limit", id="list-limit-zero"),
    pytest.param("GET", "/v1/experiments?limit=abc", None, None, 422, "limit", id="list-limit-not-a-number"),
    pytest.param("GET", "/v1/experiments/nope", None, None, 404, "key", id="read-unknown-experiment"),
    pytest.param("GET", "/v1/experiments/a%00b", None, None, 404, "key", id="read-nul-in-key"),
    pytest.param("GET", "/v1/experiments/" + "k" * 10_240, None, None, 404, "key", id="read-10kb-key"),
    # PATCH /v1/experiments/{key}
    pytest.param("PATCH", "/v1/experiments/exp", {"exposure": 2}, JSON, 422, "exposure", id="patch-exposure-2"),
    pytest.param("PATCH", "/v1/experiments/exp", {"exposure": "all"}, JSON, 422, "exposure", id="patch-wrong-type"),
    pytest.param("PATCH", "/v1/experiments/exp", {"colour": "red"}, JSON, 422, "colour", id="patch-unknown-field"),
    pytest.param("PATCH", "/v1/experiments/exp", {}, JSON, 422, "body", id="patch-nothing"),
    pytest.param("PATCH", "/v1/experiments/exp", b"{", JSON, 400, "body", id="patch-malformed"),
    pytest.param("PATCH", "/v1/experiments/exp", {"exposure": 0.5}, "text/plain", 415, "body", id="patch-text-plain"),
    pytest.param(
        "PATCH",
        "/v1/experiments/exp",
        {"policy": {"kind": "fixed"}},
        JSON,
        409,
        "policy",
        id="patch-policy-while-active",
    ),
    pytest.param(
        "PATCH",
        "/v1/experiments/drafty",
        {"arms": [{"name": "x"}, {"name": "x"}]},
        JSON,
        422,
        "arms[1].name",
        id="patch-duplicate-arms",
    ),
    pytest.param(
        "PATCH",
        "/v1/experiments/drafty",
        {"arms": [{"name": "x"}, {"name": "y"}]},
        JSON,
        422,
        "control",
        id="patch-arms-dropping-the-control",
    ),
    pytest.param(
        "PATCH",
        "/v1/experiments/exp",
        ('{"targeting":{"tier":' + deep_array() + "}}").encode(),
        JSON,
        422,
        "targeting",
        id="patch-deep-targeting",
    ),
    pytest.param("PATCH", "/v1/experiments/nope", {"exposure": 0.5}, JSON, 404, "key", id="patch-unknown-experiment"),
    # lifecycle
    pytest.param("POST", "/v1/experiments/nope/start", None, None, 404, "key", id="start-unknown"),
    pytest.param("POST", "/v1/experiments/exp/start", None, None, 409, "status", id="start-active"),
    pytest.param("POST", "/v1/experiments/drafty/pause", None, None, 409, "status", id="pause-draft"),
    pytest.param(
        "POST", "/v1/experiments/exp/complete", {"winner": "zz"}, JSON, 422, "winner", id="complete-bad-winner"
    ),
    pytest.param("POST", "/v1/experiments/exp/complete", {"winner": 3}, JSON, 422, "winner", id="complete-wrong-type"),
    pytest.param("POST", "/v1/experiments/exp/complete", {"who": "a"}, JSON, 422, "who", id="complete-unknown-field"),
    pytest.param("POST", "/v1/experiments/exp/complete", b"{", JSON, 400, "body", id="complete-malformed"),
    pytest.param(
        "POST", "/v1/experiments/exp/complete", b'{"winner":"a"}', "text/plain", 415, "body", id="complete-text"
    ),
    pytest.param("POST", "/v1/experiments/nope/reweight", None, None, 404, "key", id="reweight-unknown"),
    pytest.param("POST", "/v1/experiments/drafty/reweight", None, None, 409, "status", id="reweight-draft"),
    # weights
    pytest.param("GET", "/v1/experiments/exp/weights?limit=5000", None, None, 422, "limit", id="history-limit"),
    pytest.param("GET", "/v1/experiments/nope/weights", None, None, 404, "key", id="history-unknown"),
    pytest.param(
        "PUT",
        "/v1/experiments/fixed/weights",
        {"weights": {"a": 0.5, "b": 0.4}},
        JSON,
        422,
        "weights",
        id="weights-sum",
    ),
    pytest.param(
        "PUT",
        "/v1/experiments/fixed/weights",
        {"weights": {"a": 1.5, "b": -0.5}},
        JSON,
        422,
        "weights",
        id="weights-neg",
    ),
    pytest.param(
        "PUT",
        "/v1/experiments/fixed/weights",
        {"weights": {"a": 1.0}},
        JSON,
        422,
        "weights.b",
        id="weights-missing-arm",
    ),
    pytest.param(
        "PUT",
        "/v1/experiments/fixed/weights",
        {"weights": {"a": 0.5, "b": 0.25, "c": 0.25}},
        JSON,
        422,
        "weights.c",
        id="weights-unknown-arm",
    ),
    pytest.param("PUT", "/v1/experiments/fixed/weights", {"weights": {}}, JSON, 422, "weights", id="weights-empty"),
    pytest.param(
        "PUT", "/v1/experiments/fixed/weights", {"weights": {"a": "1"}}, JSON, 422, "weights", id="weights-wrong-type"
    ),
    pytest.param(
        "PUT",
        "/v1/experiments/exp/weights",
        {"weights": {"a": 0.5, "b": 0.5}},
        JSON,
        409,
        "policy",
        id="weights-thompson",
    ),
    pytest.param(
        "PUT",
        "/v1/experiments/fixed/weights",
        {"weights": {"a": 0.5, "b": 0.5}},
        "text/plain",
        415,
        "body",
        id="weights-text-plain",
    ),
    # POST /v1/decisions
    pytest.param("POST", "/v1/decisions", b'{"experiment":', JSON, 400, "body", id="decide-malformed"),
    pytest.param("POST", "/v1/decisions", {"experiment": "exp", "unit": 5}, JSON, 422, "unit", id="decide-wrong-type"),
    pytest.param("POST", "/v1/decisions", {"experiment": "exp", "user": "u"}, JSON, 422, "user", id="decide-unknown"),
    pytest.param("POST", "/v1/decisions", {"unit": "u"}, JSON, 422, "experiment", id="decide-missing-experiment"),
    pytest.param("POST", "/v1/decisions", {"experiment": "exp", "unit": ""}, JSON, 422, "unit", id="decide-empty-unit"),
    pytest.param(
        "POST", "/v1/decisions", {"experiment": "exp", "unit": "u" * 10_240}, JSON, 422, "unit", id="decide-10kb-unit"
    ),
    pytest.param("POST", "/v1/decisions", {"experiment": "exp", "unit": "u\u0000"}, JSON, 422, "unit", id="decide-nul"),
    pytest.param(
        "POST", "/v1/decisions", {"experiment": "nope", "unit": "u"}, JSON, 404, "experiment", id="decide-404"
    ),
    pytest.param(
        "POST",
        "/v1/decisions",
        {"experiment": "exp", "attributes": {"tier": {"level": 1}}},
        JSON,
        422,
        "attributes",
        id="decide-nested-attribute",
    ),
    pytest.param(
        "POST",
        "/v1/decisions",
        ('{"experiment":"exp","attributes":{"tier":' + deep_object() + "}}").encode(),
        JSON,
        422,
        "attributes",
        id="decide-deep-attributes",
    ),
    pytest.param(
        "POST",
        "/v1/decisions",
        b'{"experiment":"exp","attributes":{"score":1e400}}',
        JSON,
        422,
        "attributes",
        id="decide-infinite-attribute",
    ),
    pytest.param(
        "POST",
        "/v1/decisions",
        {"experiment": "exp", "attributes": {f"k{i}": i for i in range(65)}},
        JSON,
        422,
        "attributes",
        id="decide-too-many-attributes",
    ),
    pytest.param("POST", "/v1/decisions", {"experiment": "exp"}, "text/plain", 415, "body", id="decide-text-plain"),
    pytest.param(
        "POST", "/v1/decisions", {"experiment": "exp", "unit": "x" * BIG}, JSON, 413, "body", id="decide-oversized"
    ),
    pytest.param(
        "POST", "/v1/decisions", {"experiment": "exp", "feature": "exp"}, JSON, 422, "feature", id="decide-both"
    ),
    pytest.param("POST", "/v1/decisions", {"feature": "nope", "unit": "u"}, JSON, 404, "feature", id="decide-404-f"),
    pytest.param("POST", "/v1/decisions", {"feature": "Not A Slug"}, JSON, 422, "feature", id="decide-bad-feature"),
    # POST /v1/rewards
    pytest.param("POST", "/v1/rewards", b'{"decision_id":"{decision}"', JSON, 400, "body", id="reward-malformed"),
    pytest.param(
        "POST", "/v1/rewards", {"decision_id": "{decision}", "reward": "1"}, JSON, 422, "reward", id="reward-str"
    ),
    pytest.param("POST", "/v1/rewards", {"decision_id": "{decision}"}, JSON, 422, "reward", id="reward-missing"),
    pytest.param(
        "POST", "/v1/rewards", {"decision_id": "{decision}", "reward": 1, "x": 1}, JSON, 422, "x", id="reward-unknown"
    ),
    pytest.param(
        "POST", "/v1/rewards", b'{"decision_id":"{decision}","reward":NaN}', JSON, 400, "body", id="reward-nan"
    ),
    pytest.param(
        "POST", "/v1/rewards", b'{"decision_id":"{decision}","reward":1e400}', JSON, 422, "reward", id="reward-infinite"
    ),
    pytest.param(
        "POST", "/v1/rewards", {"decision_id": "{decision}", "reward": 0.5}, JSON, 422, "reward", id="reward-not-0-or-1"
    ),
    pytest.param(
        "POST",
        "/v1/rewards",
        {"decision_id": "{decision}", "reward": 1, "metrics": {"latency_ms": {"p50": 1}}},
        JSON,
        422,
        "metrics",
        id="reward-nested-metric",
    ),
    pytest.param(
        "POST",
        "/v1/rewards",
        ('{"decision_id":"{decision}","reward":1,"metrics":{"latency_ms":' + deep_object() + "}}").encode(),
        JSON,
        422,
        "metrics",
        id="reward-deep-metrics",
    ),
    pytest.param(
        "POST",
        "/v1/rewards",
        {"decision_id": "{decision}", "reward": 1, "idempotency_key": "k\u0000"},
        JSON,
        422,
        "idempotency_key",
        id="reward-nul-key",
    ),
    pytest.param(
        "POST", "/v1/rewards", {"decision_id": "../etc", "reward": 1}, JSON, 422, "decision_id", id="reward-bad-id"
    ),
    pytest.param(
        "POST", "/v1/rewards", {"decision_id": "", "reward": 1}, JSON, 422, "decision_id", id="reward-empty-id"
    ),
    pytest.param(
        "POST", "/v1/rewards", {"decision_id": "abc123", "reward": 1}, JSON, 404, "decision_id", id="reward-unknown-id"
    ),
    pytest.param(
        "POST",
        "/v1/rewards",
        {"decision_id": "{decision}", "reward": 1},
        "text/plain",
        415,
        "body",
        id="reward-text-plain",
    ),
    pytest.param(
        "POST",
        "/v1/rewards",
        {"decision_id": "{decision}", "reward": 1, "idempotency_key": "k" * BIG},
        JSON,
        413,
        "body",
        id="reward-oversized",
    ),
    # POST /v1/rewards/batch
    pytest.param("POST", "/v1/rewards/batch", b"[{", JSON, 400, "body", id="batch-malformed"),
    pytest.param(
        "POST",
        "/v1/rewards/batch",
        {"decision_id": "{decision}", "reward": 1},
        JSON,
        422,
        "body",
        id="batch-not-a-list",
    ),
    pytest.param("POST", "/v1/rewards/batch", [], JSON, 422, "body", id="batch-empty"),
    pytest.param(
        "POST",
        "/v1/rewards/batch",
        [{"decision_id": "{decision}", "reward": 1}] * 1_001,
        JSON,
        422,
        "body",
        id="batch-too-long",
    ),
    pytest.param(
        "POST",
        "/v1/rewards/batch",
        [{"decision_id": "{decision}", "reward": 1}, {"decision_id": "{decision}", "reward": 1, "y": 2}],
        JSON,
        422,
        "[1].y",
        id="batch-unknown-field-in-item",
    ),
    pytest.param(
        "POST",
        "/v1/rewards/batch",
        (
            '[{"decision_id":"{decision}","reward":1},{"decision_id":"{decision}","reward":1,"metrics":'
            + deep_object()
            + "}]"
        ).encode(),
        JSON,
        422,
        "[1].metrics",
        id="batch-deep-metrics",
    ),
    pytest.param(
        "POST",
        "/v1/rewards/batch",
        [{"decision_id": "{decision}", "reward": 1}],
        "text/plain",
        415,
        "body",
        id="batch-text-plain",
    ),
    # decision criteria and sample size (create and PATCH)
    pytest.param(
        "POST",
        "/v1/experiments",
        create(criteria={"guardrails": [{"metric": "error", "max_increase": 0.01, "max_decrease": 0.01}]}),
        JSON,
        422,
        "criteria.guardrails[0]",
        id="create-guardrail-two-bounds",
    ),
    pytest.param(
        "POST",
        "/v1/experiments",
        create(criteria={"guardrails": [{"metric": "error"}]}),
        JSON,
        422,
        "criteria.guardrails[0]",
        id="create-guardrail-no-bound",
    ),
    pytest.param(
        "POST",
        "/v1/experiments",
        create(criteria={"guardrails": [{"metric": "error", "max_increase": -0.01}]}),
        JSON,
        422,
        "criteria.guardrails[0].max_increase",
        id="create-guardrail-negative-bound",
    ),
    pytest.param(
        "POST",
        "/v1/experiments",
        create(criteria={"guardrails": [{"metric": "error", "max_incr": 0.01}]}),
        JSON,
        422,
        "criteria.guardrails[0].max_incr",
        id="create-guardrail-unknown-field",
    ),
    pytest.param(
        "POST",
        "/v1/experiments",
        create(criteria={"guardrails": [{"metric": "p95 latency", "max_increase": 5}]}),
        JSON,
        422,
        "criteria.guardrails[0].metric",
        id="create-guardrail-bad-metric-name",
    ),
    pytest.param(  # found by the OpenAPI contract test: the schema allowed "" and the service refused it
        "POST",
        "/v1/experiments",
        create(criteria={"guardrails": [{"metric": "", "max_relative_decrease": 1.0}]}),
        JSON,
        422,
        "criteria.guardrails[0].metric",
        id="create-guardrail-empty-metric-name",
    ),
    pytest.param(
        "POST",
        "/v1/experiments",
        create(
            criteria={
                "guardrails": [{"metric": "error", "max_increase": 0.01}, {"metric": "error", "max_increase": 0.02}]
            }
        ),
        JSON,
        422,
        "criteria.guardrails[1]",
        id="create-guardrail-twice",
    ),
    pytest.param(
        "POST",
        "/v1/experiments",
        create(criteria={"guardrails": [{"metric": f"m{i}", "max_increase": 1} for i in range(21)]}),
        JSON,
        422,
        "criteria.guardrails",
        id="create-too-many-guardrails",
    ),
    pytest.param(
        "POST",
        "/v1/experiments",
        create(criteria={"primary": {"metric": ""}}),
        JSON,
        422,
        "criteria.primary.metric",  # a metric name by its type now, so the field is named exactly
        id="create-empty-primary-metric",
    ),
    pytest.param(
        "POST",
        "/v1/experiments",
        create(criteria={"primary": {"min_improvement": "2%"}}),
        JSON,
        422,
        "criteria.primary.min_improvement",
        id="create-string-improvement",
    ),
    pytest.param("POST", "/v1/experiments", create(criteria="strict"), JSON, 422, "criteria", id="create-criteria-str"),
    pytest.param(
        "POST", "/v1/experiments", create(min_sample_size=0), JSON, 422, "min_sample_size", id="create-min-size-0"
    ),
    pytest.param(
        "POST", "/v1/experiments", create(min_sample_size=2.5), JSON, 422, "min_sample_size", id="create-min-size-float"
    ),
    pytest.param(
        "POST",
        "/v1/experiments",
        create(minimum_detectable_effect=0),
        JSON,
        422,
        "minimum_detectable_effect",
        id="create-mde-zero",
    ),
    pytest.param(
        "POST",
        "/v1/experiments",
        create(minimum_detectable_effect="5%"),
        JSON,
        422,
        "minimum_detectable_effect",
        id="create-mde-string",
    ),
    pytest.param(
        "POST", "/v1/experiments", create(mde_relative="yes"), JSON, 422, "mde_relative", id="create-mde-relative-str"
    ),
    pytest.param(
        "PATCH",
        "/v1/experiments/exp",
        {"criteria": {"primary": {"min_improvement": -1}}},
        JSON,
        422,
        "criteria.primary.min_improvement",
        id="patch-negative-improvement",
    ),
    pytest.param(
        "PATCH",
        "/v1/experiments/exp",
        {"minimum_detectable_effect": 0.0},
        JSON,
        422,
        "minimum_detectable_effect",
        id="patch-mde-zero",
    ),
    # GET /v1/experiments/{key}/report
    pytest.param("GET", "/v1/experiments/nope/report", None, None, 404, "key", id="report-unknown-experiment"),
    pytest.param("GET", "/v1/experiments/exp/report?format=xml", None, None, 422, "format", id="report-bad-format"),
    pytest.param(
        "GET", "/v1/experiments/exp/report?segment=a%20b", None, None, 422, "segment", id="report-segment-space"
    ),
    pytest.param(
        "GET", "/v1/experiments/exp/report?segment=1st", None, None, 422, "segment", id="report-segment-digit"
    ),
    pytest.param(
        "GET", "/v1/experiments/exp/report?segment=" + "s" * 65, None, None, 422, "segment", id="report-segment-long"
    ),
    pytest.param("GET", "/v1/experiments/exp/report?segment=", None, None, 422, "segment", id="report-segment-empty"),
    pytest.param("POST", "/v1/experiments/exp/report", None, None, 405, None, id="report-wrong-method"),
    # /v1/features
    pytest.param("PUT", "/v1/features/nmt", {}, JSON, 422, "default_payload", id="feature-no-default"),
    pytest.param("PUT", "/v1/features/nmt", {"default_payload": 1, "x": 1}, JSON, 422, "x", id="feature-unknown"),
    pytest.param("PUT", "/v1/features/Not%20A%20Slug", {"default_payload": 1}, JSON, 422, "key", id="feature-bad-key"),
    pytest.param("PUT", "/v1/features/" + "k" * 65, {"default_payload": 1}, JSON, 422, "key", id="feature-long-key"),
    pytest.param(
        "PUT", "/v1/features/nmt", {"default_payload": {"a": "b\u0000"}}, JSON, 422, "default_payload", id="feature-nul"
    ),
    pytest.param(
        "PUT",
        "/v1/features/nmt",
        ('{"default_payload":' + deep_array() + "}").encode(),
        JSON,
        422,
        "default_payload",
        id="feature-deep-payload",
    ),
    pytest.param(
        "PUT", "/v1/features/nmt", {"default_payload": 1, "description": 5}, JSON, 422, "description", id="feature-type"
    ),
    pytest.param("PUT", "/v1/features/nmt", b"{", JSON, 400, "body", id="feature-malformed"),
    pytest.param("PUT", "/v1/features/nmt", {"default_payload": 1}, "text/plain", 415, "body", id="feature-text"),
    pytest.param("GET", "/v1/features/nope", None, None, 404, "key", id="feature-read-unknown"),
    pytest.param("GET", "/v1/features/a%00b", None, None, 404, "key", id="feature-read-nul"),
    pytest.param("DELETE", "/v1/features/nope", None, None, 404, "key", id="feature-delete-unknown"),
    pytest.param("POST", "/v1/experiments", create(feature="nope"), JSON, 422, "feature", id="create-unknown-feature"),
    pytest.param("PATCH", "/v1/experiments/exp", {"feature": "nope"}, JSON, 422, "feature", id="patch-unknown-feature"),
    # routing
    pytest.param("GET", "/v1/nothing-here", None, None, 404, None, id="unknown-route"),
    pytest.param("DELETE", "/v1/experiments/exp", None, None, 405, None, id="wrong-method"),
]


@pytest.fixture(scope="module")
def world(module_database_url):
    """An active Thompson experiment `exp` with one pending decision, a draft, and an active fixed split.

    Shared by every case of the table (once per database): each case changes nothing, and checks it.
    """
    with shared_client(module_database_url, "bad-input") as client:
        started(client)
        client.post("/v1/experiments", json=experiment_body("drafty"))
        started(client, "fixed", policy={"kind": "fixed"})
        yield client, decide(client, unit="u1")["decision_id"]


@pytest.mark.parametrize(("method", "path", "body", "content_type", "status", "field"), CASES)
def test_bad_input_is_a_problem_detail_and_changes_nothing(
    world, module_database_url, method, path, body, content_type, status, field
):
    client, decision_id = world
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    if isinstance(body, bytes):
        body = body.replace(b"{decision}", decision_id.encode())
    headers = {"content-type": content_type} if content_type else {}
    before = snapshot(module_database_url)
    response = client.request(method, path, content=body, headers=headers)
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["detail"]
    assert problem["type"].startswith(TYPE_PREFIX)
    assert problem["title"] == TITLES[problem["type"].removeprefix(TYPE_PREFIX)], problem
    assert problem.get("field") == field, problem
    assert snapshot(module_database_url) == before


@pytest.mark.parametrize(("cls", "entry"), [pytest.param(c, e, id=c.__name__) for c, e in PROBLEM_TYPES.items()])
def test_every_problem_title_is_words_not_a_class_name(cls: type, entry: tuple[int, str, str]) -> None:
    _, _, title = entry
    assert title != cls.__name__ and not title.endswith("Error")
    assert re.fullmatch(r"[A-Z][a-z]*( [a-z]+)*", title), title
