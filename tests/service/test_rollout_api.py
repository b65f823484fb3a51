"""Rollout controls over HTTP: exposure, guarded ramps advanced by the scheduler's step, gradual completion.

The scheduler's step is `RolloutService.advance_rollouts(now)`, called here with a fake clock. The
guardrail verdict comes from the real report service (an experiment whose `error` metric really
is worse on one arm) or, where a test needs a breach at an exact moment, from an injected check.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from bandit_service.app import runtime_of
from bandit_service.services.rollouts import RolloutService
from tests.service.api import api_client, call, decide, decide_all, experiment_body, shared_client, snapshot, started

DAY = 86_400
RAMP = {"steps": [{"exposure": 0.1, "hold_s": DAY}, {"exposure": 0.5, "hold_s": 2 * DAY}, {"exposure": 1.0}]}
GUARDED = {"guardrails": [{"metric": "error", "max_increase": 0.01}]}


def tick(client, clock) -> int:
    """One scheduler step at the fake clock's time."""
    return call(client, runtime_of(client.app).services.rollouts.advance_rollouts, clock.time())


def exposure(client, key="exp") -> float:
    return client.get(f"/v1/experiments/{key}").json()["exposure"]


def events(client, key="exp") -> list[dict]:
    response = client.get(f"/v1/experiments/{key}/events", params={"limit": 1000})
    assert response.status_code == 200, response.text
    return response.json()["events"]


def traffic(client, key: str, units: range, error_of) -> None:
    """One decision per unit, then a reward whose `error` metric depends on the arm."""
    decided = decide_all(client, [{"experiment": key, "unit": f"u{i}"} for i in units])
    rewards = [
        {"decision_id": d["decision_id"], "reward": 1, "metrics": {"error": error_of(d["arm"], i)}}
        for i, d in zip(units, decided, strict=True)
        if d["in_experiment"]
    ]
    for start in range(0, len(rewards), 1_000):
        response = client.post("/v1/rewards/batch", json=rewards[start : start + 1_000])
        assert response.status_code == 200 and response.json()["failed"] == 0, response.text[:300]


def test_put_exposure_changes_who_enters_and_is_audited(client):
    started(client)
    response = client.put("/v1/experiments/exp/exposure", json={"exposure": 0.25})
    assert response.status_code == 200, response.text
    assert response.json()["exposure"] == 0.25
    decided = decide_all(client, [{"experiment": "exp", "unit": f"u{i}"} for i in range(2_000)])
    share = sum(d["in_experiment"] for d in decided) / len(decided)
    se = (0.25 * 0.75 / len(decided)) ** 0.5
    assert abs(share - 0.25) < 4 * se
    last = events(client)[-1]
    assert last["action"] == "set_exposure" and last["actor"] == "admin"
    assert (last["before"], last["after"]) == ({"exposure": 1.0}, {"exposure": 0.25})


def test_a_guarded_ramp_walks_its_steps_while_the_guardrail_holds(client, clock):
    started(client, criteria=GUARDED)
    t0 = clock.time()
    response = client.put("/v1/experiments/exp/ramp", json=RAMP)
    assert response.status_code == 200, response.text
    ramp = response.json()
    assert (ramp["step"], ramp["status"], ramp["exposure"]) == (0, "running", 0.1)
    assert datetime.fromisoformat(ramp["next_step_at"]) == datetime.fromtimestamp(t0, UTC) + timedelta(days=1)
    # The same error rate on both arms: the guardrail holds at every step.
    traffic(client, "exp", range(3_000), lambda arm, i: float(i % 10 == 0))
    assert call(client, runtime_of(client.app).services.reports.guardrail_breach, "exp") is None

    clock.advance(DAY - 1)
    assert tick(client, clock) == 0 and exposure(client) == 0.1
    clock.advance(1)
    assert tick(client, clock) == 1 and exposure(client) == 0.5
    assert tick(client, clock) == 0  # one step per hold
    clock.advance(2 * DAY)
    assert tick(client, clock) == 1 and exposure(client) == 1.0
    assert tick(client, clock) == 1  # the last step has no hold: the plan is done
    ramp = client.get("/v1/experiments/exp/ramp").json()
    assert (ramp["step"], ramp["status"], ramp["reason"], ramp["next_step_at"]) == (2, "done", None, None)
    clock.advance(DAY)
    assert tick(client, clock) == 0
    log = [(e["action"], e["actor"], e["before"], e["after"]) for e in events(client) if "ramp" in e["action"]]
    assert log[0][:2] == ("ramp_set", "admin") and log[0][2]["exposure"] == 1.0 and log[0][3]["exposure"] == 0.1
    assert log[1:] == [
        ("ramp_step", "scheduler", {"step": 0, "exposure": 0.1}, {"step": 1, "exposure": 0.5}),
        ("ramp_step", "scheduler", {"step": 1, "exposure": 0.5}, {"step": 2, "exposure": 1.0}),
        ("ramp_done", "scheduler", {"status": "running", "step": 2}, {"status": "done", "step": 2, "exposure": 1.0}),
    ]
    assert client.get("/v1/experiments/exp").json()["status"] == "active"


def test_a_breached_guardrail_stops_the_ramp_and_pauses_with_the_reason(client, clock):
    started(client, criteria=GUARDED)
    assert client.put("/v1/experiments/exp/ramp", json=RAMP).status_code == 200
    # Arm b errors on 30% of requests, arm a on 5%: far beyond the +0.01 the guardrail allows.
    traffic(client, "exp", range(6_000), lambda arm, i: float(i % 20 == 0 if arm == "a" else i % 10 < 3))
    clock.advance(DAY - 1)
    assert tick(client, clock) == 0  # guardrails are looked at once per step, when the step is due
    clock.advance(1)
    assert tick(client, clock) == 1
    experiment = client.get("/v1/experiments/exp").json()
    assert experiment["status"] == "paused" and experiment["exposure"] == 0.1
    ramp = client.get("/v1/experiments/exp/ramp").json()
    assert ramp["status"] == "stopped" and ramp["reason"].startswith("guarded rollout: guardrail on error")
    assert "arm b" in ramp["reason"]
    pause = events(client)[-1]
    assert (pause["action"], pause["actor"]) == ("pause", "scheduler")
    assert pause["before"] == {"status": "active", "plans": {"ramp": 0}}
    assert pause["after"] == {"status": "paused", "reason": ramp["reason"]}
    assert decide(client, unit="someone")["in_experiment"] is False
    clock.advance(30 * DAY)
    assert tick(client, clock) == 0 and exposure(client) == 0.1  # a stopped plan never moves again


def test_an_injected_breach_stops_a_ramp_at_an_exact_step(client, clock):
    started(client)
    services = runtime_of(client.app).services
    verdict: dict[str, str | None] = {"exp": None}
    asked: list[float] = []

    async def breach(key: str) -> str | None:
        asked.append(clock.time())
        return verdict[key]

    rollouts = RolloutService(services.storage, services.cache, services.experiments, clock, breach)
    client.put("/v1/experiments/exp/ramp", json=RAMP)
    t0 = clock.time()
    clock.advance(DAY)
    assert call(client, rollouts.advance_rollouts, clock.time()) == 1 and exposure(client) == 0.5
    verdict["exp"] = "error rose by 0.03 on arm b"
    clock.advance(DAY)
    assert call(client, rollouts.advance_rollouts, clock.time()) == 0  # not due: guardrails not consulted
    clock.advance(DAY)
    assert call(client, rollouts.advance_rollouts, clock.time()) == 1
    assert asked == [t0 + DAY, t0 + 3 * DAY]
    ramp = client.get("/v1/experiments/exp/ramp").json()
    assert (ramp["step"], ramp["status"]) == (1, "stopped")
    assert ramp["reason"] == "guarded rollout: error rose by 0.03 on arm b"
    assert client.get("/v1/experiments/exp").json()["status"] == "paused" and exposure(client) == 0.5


def test_a_manual_exposure_change_is_refused_while_a_ramp_runs_and_allowed_after_cancel(client, clock, database_url):
    started(client)
    client.put("/v1/experiments/exp/ramp", json=RAMP)
    before = snapshot(database_url)
    for response in (
        client.put("/v1/experiments/exp/exposure", json={"exposure": 0.9}),
        client.patch("/v1/experiments/exp", json={"exposure": 0.9}),
    ):
        assert response.status_code == 409 and response.json()["field"] == "exposure", response.text
    assert snapshot(database_url) == before
    cancelled = client.delete("/v1/experiments/exp/ramp")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert exposure(client) == 0.1  # a cancelled ramp leaves the exposure where it was
    assert client.put("/v1/experiments/exp/exposure", json={"exposure": 0.9}).status_code == 200
    clock.advance(10 * DAY)
    assert tick(client, clock) == 0 and exposure(client) == 0.9
    cancel = next(e for e in events(client) if e["action"] == "ramp_cancel")
    assert cancel["before"] == {"status": "running", "step": 0}
    assert cancel["after"] == {
        "status": "cancelled",
        "step": 0,
        "reason": "cancelled by an operator",
        "exposure": 0.1,
        "detail": cancelled.json()["detail"],
    }
    assert cancelled.json()["detail"].startswith("ramp cancelled at step 1 of 3; exposure stays at 0.1")


def test_a_ramp_set_on_a_draft_holds_from_the_start_and_pauses_hold_the_plan(client, clock):
    client.post("/v1/experiments", json=experiment_body())
    assert client.put("/v1/experiments/exp/ramp", json=RAMP).status_code == 200
    assert exposure(client) == 0.1
    clock.advance(5 * DAY)
    assert tick(client, clock) == 0  # a draft does not ramp
    client.post("/v1/experiments/exp/start")
    clock.advance(DAY - 1)
    assert tick(client, clock) == 0  # the hold restarted when the experiment started
    client.post("/v1/experiments/exp/pause")
    clock.advance(10)
    assert tick(client, clock) == 0  # a paused experiment does not ramp
    client.post("/v1/experiments/exp/start")
    clock.advance(DAY - 1)
    assert tick(client, clock) == 0
    clock.advance(1)
    assert tick(client, clock) == 1 and exposure(client) == 0.5


def test_completing_at_once_cancels_a_running_ramp(client):
    started(client)
    client.put("/v1/experiments/exp/ramp", json=RAMP)
    response = client.post("/v1/experiments/exp/complete", json={"winner": "b"})
    assert response.status_code == 200 and response.json()["status"] == "completed"
    ramp = client.get("/v1/experiments/exp/ramp").json()
    assert (ramp["status"], ramp["reason"]) == ("cancelled", "the experiment was completed")
    assert [e["action"] for e in events(client)][-2:] == ["complete", "ramp_cancel"]


def test_the_ramp_survives_a_restart(make_app, clock):
    with api_client(make_app()) as first:
        started(first)
        first.put("/v1/experiments/exp/ramp", json=RAMP)
    clock.advance(DAY)
    with api_client(make_app()) as second:
        assert second.get("/v1/experiments/exp/ramp").json()["step"] == 0
        assert tick(second, clock) == 1 and exposure(second) == 0.5


def test_two_replicas_take_each_step_once(make_app, clock):
    with api_client(make_app()) as one, api_client(make_app()) as two:
        started(one)
        one.put("/v1/experiments/exp/ramp", json=RAMP)
        clock.advance(DAY)
        # Both replicas read the same plan before either writes: only one compare-and-set lands.
        storage = runtime_of(one.app).services.storage
        experiment = call(one, storage.experiment, "exp")
        plan = call(one, storage.rollouts, experiment.id)["ramp"]
        wins = [
            call(c, runtime_of(c.app).services.rollouts.advance_plan, experiment, plan, clock.time(), None)
            for c in (one, two)
        ]
        assert sorted(wins) == [False, True]
        assert tick(two, clock) == 0  # the next step is two days away for both
        assert [e["action"] for e in events(one)].count("ramp_step") == 1
        assert one.get("/v1/experiments/exp/ramp").json()["step"] == 1


def weights(client, key="exp") -> dict[str, float]:
    return client.get(f"/v1/experiments/{key}").json()["weights"]


THREE = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
SHIFT = {"winner": "b", "plan": [{"share": 0.5, "hold_s": 3_600}, {"share": 1.0}]}


def test_a_gradual_completion_shifts_traffic_to_the_winner_then_completes(client, clock):
    started(client, arms=THREE, reweight_every_s=600)
    response = client.post("/v1/experiments/exp/complete", json=SHIFT)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "active" and body["next_reweight_at"] is None
    assert body["weights"] == pytest.approx({"a": 0.25, "b": 0.5, "c": 0.25})
    decided = decide_all(client, [{"experiment": "exp", "unit": f"u{i}"} for i in range(2_000)])
    share_b = sum(d["arm"] == "b" for d in decided) / len(decided)
    assert abs(share_b - 0.5) < 4 * (0.25 / len(decided)) ** 0.5
    # The policy is suspended: no scheduled reweight, no manual one.
    clock.advance(3_600)
    assert call(client, runtime_of(client.app).services.reweighter.reweight_due, clock.time()) == 0
    refused = client.post("/v1/experiments/exp/reweight")
    assert refused.status_code == 409 and refused.json()["field"] == "weights"
    assert tick(client, clock) == 1
    assert weights(client) == {"a": 0.0, "b": 1.0, "c": 0.0}
    assert client.get("/v1/experiments/exp").json()["status"] == "active"
    assert tick(client, clock) == 1  # last step without a hold: complete
    done = client.get("/v1/experiments/exp").json()
    assert (done["status"], done["winner"]) == ("completed", "b")
    completion = client.get("/v1/experiments/exp/completion").json()
    assert (completion["status"], completion["step"], completion["winner"]) == ("done", 1, "b")
    # Everyone, sticky units included, now gets the winner.
    again = decide_all(client, [{"experiment": "exp", "unit": f"u{i}"} for i in range(200)])
    assert {d["arm"] for d in again} == {"b"} and not any(d["in_experiment"] for d in again)
    history = client.get("/v1/experiments/exp/weights").json()["history"]
    assert [h["reason"] for h in history] == ["start", "shift", "shift"]
    log = [(e["action"], e["actor"]) for e in events(client)]
    assert log[-3:] == [("completion_start", "admin"), ("completion_step", "scheduler"), ("complete", "scheduler")]
    step = next(e for e in events(client) if e["action"] == "completion_step")
    assert step["before"]["share"] == 0.5 and step["after"]["share"] == 1.0
    assert step["after"]["weights"] == [0.0, 1.0, 0.0]


def test_cancelling_a_completion_keeps_the_weights_and_resumes_reweighting(client, clock):
    started(client, arms=THREE, reweight_every_s=600)
    client.post("/v1/experiments/exp/complete", json=SHIFT)
    cancelled = client.delete("/v1/experiments/exp/completion")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert weights(client) == pytest.approx({"a": 0.25, "b": 0.5, "c": 0.25})
    assert client.get("/v1/experiments/exp").json()["next_reweight_at"] is not None
    clock.advance(600)
    assert tick(client, clock) == 0
    assert call(client, runtime_of(client.app).services.reweighter.reweight_due, clock.time()) == 1
    assert client.post("/v1/experiments/exp/reweight").status_code == 200


def test_manual_weights_are_refused_while_shifting(client, database_url):
    started(client, policy={"kind": "fixed"})
    client.post("/v1/experiments/exp/complete", json=SHIFT)
    before = snapshot(database_url)
    refused = client.put("/v1/experiments/exp/weights", json={"weights": {"a": 0.5, "b": 0.5}})
    assert refused.status_code == 409 and refused.json()["field"] == "weights", refused.text
    assert snapshot(database_url) == before


def test_a_breach_while_shifting_pauses_and_stops_the_completion(client, clock):
    started(client, criteria=GUARDED)
    client.post("/v1/experiments/exp/complete", json=SHIFT)
    traffic(client, "exp", range(6_000), lambda arm, i: float(i % 20 == 0 if arm == "a" else i % 10 < 3))
    clock.advance(3_600)
    assert tick(client, clock) == 1
    experiment = client.get("/v1/experiments/exp").json()
    assert experiment["status"] == "paused" and experiment["next_reweight_at"] is not None
    completion = client.get("/v1/experiments/exp/completion").json()
    assert completion["status"] == "stopped" and completion["reason"].startswith("guarded rollout:")


JSON = "application/json"
RAMP_CASES = [
    # PUT .../exposure
    pytest.param("PUT", "exp/exposure", {"exposure": 1.5}, JSON, 422, "exposure", id="exposure-above-1"),
    pytest.param("PUT", "exp/exposure", {"exposure": -0.1}, JSON, 422, "exposure", id="exposure-negative"),
    pytest.param("PUT", "exp/exposure", {"exposure": "0.5"}, JSON, 422, "exposure", id="exposure-string"),
    pytest.param("PUT", "exp/exposure", {}, JSON, 422, "exposure", id="exposure-missing"),
    pytest.param("PUT", "exp/exposure", {"exposure": 0.5, "x": 1}, JSON, 422, "x", id="exposure-unknown-field"),
    pytest.param("PUT", "exp/exposure", b'{"exposure":', JSON, 400, "body", id="exposure-malformed"),
    pytest.param("PUT", "exp/exposure", b"", JSON, 400, "body", id="exposure-empty"),
    pytest.param("PUT", "exp/exposure", {"exposure": 0.5}, "text/plain", 415, "body", id="exposure-text"),
    pytest.param("PUT", "nope/exposure", {"exposure": 0.5}, JSON, 404, "key", id="exposure-unknown-experiment"),
    pytest.param("PUT", "done/exposure", {"exposure": 0.5}, JSON, 409, "status", id="exposure-completed"),
    pytest.param("PUT", "ramping/exposure", {"exposure": 0.5}, JSON, 409, "exposure", id="exposure-while-ramping"),
    # PUT .../ramp
    pytest.param("PUT", "exp/ramp", {"steps": []}, JSON, 422, "steps", id="ramp-empty"),
    pytest.param("PUT", "exp/ramp", {}, JSON, 422, "steps", id="ramp-missing-steps"),
    pytest.param("PUT", "exp/ramp", {"steps": [{"exposure": 0.1}] * 101}, JSON, 422, "steps", id="ramp-too-long"),
    pytest.param(
        "PUT",
        "exp/ramp",
        {"steps": [{"exposure": 0.1}, {"exposure": 0.5}]},
        JSON,
        422,
        "steps[0].hold_s",
        id="ramp-missing-hold",
    ),
    pytest.param(
        "PUT",
        "exp/ramp",
        {"steps": [{"exposure": 0.5, "hold_s": 60}, {"exposure": 0.1}]},
        JSON,
        422,
        "steps[1].exposure",
        id="ramp-backwards",
    ),
    pytest.param("PUT", "exp/ramp", {"steps": [{"exposure": 2}]}, JSON, 422, "steps[0].exposure", id="ramp-exp-2"),
    pytest.param(
        "PUT", "exp/ramp", {"steps": [{"exposure": 0.1, "hold_s": 0}]}, JSON, 422, "steps[0].hold_s", id="ramp-hold-0"
    ),
    pytest.param(
        "PUT",
        "exp/ramp",
        {"steps": [{"exposure": 0.1, "hold_s": 1.5}]},
        JSON,
        422,
        "steps[0].hold_s",
        id="ramp-fractional-hold",
    ),
    pytest.param(
        "PUT", "exp/ramp", {"steps": [{"value": 0.1}]}, JSON, 422, "steps[0].value", id="ramp-unknown-step-field"
    ),
    pytest.param("PUT", "exp/ramp", b'{"steps":[', JSON, 400, "body", id="ramp-malformed"),
    pytest.param("PUT", "exp/ramp", RAMP, "text/plain", 415, "body", id="ramp-text"),
    pytest.param("PUT", "nope/ramp", RAMP, JSON, 404, "key", id="ramp-unknown-experiment"),
    pytest.param("PUT", "done/ramp", RAMP, JSON, 409, "status", id="ramp-completed"),
    # GET / DELETE .../ramp
    pytest.param("GET", "exp/ramp", None, None, 404, "ramp", id="ramp-none"),
    pytest.param("GET", "nope/ramp", None, None, 404, "key", id="ramp-get-unknown-experiment"),
    pytest.param("DELETE", "exp/ramp", None, None, 404, "ramp", id="ramp-cancel-none"),
    pytest.param("DELETE", "cancelled/ramp", None, None, 409, "status", id="ramp-cancel-twice"),
    # POST .../complete with a plan
    pytest.param("POST", "exp/complete", {"winner": "b", "plan": []}, JSON, 422, "plan", id="complete-empty-plan"),
    pytest.param(
        "POST", "exp/complete", {"plan": [{"share": 1.0}]}, JSON, 422, "winner", id="complete-plan-without-winner"
    ),
    pytest.param(
        "POST",
        "exp/complete",
        {"winner": "zz", "plan": [{"share": 1.0}]},
        JSON,
        422,
        "winner",
        id="complete-plan-unknown-winner",
    ),
    pytest.param(
        "POST",
        "exp/complete",
        {"winner": "b", "plan": [{"share": 1.2}]},
        JSON,
        422,
        "plan[0].share",
        id="complete-share-above-1",
    ),
    pytest.param(
        "POST",
        "exp/complete",
        {"winner": "b", "plan": [{"share": 0.8, "hold_s": 60}, {"share": 0.5}]},
        JSON,
        422,
        "plan[1].share",
        id="complete-share-backwards",
    ),
    pytest.param(
        "POST",
        "exp/complete",
        {"winner": "b", "plan": [{"share": 0.5}, {"share": 1.0}]},
        JSON,
        422,
        "plan[0].hold_s",
        id="complete-missing-hold",
    ),
    pytest.param(
        "POST",
        "exp/complete",
        {"winner": "b", "plan": [{"share": 1.0, "why": 1}]},
        JSON,
        422,
        "plan[0].why",
        id="complete-unknown-step-field",
    ),
    pytest.param("POST", "paused/complete", SHIFT, JSON, 409, "status", id="complete-plan-while-paused"),
    pytest.param("POST", "shifting/complete", SHIFT, JSON, 409, "plan", id="complete-plan-twice"),
    # GET / DELETE .../completion
    pytest.param("GET", "exp/completion", None, None, 404, "completion", id="completion-none"),
    pytest.param("DELETE", "exp/completion", None, None, 404, "completion", id="completion-cancel-none"),
    pytest.param("DELETE", "nope/completion", None, None, 404, "key", id="completion-unknown-experiment"),
    # shifting experiments refuse other weight changes
    pytest.param("POST", "shifting/reweight", None, None, 409, "weights", id="reweight-while-shifting"),
]


@pytest.fixture(scope="module")
def world(module_database_url):
    """`exp` active; `done` completed; `paused`; `ramping` with a ramp; `cancelled` ramp; `shifting` completing.

    Shared by every case of the table (once per database): each case changes nothing, and checks it.
    """
    with shared_client(module_database_url, "bad-rollout") as client:
        started(client)
        for key in ("done", "paused", "ramping", "cancelled", "shifting"):
            started(client, key)
        client.post("/v1/experiments/done/complete")
        client.post("/v1/experiments/paused/pause")
        client.put("/v1/experiments/ramping/ramp", json=RAMP)
        client.put("/v1/experiments/cancelled/ramp", json=RAMP)
        client.delete("/v1/experiments/cancelled/ramp")
        assert client.post("/v1/experiments/shifting/complete", json=SHIFT).status_code == 200
        yield client


@pytest.mark.parametrize(("method", "path", "body", "content_type", "status", "field"), RAMP_CASES)
def test_bad_rollout_input_is_a_problem_detail_and_changes_nothing(
    world, module_database_url, method, path, body, content_type, status, field
):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    headers = {"content-type": content_type} if content_type else {}
    before = snapshot(module_database_url)
    response = world.request(method, f"/v1/experiments/{path}", content=body, headers=headers)
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert problem["type"].startswith("urn:bandit-service:problem:")
    assert problem.get("field") == field, problem
    assert snapshot(module_database_url) == before


def test_the_real_scheduler_advances_a_ramp(make_app, clock):
    with api_client(make_app(scheduler_enabled=True, scheduler_tick_s=0.05)) as client:
        started(client)
        client.put("/v1/experiments/exp/ramp", json=RAMP)
        clock.advance(DAY)
        deadline = time.monotonic() + 20.0  # a generous bound, not a timing assertion
        while exposure(client) != 0.5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert exposure(client) == 0.5
        assert client.get("/v1/experiments/exp/ramp").json()["step"] == 1
