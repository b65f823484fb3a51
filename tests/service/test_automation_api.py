"""Automation over HTTP with a fake clock: automatic pause, control, completion, and the end date.

The scheduler's tick (`Scheduler.tick`: expire, rollouts, reweight, automation) is called by hand
at the fake clock's time. The report is the real one, on traffic whose reward and `error` metric
depend on the arm by a fixed pattern of the unit index (no randomness), so each case's
recommendation is the one it is built for.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from bandit_service.app import runtime_of
from bandit_service.core.commands import DecisionIn
from bandit_service.core.model import Served
from bandit_service.services.automation import AutomationService
from bandit_service.services.scheduler import Scheduler
from tests.service.api import call, decide, experiment_body, started

HOUR = 3_600
DAY = 86_400
GUARDED = {"guardrails": [{"metric": "error", "max_increase": 0.01}]}
FIXED = {"kind": "fixed"}


def tick(client, clock) -> None:
    """One scheduler tick at the fake clock's time, wired as the running app wires it."""
    s = runtime_of(client.app).services
    call(client, Scheduler(s.reweighter, s.rewards, clock, 5.0, s.rollouts, automation=s.automation).tick)


def events(client, key="exp") -> list[dict[str, Any]]:
    response = client.get(f"/v1/experiments/{key}/events", params={"limit": 1000})
    assert response.status_code == 200, response.text
    return response.json()["events"]


def automatic(client, key="exp") -> list[dict[str, Any]]:
    return [e for e in events(client, key) if e["actor"] == "automation"]


def experiment(client, key="exp") -> dict[str, Any]:
    response = client.get(f"/v1/experiments/{key}")
    assert response.status_code == 200, response.text
    return response.json()


def traffic(client, units: range, reward_of: Callable[[str, int], int], error_of=None, key="exp") -> None:
    """One decision per unit (through the decision service: cheaper than HTTP), then its reward and `error`
    metric by arm and unit index, posted in batches."""
    service = runtime_of(client.app).services.decisions

    async def decide_each() -> list[Served]:
        return [await service.decide(DecisionIn(experiment=key, unit=f"u{i}")) for i in units]

    rewards = []
    for i, served in zip(units, call(client, decide_each), strict=True):
        arm = served.experiment.arm_names[served.arm]
        body: dict[str, Any] = {"decision_id": served.decision_id, "reward": reward_of(arm, i)}
        if error_of is not None:
            body["metrics"] = {"error": error_of(arm, i)}
        rewards.append(body)
    for start in range(0, len(rewards), 1_000):
        response = client.post("/v1/rewards/batch", json=rewards[start : start + 1_000])
        assert response.status_code == 200 and response.json()["failed"] == 0, response.text[:300]


def b_wins(arm: str, i: int) -> int:
    """Conversion 20% on a, 40% on b."""
    return int(i % 10 < (4 if arm == "b" else 2))


def same(arm: str, i: int) -> int:
    """Conversion 20% on both arms."""
    return int(i % 10 < 2)


def b_errs(arm: str, i: int) -> float:
    """Errors: 2% on a, 20% on b."""
    return float(i % 50 == 0) if arm == "a" else float(i % 5 == 0)


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def test_a_breached_guardrail_pauses_at_the_next_look_with_the_figures(client, clock):
    started(client, criteria=GUARDED, reweight_every_s=HOUR, automation={"on_guardrail_breach": "pause"})
    traffic(client, range(800), same, b_errs)
    clock.advance(HOUR - 1)
    tick(client, clock)  # no look before a reweight interval has passed
    assert experiment(client)["status"] == "active" and automatic(client) == []

    clock.advance(1)
    tick(client, clock)
    assert experiment(client)["status"] == "paused"
    (entry,) = automatic(client)
    assert entry["action"] == "auto_pause" and entry["before"] == {"status": "active"}
    after = entry["after"]
    assert after["status"] == "paused"
    assert "the error guardrail (max_increase 0.01 against a) is breached by b" in after["reason"]
    assert after["recommendation"]["action"] == "stop_guardrail"
    (breach,) = after["guardrails_breached"]
    assert (breach["metric"], breach["arm"], breach["limit"]) == ("error", "b", 0.01)
    assert breach["one_sided_bound"] > 0.01 and breach["estimate"] == pytest.approx(0.18, abs=0.02)
    assert sum(after["sample_size"]["observed"]) == 800
    assert [c["arm"] for c in after["comparisons"]] == ["b"] and "p_value_adjusted" in after["comparisons"][0]
    assert decide(client, unit="someone-new")["arm"] == "a"  # paused: every unit gets the control

    for _ in range(3):  # once: later ticks and looks find it paused
        clock.advance(HOUR)
        tick(client, clock)
    assert len(automatic(client)) == 1


def test_control_puts_all_weight_on_the_control_and_stops_the_policy_once(client, clock):
    started(client, criteria=GUARDED, reweight_every_s=HOUR, automation={"on_guardrail_breach": "control"})
    traffic(client, range(800), same, b_errs)
    clock.advance(HOUR)
    tick(client, clock)
    body = experiment(client)
    assert body["status"] == "active" and body["weights"] == {"a": 1.0, "b": 0.0}
    (entry,) = automatic(client)
    assert entry["action"] == "auto_control" and entry["after"]["weights"] == [1.0, 0.0]
    assert entry["after"]["guardrails_breached"][0]["arm"] == "b"
    history = client.get("/v1/experiments/exp/weights").json()["history"]
    assert history[-1]["reason"] == "shift" and history[-1]["version"] == entry["after"]["weights_version"]
    assert all(decide(client, unit=f"new{i}")["arm"] == "a" for i in range(20))

    for _ in range(3):  # the policy does not move traffic back, and the action is not repeated
        clock.advance(HOUR)
        tick(client, clock)
    assert experiment(client)["weights"] == {"a": 1.0, "b": 0.0}
    assert len(automatic(client)) == 1


def test_a_ship_completes_with_the_winner(client, clock):
    started(client, policy=FIXED, reweight_every_s=HOUR, automation={"on_ship": "complete"})
    traffic(client, range(1_000), b_wins)
    assert client.get("/v1/experiments/exp/report").json()["recommendation"]["action"] == "ship"
    clock.advance(HOUR)
    tick(client, clock)
    body = experiment(client)
    assert (body["status"], body["winner"]) == ("completed", "b")
    (entry,) = automatic(client)
    assert entry["action"] == "auto_complete" and entry["after"]["winner"] == "b"
    assert entry["after"]["recommendation"]["action"] == "ship" and entry["after"]["reason"].startswith("ship b")
    (comparison,) = entry["after"]["comparisons"]
    assert comparison["p_value_adjusted"] < 0.05 and comparison["always_valid_p_adjusted"] < 0.05
    assert [a["n"] for a in entry["after"]["arms"]] == entry["after"]["sample_size"]["observed"]


def test_a_ship_with_a_plan_runs_a_gradual_completion(client, clock):
    plan = [{"share": 0.5, "hold_s": HOUR}, {"share": 1.0}]
    started(client, policy=FIXED, reweight_every_s=HOUR, automation={"on_ship": "complete", "ship_plan": plan})
    traffic(client, range(1_000), b_wins)
    clock.advance(HOUR)
    tick(client, clock)
    body = experiment(client)
    assert body["status"] == "active" and body["weights"] == {"a": 0.5, "b": 0.5}
    completion = client.get("/v1/experiments/exp/completion").json()
    assert (completion["winner"], completion["status"], completion["step"]) == ("b", "running", 0)
    assert [e["action"] for e in automatic(client)] == ["auto_complete", "completion_start"]

    clock.advance(HOUR)
    tick(client, clock)  # the plan's next step; the automation leaves a running completion alone
    assert experiment(client)["weights"] == {"a": 0.0, "b": 1.0}
    tick(client, clock)  # the last step has no hold: the plan completes the experiment
    body = experiment(client)
    assert (body["status"], body["winner"]) == ("completed", "b")
    assert [e["action"] for e in automatic(client)] == ["auto_complete", "completion_start"]


def test_stop_no_winner_completes_with_the_control(client, clock):
    started(client, policy=FIXED, min_sample_size=300, automation={"on_stop_no_winner": "complete"})
    traffic(client, range(1_000), same)
    clock.advance(HOUR)
    tick(client, clock)
    body = experiment(client)
    assert (body["status"], body["winner"]) == ("completed", None)
    (entry,) = automatic(client)
    assert entry["action"] == "auto_complete" and entry["after"]["recommendation"]["action"] == "stop_no_winner"
    assert "minimum sample size reached" in entry["after"]["reason"]


def test_the_end_date_completes_with_the_control_within_a_tick(client, clock):
    # No automation armed and a reweight interval longer than the experiment: the end alone ends it.
    ends = clock.time() + 2 * DAY
    started(client, reweight_every_s=7 * DAY, ends_at=rfc3339(ends))
    clock.advance(2 * DAY - 1)
    tick(client, clock)
    assert experiment(client)["status"] == "active"
    clock.advance(1)
    tick(client, clock)
    body = experiment(client)
    assert (body["status"], body["winner"]) == ("completed", None)
    (entry,) = automatic(client)
    assert entry["action"] == "ended" and entry["after"]["winner"] is None
    assert entry["after"]["reason"].startswith(f"the end date {rfc3339(ends)} has passed")
    assert "recommendation" in entry["after"]


def test_max_duration_ends_a_paused_experiment_too(client, clock):
    started(client, max_duration_s=DAY)
    assert client.post("/v1/experiments/exp/pause").status_code == 200
    clock.advance(DAY)
    tick(client, clock)
    assert experiment(client)["status"] == "completed"
    (entry,) = automatic(client)
    assert (entry["action"], entry["before"]) == ("ended", {"status": "paused"})
    assert entry["after"]["reason"].startswith("max_duration_s 86400 since the first start")


def test_at_the_end_an_armed_ship_completes_with_the_winner(client, clock):
    started(client, policy=FIXED, reweight_every_s=7 * DAY, max_duration_s=HOUR, automation={"on_ship": "complete"})
    traffic(client, range(1_000), b_wins)
    clock.advance(HOUR)
    tick(client, clock)
    assert (experiment(client)["winner"], [e["action"] for e in automatic(client)]) == ("b", ["ended"])


def test_at_the_end_a_running_gradual_completion_completes_with_its_winner(client, clock):
    plan = [{"share": 0.5, "hold_s": DAY}, {"share": 1.0}]
    automation = {"on_ship": "complete", "ship_plan": plan}
    started(client, policy=FIXED, reweight_every_s=HOUR, max_duration_s=2 * HOUR, automation=automation)
    traffic(client, range(1_000), b_wins)
    clock.advance(HOUR)
    tick(client, clock)  # the look ships through the plan: a day at half the traffic
    assert client.get("/v1/experiments/exp/completion").json()["status"] == "running"
    clock.advance(HOUR)
    tick(client, clock)  # the end comes first: the plan's winner, not the control
    body = experiment(client)
    assert (body["status"], body["winner"]) == ("completed", "b")
    assert [e["action"] for e in automatic(client)] == [
        "auto_complete",
        "completion_start",
        "ended",
        "completion_cancel",
    ]
    assert client.get("/v1/experiments/exp/completion").json()["status"] == "cancelled"


def test_nothing_happens_without_automation(client, clock):
    # A breached guardrail, reweights, weeks of ticks: only a person ends it (today's behaviour).
    started(client, criteria=GUARDED, reweight_every_s=HOUR)
    traffic(client, range(800), same, b_errs)
    for _ in range(3):
        clock.advance(DAY)
        tick(client, clock)
    assert client.get("/v1/experiments/exp/report").json()["recommendation"]["action"] == "stop_guardrail"
    assert experiment(client)["status"] == "active" and automatic(client) == []


def test_two_replicas_act_once(client, clock):
    started(client, criteria=GUARDED, reweight_every_s=HOUR, automation={"on_guardrail_breach": "pause"})
    traffic(client, range(800), same, b_errs)
    clock.advance(HOUR)
    s = runtime_of(client.app).services
    other = AutomationService(s.storage, s.cache, s.reports)
    read = call(client, s.storage.experiment, "exp")  # both replicas read the experiment before either writes
    assert call(client, s.automation.look, read, clock.time()) is True
    assert call(client, other.look, read, clock.time()) is False  # its compare-and-set finds it moved on
    assert call(client, other.automate_due, clock.time()) == 0  # and a fresh read finds it paused
    assert [e["action"] for e in automatic(client)] == ["auto_pause"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"ends_at": "2020-01-01T00:00:00Z"}, "ends_at", id="ends-at-in-the-past"),
        pytest.param(
            {"automation": {"ship_plan": [{"share": 1.0}]}}, "automation.ship_plan", id="ship-plan-without-on-ship"
        ),
        pytest.param(
            {"automation": {"on_ship": "complete", "ship_plan": [{"share": 0.5, "hold_s": 60}, {"share": 0.9}]}},
            "automation.ship_plan[1].share",
            id="ship-plan-short-of-share-1",
        ),
        pytest.param(
            {"automation": {"on_ship": "complete", "ship_plan": [{"share": 0.5}, {"share": 1.0}]}},
            "automation.ship_plan[0].hold_s",
            id="ship-plan-step-without-hold",
        ),
        pytest.param(
            {"automation": {"on_ship": "complete", "ship_plan": [{"share": 0.8, "hold_s": 60}, {"share": 0.5}]}},
            "automation.ship_plan[1].share",
            id="ship-plan-going-back",
        ),
    ],
)
def test_bad_automation_is_refused_on_create_and_patch(client, changes, field):
    created = client.post("/v1/experiments", json=experiment_body("bad", **changes))
    assert created.status_code == 422 and created.json()["field"] == field, created.text
    assert client.post("/v1/experiments", json=experiment_body()).status_code == 201
    patched = client.patch("/v1/experiments/exp", json=changes)
    assert patched.status_code == 422 and patched.json()["field"] == field, patched.text


def test_a_max_duration_already_over_is_refused_but_other_changes_are_not(client, clock):
    started(client, ends_at=rfc3339(clock.time() + DAY))
    clock.advance(2 * HOUR)
    response = client.patch("/v1/experiments/exp", json={"max_duration_s": HOUR})
    assert response.status_code == 422 and response.json()["field"] == "max_duration_s", response.text
    assert client.patch("/v1/experiments/exp", json={"max_duration_s": 3 * HOUR}).status_code == 200
    assert client.patch("/v1/experiments/exp", json={"name": "renamed"}).status_code == 200
