"""Manual weights with `rebalance`: who moves, how many (oracle: the total-variation distance), what is
recorded; and what a cancelled ramp or completion leaves the experiment at, in its answer and audit entry.

The least share of stored units any reassignment can move to reach weights w from a stored split
p is the total-variation distance TV = sum_i max(0, p_i - w_i); the plan moves each unit of a
surplus arm independently, so the moved count has mean n TV and a variance of at most
n TV (1 - TV), and the tolerances below are 4 such standard errors at the expected TV.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter

import httpx
import numpy as np
import pytest

from bandit_service.app import create_app, runtime_of
from bandit_service.clock import FakeClock
from bandit_service.core.assignment import choose_arm, churn_share
from bandit_service.core.model import Assignment
from bandit_service.core.rebalance import plan_rebalance
from bandit_service.ids import sequential_ids
from bandit_service.services import rebalance as rebalance_module
from bandit_service.services.rebalance import rebalance
from bandit_service.storage.memory import MemoryStorage
from tests.service.api import TEST_SETTINGS, api_client, call, decide_all, read_db, started

ARMS3 = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
ARMS = {"a": 0, "b": 1, "c": 2}


@pytest.fixture
def twin(clock):
    """A client of an app on an in-memory storage the test can also write to directly."""
    storage = MemoryStorage()
    app = create_app(TEST_SETTINGS, storage=storage, clock=clock, ids=sequential_ids("rebalance"))
    with api_client(app) as client:
        yield client, storage


def insert_assignments(tx, items):
    """Write job: store first assignments, as the decision job stores them."""
    return [tx.insert_assignments(experiment_id, rows, 0.0) for experiment_id, rows in items]


def read_assignments(tx, items):
    """Write job: the stored assignments of these units."""
    return [tx.assignments(experiment_id, units) for experiment_id, units in items]


def decisions_for(client, units, key="exp"):
    answers = decide_all(client, [{"experiment": key, "unit": u} for u in units])
    return dict(zip(units, answers, strict=True))


def arms_for(client, units, key="exp"):
    return {u: d["arm"] for u, d in decisions_for(client, units, key).items()}


def tv(stored: Counter[str], weights: dict[str, float]) -> float:
    n = sum(stored.values())
    return sum(max(0.0, stored[a] / n - w) for a, w in weights.items())


def four_se(share: float, n: int) -> float:
    return 4 * math.sqrt(share * (1 - share) / n)


def history(client, key="exp"):
    return client.get(f"/v1/experiments/{key}/weights").json()["history"]


def test_the_plan_moves_out_exactly_the_surplus_and_sends_it_only_to_arms_in_deficit():
    rng = np.random.default_rng(12)
    for _ in range(200):
        k = int(rng.integers(2, 7))
        counts = rng.integers(0, 1_000, size=k)
        counts[rng.integers(k)] += 1  # at least one stored unit
        weights = rng.dirichlet(np.ones(k) * 0.7)
        plan = plan_rebalance("salt", 2, counts.tolist(), weights.tolist())
        p = counts / counts.sum()
        leave, gain = np.array(plan.leave), np.array(plan.gain)
        assert plan.minimum == pytest.approx(0.5 * np.abs(p - weights).sum(), abs=1e-12)  # the TV distance
        assert (counts * leave).sum() / counts.sum() == pytest.approx(plan.minimum, abs=1e-12)
        assert gain.sum() == pytest.approx(plan.minimum, abs=1e-12)
        assert np.all((leave >= 0) & (leave <= 1)) and not np.any((leave > 0) & (gain > 0))
    unchanged = plan_rebalance("salt", 2, [300, 700], [0.3, 0.7])
    assert unchanged.minimum == 0.0 and all(unchanged.destination(f"u{i}", i % 2) is None for i in range(100))


def test_without_rebalance_every_unit_keeps_its_arm_and_nothing_is_recorded_as_moved(client):
    started(client, policy={"kind": "fixed"})
    units = [f"u{i}" for i in range(300)]
    before = arms_for(client, units)
    response = client.put("/v1/experiments/exp/weights", json={"weights": {"a": 0.9, "b": 0.1}})
    assert response.status_code == 200, response.text
    assert response.json()["moved"] is None
    assert arms_for(client, units) == before
    assert [r["moved"] for r in history(client)] == [None, None]
    entry = client.get("/v1/experiments/exp/events").json()["events"][-1]
    assert entry["action"] == "set_weights" and "rebalance" not in entry["after"]


def test_rebalance_moves_about_the_least_share_and_each_moved_unit_gets_its_new_arm(twin):
    client, storage = twin
    started(client, policy={"kind": "fixed"}, arms=ARMS3)
    units = [f"u{i}" for i in range(600)]
    first = decisions_for(client, units)
    before = {u: d["arm"] for u, d in first.items()}
    new = {"a": 0.5, "b": 0.35, "c": 0.15}
    least = tv(Counter(before.values()), new)
    response = client.put("/v1/experiments/exp/weights", json={"weights": new, "rebalance": True})
    assert response.status_code == 200, response.text
    # Before its next decision, a moved unit's reward by experiment and unit reaches its open trial, on its old arm.
    experiment_id = call(client, storage.experiment, "exp").id
    stored_now = call(client, storage.write, read_assignments, (experiment_id, units))
    mover = next(u for u in units if stored_now[u].arm != ARMS[before[u]])
    rewarded = client.post("/v1/rewards", json={"experiment": "exp", "unit": mover, "reward": 1})
    assert rewarded.status_code == 200, rewarded.text
    assert (rewarded.json()["decision_id"], rewarded.json()["arm"]) == (first[mover]["decision_id"], before[mover])
    again = decisions_for(client, units)
    after = {u: d["arm"] for u, d in again.items()}
    moved = [u for u in units if after[u] != before[u]]
    share = len(moved) / len(units)
    assert abs(share - least) < four_se((0.5 - 1 / 3) + (0.35 - 1 / 3), len(units)), (share, least)
    # The history and the answer record exactly what moved; the hash's churn stays what it was.
    assert response.json()["moved"] == pytest.approx(share, abs=1e-12)
    assert history(client)[-1]["moved"] == pytest.approx(share, abs=1e-12)
    assert response.json()["churn"] == pytest.approx(churn_share((1 / 3, 1 / 3, 1 / 3), (0.5, 0.35, 0.15)))
    # Only arms with a surplus lose units, only arms with a deficit gain them.
    stored = Counter(before.values())
    surplus = {a for a, w in new.items() if stored[a] / len(units) > w}
    assert all(before[u] in surplus and after[u] not in surplus for u in moved)
    final = Counter(after.values())
    for arm, w in new.items():  # the stored split now follows the new weights
        assert abs(final[arm] / len(units) - w) < four_se(w, len(units)), (arm, final)
    # A moved unit's open trial stays on its old arm; its next decision opens a new trial on the new
    # arm, answered with the new weight as its propensity. Units that stayed join their open trial.
    assert all(again[u]["decision_id"] != first[u]["decision_id"] for u in moved)
    assert all(again[u]["propensity"] == new[after[u]] for u in moved)
    stayed = [u for u in units if after[u] == before[u]]
    assert all(again[u]["decision_id"] == first[u]["decision_id"] for u in stayed)


def test_the_audit_log_says_a_rebalance_was_asked_and_what_it_moved(client):
    started(client, policy={"kind": "fixed"})
    units = [f"u{i}" for i in range(200)]
    arms_for(client, units)
    client.put("/v1/experiments/exp/weights", json={"weights": {"a": 0.2, "b": 0.8}, "rebalance": True})
    events = client.get("/v1/experiments/exp/events").json()["events"]
    asked, done = events[-2], events[-1]
    assert asked["action"] == "set_weights"
    assert asked["after"] == {"weights": [0.2, 0.8], "weights_version": 2, "rebalance": True}
    assert done["action"] == "rebalance" and done["before"] is None
    moved = history(client)[-1]["moved"]
    assert done["after"]["weights_version"] == 2 and done["after"]["status"] == "done"
    assert done["after"]["units"] == done["after"]["seen"] == len(units)
    assert done["after"]["moved"] == pytest.approx(moved) and done["after"]["moved_units"] == round(moved * len(units))
    assert 0.0 < done["after"]["minimum"] < 1.0


def test_units_kept_through_an_earlier_change_move_only_as_far_as_the_split_needs(twin):
    # 50/50, then 90/10 for as many new units: the stored split is about 70/30, so back to 70/30
    # needs almost no move, where re-hashing every unit under 70/30 would move about 20% of them.
    client, storage = twin
    names = ("a", "b")
    started(client, policy={"kind": "fixed"})
    experiment = call(client, storage.experiment, "exp")
    first = {f"early{i}": choose_arm(experiment.salt, f"early{i}", names, (0.5, 0.5)) for i in range(5_000)}
    rows = [(u, Assignment(arm=a, propensity=0.5, weights_version=1)) for u, a in first.items()]
    call(client, storage.write, insert_assignments, (experiment.id, rows))
    client.put("/v1/experiments/exp/weights", json={"weights": {"a": 0.9, "b": 0.1}})
    second = {f"late{i}": choose_arm(experiment.salt, f"late{i}", names, (0.9, 0.1)) for i in range(5_000)}
    rows = [(u, Assignment(arm=a, propensity=(0.9, 0.1)[a], weights_version=2)) for u, a in second.items()]
    call(client, storage.write, insert_assignments, (experiment.id, rows))
    before = first | second
    new = {"a": 0.7, "b": 0.3}
    least = tv(Counter(names[a] for a in before.values()), new)
    assert least < 0.03  # |p_a - 0.7| with p_a a mean of 10,000 draws of mean 0.7: 6 standard errors
    client.put("/v1/experiments/exp/weights", json={"weights": new, "rebalance": True})
    after = call(client, storage.write, read_assignments, (experiment.id, list(before)))
    share = np.mean([after[u].arm != a for u, a in before.items()])
    assert abs(share - least) < four_se(0.03, len(before)), (share, least)
    rehashed = np.mean([choose_arm(experiment.salt, u, names, (0.7, 0.3)) != a for u, a in before.items()])
    assert rehashed > 0.15, rehashed  # 0.2 expected: what re-running the hash would have moved
    assert history(client)[-1]["moved"] == pytest.approx(share)


def test_20_000_stored_units_move_the_total_variation_share_not_the_rendezvous_churn(twin):
    # 25/25/25/25 -> 40/30/20/10: the least share is 0.2; re-hashing every unit would move 0.237.
    # The units' first assignments are written straight to the storage, as the decision job writes them.
    client, storage = twin
    names, old, new = ("a", "b", "c", "d"), (0.25, 0.25, 0.25, 0.25), (0.4, 0.3, 0.2, 0.1)
    units = [f"user-{i}" for i in range(20_000)]
    started(client, policy={"kind": "fixed"}, arms=[{"name": n} for n in names])
    experiment = call(client, storage.experiment, "exp")
    before = {
        u: Assignment(arm=choose_arm(experiment.salt, u, names, old), propensity=0.25, weights_version=1) for u in units
    }
    call(client, storage.write, insert_assignments, (experiment.id, list(before.items())))
    least = tv(Counter(names[a.arm] for a in before.values()), dict(zip(names, new, strict=True)))
    body = {"weights": dict(zip(names, new, strict=True)), "rebalance": True}
    response = client.put("/v1/experiments/exp/weights", json=body)
    assert response.status_code == 200, response.text
    after = call(client, storage.write, read_assignments, (experiment.id, units))
    moved = [u for u in units if after[u].arm != before[u].arm]
    share = len(moved) / len(units)
    assert abs(share - least) < four_se(0.2, len(units)), (share, least)
    assert response.json()["moved"] == pytest.approx(share, abs=1e-12)
    rendezvous = churn_share(old, new)
    assert rendezvous - share > 8 * math.sqrt(0.2 * 0.8 / len(units)), (rendezvous, share)
    assert all(after[u] == Assignment(arm=after[u].arm, propensity=new[after[u].arm], weights_version=2) for u in moved)
    assert all(after[u] == before[u] for u in units if after[u].arm == before[u].arm)  # the rest untouched
    final = np.bincount([a.arm for a in after.values()], minlength=4) / len(units)
    assert np.all(np.abs(final - new) < [four_se(w, len(units)) for w in new]), final


def test_a_newer_weights_change_stops_a_rebalance_at_its_next_page(twin):
    client, storage = twin
    started(client, policy={"kind": "fixed"})
    arms_for(client, [f"u{i}" for i in range(50)])
    client.put("/v1/experiments/exp/weights", json={"weights": {"a": 0.8, "b": 0.2}})
    at_v2 = call(client, storage.experiment, "exp")
    client.put("/v1/experiments/exp/weights", json={"weights": {"a": 0.1, "b": 0.9}})  # v3 while v2 would run
    result = call(client, rebalance, storage, FakeClock(), at_v2, "ops", 10)
    assert (result.status, result.seen, result.moved) == ("superseded", 0, 0)
    entry = client.get("/v1/experiments/exp/events").json()["events"][-1]
    assert entry["action"] == "rebalance" and entry["actor"] == "ops"
    assert entry["after"]["status"] == "superseded" and entry["after"]["weights_version"] == 2
    assert [r["moved"] for r in history(client)] == [None, None, None]


def test_rebalance_is_refused_without_a_sticky_store(client):
    started(client, policy={"kind": "fixed"}, sticky=False)
    response = client.put("/v1/experiments/exp/weights", json={"weights": {"a": 0.8, "b": 0.2}, "rebalance": True})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["field"] == "rebalance" and "not sticky" in problem["detail"]
    assert [r["version"] for r in history(client)] == [1]  # nothing changed


@pytest.mark.parametrize("rebalance_value", ["yes", 1, None], ids=["string", "number", "null"])
def test_rebalance_must_be_a_boolean(client, rebalance_value):
    started(client, policy={"kind": "fixed"})
    body = {"weights": {"a": 0.8, "b": 0.2}, "rebalance": rebalance_value}
    response = client.put("/v1/experiments/exp/weights", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "rebalance"


# What a cancelled plan leaves: the answer and the audit entry say it, with the reason.

DAY = 86_400
RAMP4 = {
    "steps": [
        {"exposure": 0.1, "hold_s": DAY},
        {"exposure": 0.25, "hold_s": DAY},
        {"exposure": 0.5, "hold_s": DAY},
        {"exposure": 1.0},
    ]
}


def test_cancelling_a_ramp_says_what_exposure_it_leaves_and_why(client, clock):
    started(client)
    client.put("/v1/experiments/exp/ramp", json=RAMP4)
    clock.advance(DAY)
    assert call(client, runtime_of(client.app).services.rollouts.advance_rollouts, clock.time()) == 1
    response = client.delete("/v1/experiments/exp/ramp")
    assert response.status_code == 200, response.text
    answer = response.json()
    said = (
        "ramp cancelled at step 2 of 4; exposure stays at 0.25 (the last step reached); "
        "PUT /v1/experiments/exp/exposure to change it, or PUT /v1/experiments/exp/ramp for a new ramp"
    )
    assert (answer["status"], answer["step"], answer["exposure"], answer["detail"]) == ("cancelled", 1, 0.25, said)
    entry = client.get("/v1/experiments/exp/events").json()["events"][-1]
    assert entry["action"] == "ramp_cancel"
    assert entry["after"] == {
        "status": "cancelled",
        "step": 1,
        "reason": "cancelled by an operator",
        "exposure": 0.25,
        "detail": said,
    }
    assert client.get("/v1/experiments/exp/ramp").json()["detail"] == said
    client.put("/v1/experiments/exp/exposure", json={"exposure": 0.6})
    later = client.get("/v1/experiments/exp/ramp").json()
    assert later["exposure"] == 0.6 and later["detail"].endswith("; it has been set to 0.6 since")


def test_a_running_ramp_says_where_it_stands_and_what_comes_next(client):
    started(client)
    answer = client.put("/v1/experiments/exp/ramp", json=RAMP4).json()
    assert answer["detail"] == (
        "ramp at step 1 of 4: exposure 0.1; it moves to 0.25 once the step's hold is over and every guardrail holds"
    )


def test_cancelling_a_completion_says_what_weights_it_leaves_and_that_reweights_resume(client):
    started(client)  # Thompson sampling: scheduled reweights stop while the completion shifts traffic
    plan = {"winner": "b", "plan": [{"share": 0.75, "hold_s": DAY}, {"share": 1.0}]}
    assert client.post("/v1/experiments/exp/complete", json=plan).status_code == 200
    response = client.delete("/v1/experiments/exp/completion")
    assert response.status_code == 200, response.text
    answer = response.json()
    said = (
        "completion cancelled at step 1 of 2; the weights stay at a 0.25, b 0.75 (the last step reached); "
        "the experiment is not completed: the policy reweights again from its next interval "
        "(POST /v1/experiments/exp/reweight to do it now), or POST /v1/experiments/exp/complete to complete it"
    )
    assert (answer["status"], answer["weights"], answer["detail"]) == ("cancelled", {"a": 0.25, "b": 0.75}, said)
    entry = client.get("/v1/experiments/exp/events").json()["events"][-1]
    assert entry["action"] == "completion_cancel"
    assert entry["after"]["weights"] == [0.25, 0.75] and entry["after"]["detail"] == said


def test_a_rebalance_among_concurrent_decisions_loses_no_first_assignment_and_moves_no_unit_twice(
    client, database_url, monkeypatch
):
    # Small pages, so the pass's transactions interleave with the decisions' (on SQLite and PostgreSQL).
    monkeypatch.setattr(rebalance_module, "PAGE", 20)
    started(client, policy={"kind": "fixed"})
    old = [f"old{i}" for i in range(200)]
    first = arms_for(client, old)
    fresh = [f"new{i}" for i in range(200)]

    async def together() -> tuple[httpx.Response, list[httpx.Response]]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=client.headers) as http:
            body = {"weights": {"a": 0.9, "b": 0.1}, "rebalance": True}
            put = asyncio.create_task(http.put("/v1/experiments/exp/weights", json=body))
            bodies = [{"experiment": "exp", "unit": u} for pair in zip(fresh, old, strict=True) for u in pair]
            decided = await asyncio.gather(*(http.post("/v1/decisions", json=b) for b in bodies))
            return await put, list(decided)

    put, decided = client.blocking_portal.call(together)
    assert put.status_code == 200, put.text
    assert all(r.status_code == 200 for r in decided)
    first |= {u: a["arm"] for u, a in zip(fresh, (r.json() for r in decided[0::2]), strict=True)}
    rows = read_db(database_url, "SELECT unit, arm, propensity, weights_version FROM assignments")
    stored = {unit: (("a", "b")[arm], propensity, version) for unit, arm, propensity, version in rows}
    assert set(stored) == set(old) | set(fresh)  # every first assignment is kept
    moved = {u for u, (arm, _, _) in stored.items() if arm != first[u]}
    done = client.get("/v1/experiments/exp/events").json()["events"][-1]
    assert done["action"] == "rebalance" and done["after"]["status"] == "done"
    assert done["after"]["moved_units"] == len(moved) > 0  # a unit moved twice would be counted twice
    assert all(stored[u][1:] == ({"a": 0.9, "b": 0.1}[stored[u][0]], 2) for u in moved)
    assert all(first[u] == "b" for u in moved)  # only the arm that lost weight gave units
