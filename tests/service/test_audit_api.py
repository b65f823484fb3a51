"""The audit log: every operator change with the injected clock's time, the actor and before/after values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.service.api import experiment_body, snapshot, started

RAMP = {"steps": [{"exposure": 0.1, "hold_s": 3_600}, {"exposure": 1.0}]}


def test_every_operator_action_is_logged_with_time_actor_and_values(client, clock):
    times = []

    def act(method: str, path: str, body: object = None, status: int = 200) -> None:
        clock.advance(10)
        times.append(datetime.fromtimestamp(clock.time(), UTC))
        response = client.request(method, f"/v1/experiments{path}", json=body)
        assert response.status_code == status, response.text

    act("POST", "", experiment_body(policy={"kind": "fixed"}), 201)
    act("PATCH", "/exp", {"description": "checkout button"})
    act("POST", "/exp/start")
    act("PUT", "/exp/weights", {"weights": {"a": 0.8, "b": 0.2}})
    act("PUT", "/exp/exposure", {"exposure": 0.5})
    act("PUT", "/exp/ramp", RAMP)
    act("DELETE", "/exp/ramp")
    act("POST", "/exp/pause")
    act("POST", "/exp/start")
    act("POST", "/exp/reweight")
    act("POST", "/exp/complete", {"winner": "b", "plan": [{"share": 0.75, "hold_s": 60}, {"share": 1.0}]})
    act("DELETE", "/exp/completion")
    act("POST", "/exp/complete", {"winner": "b"})
    started(client, "other")  # another experiment's entries stay out of this log

    log = client.get("/v1/experiments/exp/events").json()
    assert log["experiment"] == "exp" and log["next_after"] is None
    entries = log["events"]
    assert [datetime.fromisoformat(e["time"]) for e in entries] == times
    assert {e["actor"] for e in entries} == {"admin"}
    assert [e["id"] for e in entries] == sorted(e["id"] for e in entries)
    values = [(e["action"], e["before"], e["after"]) for e in entries]
    create = values[0]
    assert create[0] == "create" and create[1] is None
    assert create[2]["key"] == "exp" and create[2]["status"] == "draft"
    ramp = {"steps": [[0.1, 3_600], [1.0, None]], "step": 0, "status": "running", "winner": None}
    completion = {"steps": [[0.75, 60], [1.0, None]], "step": 0, "status": "running", "winner": "b"}
    assert values[1:] == [
        ("update", {"description": ""}, {"description": "checkout button"}),
        ("start", {"status": "draft"}, {"status": "active", "weights": [0.5, 0.5]}),
        (
            "set_weights",
            {"weights": [0.5, 0.5], "weights_version": 1},
            {"weights": [0.8, 0.2], "weights_version": 2},
        ),
        ("set_exposure", {"exposure": 1.0}, {"exposure": 0.5}),
        ("ramp_set", {"exposure": 0.5, "ramp": None}, {"exposure": 0.1, "ramp": ramp}),
        (
            "ramp_cancel",
            {"status": "running", "step": 0},
            {
                "status": "cancelled",
                "step": 0,
                "reason": "cancelled by an operator",
                "exposure": 0.1,
                "detail": "ramp cancelled at step 1 of 2; exposure stays at 0.1 (the last step reached); "
                "PUT /v1/experiments/exp/exposure to change it, or PUT /v1/experiments/exp/ramp for a new ramp",
            },
        ),
        ("pause", {"status": "active"}, {"status": "paused"}),
        ("resume", {"status": "paused"}, {"status": "active"}),
        (
            "reweight",
            {"weights": [0.8, 0.2], "weights_version": 2},
            {"weights": [0.8, 0.2], "weights_version": 3},
        ),
        (
            "completion_start",
            {"weights": [0.8, 0.2], "weights_version": 3},
            {"winner": "b", "plan": completion, "weights": [0.25, 0.75], "weights_version": 4},
        ),
        (
            "completion_cancel",
            {"status": "running", "step": 0},
            {
                "status": "cancelled",
                "step": 0,
                "reason": "cancelled by an operator",
                "weights": [0.25, 0.75],
                "detail": "completion cancelled at step 1 of 2; the weights stay at a 0.25, b 0.75 (the last step "
                "reached); the experiment is not completed: PUT /v1/experiments/exp/weights to change them, "
                "or POST /v1/experiments/exp/complete to complete it",
            },
        ),
        ("complete", {"status": "active"}, {"status": "completed", "winner": "b"}),
    ]


def test_pages_follow_the_cursor_without_gaps_or_repeats(client):
    started(client)
    for exposure in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
        client.put("/v1/experiments/exp/exposure", json={"exposure": exposure})
    everything = client.get("/v1/experiments/exp/events").json()["events"]
    assert len(everything) == 9  # create, start, 7 exposure changes
    pages, after = [], 0
    while True:
        page = client.get("/v1/experiments/exp/events", params={"limit": 3, "after": after}).json()
        pages.append(page["events"])
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert [len(p) for p in pages] == [3, 3, 3, 0]
    assert [e for p in pages for e in p] == everything


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        pytest.param("exp/events?limit=0", 422, "limit", id="limit-zero"),
        pytest.param("exp/events?limit=1001", 422, "limit", id="limit-too-big"),
        pytest.param("exp/events?limit=ten", 422, "limit", id="limit-not-a-number"),
        pytest.param("exp/events?after=-1", 422, "after", id="after-negative"),
        pytest.param("exp/events?after=x", 422, "after", id="after-not-a-number"),
        pytest.param("nope/events", 404, "key", id="unknown-experiment"),
    ],
)
def test_bad_event_queries_are_problem_details(client, database_url, path, status, field):
    started(client)
    before = snapshot(database_url)
    response = client.get(f"/v1/experiments/{path}")
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == field
    assert snapshot(database_url) == before
