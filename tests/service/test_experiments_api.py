"""Experiments over HTTP: create, read, list, change, lifecycle, audit log, OpenAPI."""

from __future__ import annotations

import json

import pytest

from tests.service.api import decide, experiment_body, read_db, started

HEALTHY = {"status": "ok", "database": "ok", "process": 0, "commits": 0, "writes": 0}


def test_create_returns_a_draft_with_defaults(client):
    response = client.post("/v1/experiments", json=experiment_body(description="checkout button"))
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "draft" and body["control"] == "a" and body["description"] == "checkout button"
    assert body["policy"]["kind"] == "thompson" and body["reward"] == "bernoulli"
    assert (body["reweight_every_s"], body["exposure"], body["reward_window_s"], body["default_reward"]) == (
        3600,
        1.0,
        86400,
        0.0,
    )
    assert body["weights"] == {} and body["weights_version"] == 0
    assert [a["payload"] for a in body["arms"]] == [{"model": "v1"}, {"model": "v2"}]


def test_start_sets_initial_weights_and_history(client):
    body = started(client, arms=[{"name": "a", "weight": 0.9}, {"name": "b", "weight": 0.1}])
    assert body["status"] == "active" and body["weights"] == {"a": 0.9, "b": 0.1} and body["weights_version"] == 1
    history = client.get("/v1/experiments/exp/weights").json()["history"]
    assert [(h["version"], h["reason"], h["weights"]) for h in history] == [(1, "start", {"a": 0.9, "b": 0.1})]


def test_get_shows_per_arm_counts_and_means(client):
    started(client)
    d = decide(client, unit="u1")
    client.post("/v1/rewards", json={"decision_id": d["decision_id"], "reward": 1, "metrics": {"latency_ms": 120}})
    decide(client, unit="u2")
    body = client.get("/v1/experiments/exp").json()
    arm = body["stats"][d["arm"]]
    assert arm["rewarded"] == 1 and arm["n"] == 1 and arm["mean"] == 1.0
    assert arm["metrics"] == {"latency_ms": {"n": 1, "mean": 120.0}}
    total = sum(s["exposures"] for s in body["stats"].values())
    assert total == 2 and sum(s["pending"] for s in body["stats"].values()) == 1


def test_list_filters_by_status(client):
    started(client, "one")
    client.post("/v1/experiments", json=experiment_body("two"))
    keys = lambda q: [e["key"] for e in client.get(f"/v1/experiments{q}").json()["experiments"]]  # noqa: E731
    assert sorted(keys("")) == ["one", "two"]
    assert keys("?status=active") == ["one"] and keys("?status=draft") == ["two"] and keys("?status=paused") == []


def test_lifecycle_draft_active_paused_active_completed(client):
    started(client)
    assert client.post("/v1/experiments/exp/pause").json()["status"] == "paused"
    resumed = client.post("/v1/experiments/exp/start").json()
    assert resumed["status"] == "active" and resumed["weights_version"] == 1  # a resume keeps the weights
    done = client.post("/v1/experiments/exp/complete", json={"winner": "b"}).json()
    assert done["status"] == "completed" and done["winner"] == "b" and done["completed_at"] is not None


@pytest.mark.parametrize(
    ("setup", "action", "current"),
    [
        pytest.param([], "pause", "draft", id="pause-a-draft"),
        pytest.param([], "complete", "draft", id="complete-a-draft"),
        pytest.param(["start"], "start", "active", id="start-an-active"),
        pytest.param(["start", "pause"], "pause", "paused", id="pause-a-paused"),
        pytest.param(["start", "complete"], "start", "completed", id="restart-a-completed"),
        pytest.param(["start", "complete"], "pause", "completed", id="pause-a-completed"),
        pytest.param(["start", "complete"], "complete", "completed", id="complete-twice"),
        pytest.param([], "reweight", "draft", id="reweight-a-draft"),
        pytest.param(["start", "pause"], "reweight", "paused", id="reweight-a-paused"),
    ],
)
def test_illegal_transitions_are_409_naming_the_current_status(client, setup, action, current):
    client.post("/v1/experiments", json=experiment_body())
    for step in setup:
        assert client.post(f"/v1/experiments/exp/{step}").status_code == 200
    response = client.post(f"/v1/experiments/exp/{action}")
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["current_status"] == current and repr(current) in problem["detail"]


def test_complete_without_body_serves_the_control(client):
    started(client)
    done = client.post("/v1/experiments/exp/complete")
    assert done.status_code == 200 and done.json()["winner"] is None
    d = decide(client, unit="u1")
    assert d["arm"] == "a" and not d["in_experiment"]


def test_patch_changes_settings_and_keeps_draft_only_fields_locked(client):
    client.post("/v1/experiments", json=experiment_body())
    draft = client.patch(
        "/v1/experiments/exp",
        json={"arms": [{"name": "x"}, {"name": "y"}, {"name": "z"}], "control": "y", "policy": {"kind": "fixed"}},
    )
    assert draft.status_code == 200, draft.text
    assert [a["name"] for a in draft.json()["arms"]] == ["x", "y", "z"] and draft.json()["control"] == "y"
    client.post("/v1/experiments/exp/start")
    live = client.patch("/v1/experiments/exp", json={"exposure": 0.5, "description": "ramping", "reweight_every_s": 60})
    assert live.status_code == 200
    assert (live.json()["exposure"], live.json()["description"], live.json()["reweight_every_s"]) == (
        0.5,
        "ramping",
        60,
    )
    locked = client.patch("/v1/experiments/exp", json={"policy": {"kind": "thompson"}})
    assert (
        locked.status_code == 409 and locked.json()["field"] == "policy" and locked.json()["current_status"] == "active"
    )


def test_lifecycle_changes_are_in_the_audit_log(client, database_url):
    started(client)
    client.patch("/v1/experiments/exp", json={"exposure": 0.25})
    client.post("/v1/experiments/exp/pause")
    client.post("/v1/experiments/exp/complete", json={"winner": "a"})
    rows = read_db(
        database_url, "SELECT action, actor, CAST(before AS TEXT), CAST(after AS TEXT) FROM events ORDER BY id"
    )
    assert [r[0] for r in rows] == ["create", "start", "update", "pause", "complete"]
    assert {r[1] for r in rows} == {"admin"}
    update = rows[2]
    assert json.loads(update[2]) == {"exposure": 1.0} and json.loads(update[3]) == {"exposure": 0.25}
    assert json.loads(rows[4][3]) == {"status": "completed", "winner": "a"}


def test_openapi_schema_and_health(client):
    schema = client.get("/schema/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in (
        "/v1/experiments",
        "/v1/decisions",
        "/v1/rewards",
        "/v1/rewards/batch",
        "/v1/experiments/{key}/weights",
    ):
        assert path in paths
    assert client.get("/healthz").json() | {"process": 0, "commits": 0, "writes": 0} == HEALTHY


def test_options_names_every_method_of_the_path(client):
    # Litestar 2 named only the methods of the first handler on a path (litestar#4169).
    assert client.options("/v1/experiments").headers["allow"] == "GET, OPTIONS, POST"
    assert client.options("/v1/experiments/any/ramp").headers["allow"] == "DELETE, GET, OPTIONS, PUT"
    assert client.options("/v1/experiments/any").headers["allow"] == "GET, OPTIONS, PATCH"


def test_healthz_counts_group_commits(client):
    before = client.get("/healthz").json()
    client.post("/v1/experiments", json={"key": "hc", "name": "hc", "arms": [{"name": "a"}, {"name": "b"}]})
    after = client.get("/healthz").json()
    assert after["process"] == before["process"]
    assert after["commits"] >= before["commits"] + 1
    assert after["writes"] >= before["writes"] + 1
