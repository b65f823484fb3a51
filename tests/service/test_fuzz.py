"""No request produces a 500: random bytes and random JSON built from the real field names, on every endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient

from bandit_service.app import create_app
from bandit_service.clock import FakeClock
from bandit_service.ids import sequential_ids
from tests.service.api import TEST_SETTINGS, api_client, decide, experiment_body, started

FIELDS = [
    "key", "name", "description", "arms", "weight", "payload", "control", "policy", "kind", "epsilon", "burn_in",
    "min_weight", "method", "draws", "reward", "reweight_every_s", "exposure", "targeting", "sticky",
    "reward_window_s", "default_reward", "winner", "weights", "experiment", "unit", "attributes", "decision_id",
    "metrics", "idempotency_key", "a", "b", "thompson", "fixed", "epsilon_greedy", "bernoulli", "continuous",
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(FIELDS),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(FIELDS), children, max_size=6),
    max_leaves=25,
)
bodies = st.one_of(st.binary(max_size=120), values.map(lambda v: json.dumps(v).encode()))
ENDPOINTS = [
    ("POST", "/v1/experiments"),
    ("PATCH", "/v1/experiments/drafty"),
    ("PATCH", "/v1/experiments/exp"),
    ("POST", "/v1/experiments/exp/complete"),
    ("PUT", "/v1/experiments/fixed/weights"),
    ("POST", "/v1/decisions"),
    ("POST", "/v1/rewards"),
    ("POST", "/v1/rewards/batch"),
]


@pytest.fixture(scope="module")
def fuzz_client(module_database_url: str) -> Iterator[TestClient[Litestar]]:
    """One app per database for all examples (examples may change its state, which is fine for this test)."""
    settings = msgspec.structs.replace(TEST_SETTINGS, database_url=module_database_url)
    with api_client(create_app(settings, clock=FakeClock(), ids=sequential_ids("fuzz"))) as client:
        started(client)
        client.post("/v1/experiments", json=experiment_body("drafty"))
        started(client, "fixed", policy={"kind": "fixed"})
        decide(client, unit="u1")
        yield client


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(ENDPOINTS), bodies)
def test_no_body_makes_a_500(fuzz_client, endpoint, body):
    method, path = endpoint
    response = fuzz_client.request(method, path, content=body, headers={"content-type": "application/json"})
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"


def test_odd_paths_and_queries_are_problems_not_500s(client):
    started(client)
    for path in (
        "/v1/experiments/%ff",
        "/v1/experiments/%00",
        "/v1/experiments?status=%ff",
        "/v1/experiments?limit=1e9",
    ):
        response = client.get(path)
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text)
        assert response.headers["content-type"] == "application/problem+json"
