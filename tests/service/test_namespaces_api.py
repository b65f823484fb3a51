"""Namespaces (mutually exclusive experiments) and the independence of experiments without one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import chi2_contingency
from sqlalchemy import select, update

from bandit_service.app import runtime_of
from bandit_service.services.decisions import place
from bandit_service.storage.tables import EXPERIMENTS
from tests.service.api import call, connect, decide, decide_all, experiment_body, snapshot, started

LEFT = {"name": "checkout", "start": 0.0, "end": 0.5}
RIGHT = {"name": "checkout", "start": 0.5, "end": 1.0}


def test_two_exclusive_experiments_never_share_a_unit(client):
    started(client, "left", namespace=LEFT)
    started(client, "right", namespace=RIGHT)
    units = [f"user-{i}" for i in range(4_000)]  # exclusivity and coverage are exact; the split is within 4 SE
    seen = {}
    for key in ("left", "right"):
        decided = decide_all(client, [{"experiment": key, "unit": u} for u in units])
        seen[key] = {u for u, d in zip(units, decided, strict=True) if d["in_experiment"]}
        outside = [d for d in decided if not d["in_experiment"]]
        assert {d["arm"] for d in outside} == {"a"}  # the control
        assert all(d["decision_id"].startswith("out_") for d in outside)
    assert not seen["left"] & seen["right"]
    assert len(seen["left"] | seen["right"]) == len(units)  # the two halves cover the namespace
    se = (0.25 / len(units)) ** 0.5
    assert abs(len(seen["left"]) / len(units) - 0.5) < 4 * se


def test_a_unit_keeps_its_side_and_exposure_applies_inside_the_slice(client):
    started(client, "left", namespace=LEFT, exposure=0.5)
    units = [f"user-{i}" for i in range(2_000)]
    first = decide_all(client, [{"experiment": "left", "unit": u} for u in units])
    again = decide_all(client, [{"experiment": "left", "unit": u} for u in units])
    assert [d["in_experiment"] for d in first] == [d["in_experiment"] for d in again]
    share = sum(d["in_experiment"] for d in first) / len(units)  # slice 0.5 x exposure 0.5
    assert abs(share - 0.25) < 4 * (0.25 * 0.75 / len(units)) ** 0.5


@pytest.mark.parametrize(
    ("theirs", "overlaps"),
    [
        pytest.param({"name": "checkout", "start": 0.4, "end": 0.9}, True, id="overlapping"),
        pytest.param({"name": "checkout", "start": 0.0, "end": 1.0}, True, id="containing"),
        pytest.param({"name": "checkout", "start": 0.5, "end": 0.6}, False, id="touching"),
        pytest.param({"name": "search", "start": 0.0, "end": 1.0}, False, id="other-namespace"),
    ],
)
def test_creating_an_overlapping_slice_is_409_naming_the_other(client, database_url, theirs, overlaps):
    client.post("/v1/experiments", json=experiment_body("left", namespace=LEFT))  # a draft also holds its slice
    before = snapshot(database_url)
    response = client.post("/v1/experiments", json=experiment_body("new", namespace=theirs))
    if overlaps:
        assert response.status_code == 409, response.text
        problem = response.json()
        assert problem["field"] == "namespace" and "'left'" in problem["detail"]
        assert snapshot(database_url) == before
    else:
        assert response.status_code == 201, response.text
        assert response.json()["namespace"] == theirs


def test_a_completed_experiment_frees_its_slice(client):
    started(client, "left", namespace=LEFT)
    assert client.post("/v1/experiments", json=experiment_body("next", namespace=LEFT)).status_code == 409
    client.post("/v1/experiments/left/complete")
    assert client.post("/v1/experiments", json=experiment_body("next", namespace=LEFT)).status_code == 201


def test_patching_a_draft_into_an_overlap_is_409_and_a_running_slice_is_fixed(client, database_url):
    started(client, "left", namespace=LEFT)
    client.post("/v1/experiments", json=experiment_body("draft", namespace=RIGHT))
    before = snapshot(database_url)
    overlap = client.patch("/v1/experiments/draft", json={"namespace": {"name": "checkout", "end": 0.7}})
    assert overlap.status_code == 409 and overlap.json()["field"] == "namespace" and "'left'" in overlap.text
    running = client.patch("/v1/experiments/left", json={"namespace": {"name": "checkout", "end": 0.4}})
    assert running.status_code == 409 and running.json()["field"] == "namespace"
    assert snapshot(database_url) == before
    moved = client.patch("/v1/experiments/draft", json={"namespace": {"name": "checkout", "start": 0.6}})
    assert moved.status_code == 200 and moved.json()["namespace"]["start"] == 0.6
    entry = client.get("/v1/experiments/draft/events").json()["events"][-1]
    assert entry["action"] == "update"
    assert entry["before"] == {"namespace": RIGHT}
    assert entry["after"] == {"namespace": {"name": "checkout", "start": 0.6, "end": 1.0}}


def test_starting_into_an_overlap_is_409(client, database_url):
    started(client, "left", namespace=LEFT)
    client.post("/v1/experiments", json=experiment_body("draft", namespace=RIGHT))
    # Two replicas on PostgreSQL could both pass the check at creation; simulate the outcome.
    with connect(database_url) as conn:
        config = conn.execute(select(EXPERIMENTS.c.config).where(EXPERIMENTS.c.key == "draft")).scalar_one()
        config["namespace"]["start"] = 0.25
        conn.execute(update(EXPERIMENTS).where(EXPERIMENTS.c.key == "draft").values(config=config))
    before = snapshot(database_url)
    response = client.post("/v1/experiments/draft/start")
    assert response.status_code == 409 and response.json()["field"] == "namespace" and "'left'" in response.text
    assert snapshot(database_url) == before
    assert client.post("/v1/experiments/left/pause").status_code == 200  # stopping is never refused


def test_experiments_without_a_namespace_assign_independently(client):
    """Per-experiment salts: the arm in one experiment says nothing about the arm in another (chi-square)."""
    started(client, "one", arms=[{"name": "a"}, {"name": "b"}, {"name": "c"}])
    started(client, "two", arms=[{"name": "x"}, {"name": "y"}])
    storage = runtime_of(client.app).services.storage
    one, two = call(client, storage.experiment, "one"), call(client, storage.experiment, "two")
    n = 30_000
    table = np.zeros((3, 2))
    for i in range(n):
        unit = f"user-{i}"
        table[place(one, unit, {}, "unused"), place(two, unit, {}, "unused")] += 1
    # The service answers as `place` does (the same function decides over HTTP).
    for i in range(50):
        assert decide(client, "one", unit=f"user-{i}")["arm"] == "abc"[place(one, f"user-{i}", {}, "-")]
    _, p, _, _ = chi2_contingency(table)
    assert p > 1e-3  # independence is not rejected
    assert np.all(np.abs(table - n / 6) < 4 * np.sqrt(n / 6 * (1 - 1 / 6)))  # every cell near n/6


JSON = "application/json"
CASES = [
    pytest.param({"name": "checkout", "start": 0.5, "end": 0.5}, "namespace", id="empty-slice"),
    pytest.param({"name": "checkout", "start": 0.7, "end": 0.2}, "namespace", id="reversed-slice"),
    pytest.param({"name": "checkout", "start": -0.1}, "namespace.start", id="negative-start"),
    pytest.param({"name": "checkout", "end": 1.5}, "namespace.end", id="end-above-1"),
    pytest.param({"name": "Check Out"}, "namespace.name", id="bad-name"),
    pytest.param({"start": 0.0}, "namespace.name", id="missing-name"),
    pytest.param({"name": "checkout", "size": 1}, "namespace.size", id="unknown-field"),
    pytest.param("checkout", "namespace", id="not-an-object"),
]


@pytest.mark.parametrize(("namespace", "field"), CASES)
def test_bad_namespaces_are_422_naming_the_field(client, database_url, namespace, field):
    client.post("/v1/experiments", json=experiment_body("drafty"))
    before = snapshot(database_url)
    for method, path, body in (
        ("POST", "/v1/experiments", experiment_body("new", namespace=namespace)),
        ("PATCH", "/v1/experiments/drafty", {"namespace": namespace}),
    ):
        response = client.request(method, path, content=json.dumps(body), headers={"content-type": JSON})
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["field"] == field
    assert snapshot(database_url) == before
