"""Rewards end to end: idempotency, one reward per decision, windows and pending decisions, batches."""

from __future__ import annotations

import pytest

from bandit_service.app import runtime_of
from tests.service.api import call, decide, read_db, reward, snapshot, started


def by_arm(client, n_units, key="exp"):
    out: dict[str, list[str]] = {"a": [], "b": []}
    for i in range(n_units):
        d = decide(client, key, unit=f"u{i}")
        out[d["arm"]].append(d["decision_id"])
    return out


def stats_of(client, key="exp"):
    return client.get(f"/v1/experiments/{key}").json()["stats"]


def test_a_retry_with_the_same_key_and_body_is_counted_once_and_answered_the_same(client, database_url):
    started(client)
    d = decide(client, unit="u1")
    first = reward(client, d["decision_id"], 1, metrics={"latency_ms": 80}, idempotency_key="k1")
    again = reward(client, d["decision_id"], 1, metrics={"latency_ms": 80}, idempotency_key="k1")
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert read_db(database_url, "SELECT count(*) FROM rewards")[0][0] == 1
    arm = stats_of(client)[d["arm"]]
    assert (arm["rewarded"], arm["n"], arm["mean"], arm["metrics"]["latency_ms"]["n"]) == (1, 1, 1.0, 1)


def test_the_same_key_with_a_different_body_is_409(client, database_url):
    started(client)
    d = decide(client, unit="u1")
    reward(client, d["decision_id"], 1, idempotency_key="k1")
    before = snapshot(database_url)
    conflict = reward(client, d["decision_id"], 0, idempotency_key="k1")
    assert conflict.status_code == 409 and conflict.json()["field"] == "idempotency_key"
    assert snapshot(database_url) == before


def test_a_second_different_reward_for_a_decision_is_409_and_a_keyless_retry_is_a_replay(client):
    started(client, trial="decision")  # a unit trial takes several (tests/service/test_trials_api.py)
    d = decide(client, unit="u1")
    first = reward(client, d["decision_id"], 1)
    assert reward(client, d["decision_id"], 1).json() == first.json()  # no key, same body: a retry
    second = reward(client, d["decision_id"], 0, idempotency_key="other")
    assert second.status_code == 409 and second.json()["field"] == "decision_id"
    assert stats_of(client)[d["arm"]]["n"] == 1


def test_unknown_and_outside_decisions(client):
    started(client, exposure=0.0)
    missing = reward(client, "0123456789abcdef0123456789abcdef", 1)
    assert missing.status_code == 404 and missing.json()["field"] == "decision_id"
    outside = decide(client, unit="u1")
    assert not outside["in_experiment"]
    refused = reward(client, outside["decision_id"], 1)
    assert refused.status_code == 422 and refused.json()["field"] == "decision_id"
    assert "outside the experiment" in refused.json()["detail"]


@pytest.mark.parametrize("value", [0.5, 2, -1])
def test_bernoulli_rewards_are_0_or_1(client, database_url, value):
    started(client)
    d = decide(client, unit="u1")
    before = snapshot(database_url)
    response = reward(client, d["decision_id"], value)
    assert response.status_code == 422 and response.json()["field"] == "reward"
    assert snapshot(database_url) == before


def test_continuous_rewards_take_any_finite_number(client):
    started(client, reward="continuous", policy={"kind": "epsilon_greedy"})
    d = decide(client, unit="u1")
    assert reward(client, d["decision_id"], 12.75).status_code == 200
    assert stats_of(client)[d["arm"]]["mean"] == 12.75


def test_pending_decisions_do_not_lower_the_mean_until_their_window_closes(client, clock):
    started(client, policy={"kind": "fixed"}, reward_window_s=3600)
    ids = by_arm(client, 60)
    for decision_id in ids["a"]:
        assert reward(client, decision_id, 1).status_code == 200
    half = len(ids["b"]) // 2
    for decision_id in ids["b"][:half]:
        assert reward(client, decision_id, 1).status_code == 200
    b = stats_of(client)["b"]
    assert (b["mean"], b["n"], b["pending"]) == (1.0, half, len(ids["b"]) - half)  # pending left out

    clock.advance(3599)
    services = runtime_of(client.app).services
    assert call(client, services.rewards.expire_pending, clock.time()) == 0
    clock.advance(1)
    assert call(client, services.rewards.expire_pending, clock.time()) == len(ids["b"]) - half
    b = stats_of(client)["b"]
    assert (b["pending"], b["expired"], b["n"]) == (0, len(ids["b"]) - half, len(ids["b"]))
    assert b["mean"] == pytest.approx(half / len(ids["b"]))  # expired decisions count with default 0
    assert stats_of(client)["a"]["mean"] == 1.0


def test_a_reward_after_the_window_is_422_even_before_the_expiry_job(client, clock, database_url):
    started(client, reward_window_s=60)
    d = decide(client, unit="u1")
    clock.advance(60)
    before = snapshot(database_url)
    late = reward(client, d["decision_id"], 1)
    assert late.status_code == 422 and late.json()["field"] == "decision_id"
    assert "reward window" in late.json()["detail"] and late.json()["type"].endswith("reward-window-closed")
    assert snapshot(database_url) == before


def test_expired_decisions_count_with_the_default_reward(client, clock):
    started(client, reward="continuous", policy={"kind": "fixed"}, default_reward=-2.5, reward_window_s=10)
    d = decide(client, unit="u1")
    clock.advance(10)
    call(client, runtime_of(client.app).services.rewards.expire_pending, clock.time())
    arm = stats_of(client)[d["arm"]]
    assert (arm["expired"], arm["n"], arm["mean"]) == (1, 1, -2.5)


def test_an_acknowledged_reward_is_in_the_database(client, database_url):
    started(client)
    d = decide(client, unit="u1")
    assert reward(client, d["decision_id"], 1, metrics={"cost": 0.25}).status_code == 200
    arm = ["a", "b"].index(d["arm"])
    assert read_db(database_url, "SELECT decision_id, value, CAST(metrics AS TEXT) FROM rewards") == [
        (d["decision_id"], 1.0, '{"cost":0.25}')
    ]
    assert read_db(database_url, "SELECT status FROM decisions") == [("rewarded",)]
    assert read_db(
        database_url, "SELECT rewarded, n, total, total_sq FROM arm_counters WHERE arm = :arm", {"arm": arm}
    ) == [(1, 1.0, 1.0, 1.0)]
    assert read_db(database_url, "SELECT weights_version, arm, rewarded, n, total FROM period_counters") == [
        (1, arm, 1, 1.0, 1.0)
    ]
    assert read_db(database_url, "SELECT metric, n, total FROM arm_metrics") == [("cost", 1.0, 0.25)]


def test_a_batch_answers_each_item_and_counts_retries_once(client, database_url):
    started(client)
    d1, d2 = decide(client, unit="u1"), decide(client, unit="u2")
    items = [
        {"decision_id": d1["decision_id"], "reward": 1, "idempotency_key": "k1"},
        {"decision_id": d1["decision_id"], "reward": 1, "idempotency_key": "k1"},  # a retry in the same batch
        {"decision_id": d2["decision_id"], "reward": 0.5},  # not 0/1
        {"decision_id": "ffffffffffffffffffffffffffffffff", "reward": 1},  # unknown
        {"decision_id": d2["decision_id"], "reward": 0, "metrics": {"latency_ms": 31}},
    ]
    response = client.post("/v1/rewards/batch", json=items)
    assert response.status_code == 200
    body = response.json()
    assert [r["status"] for r in body["results"]] == [200, 200, 422, 404, 200]
    assert (body["recorded"], body["failed"]) == (3, 2)
    assert body["results"][2]["problem"]["field"] == "[2].reward"
    assert body["results"][3]["problem"]["field"] == "[3].decision_id"
    assert body["results"][0]["reward"] == body["results"][1]["reward"]
    assert read_db(database_url, "SELECT count(*) FROM rewards")[0][0] == 2
    again = client.post("/v1/rewards/batch", json=items[:1]).json()
    assert again["results"][0]["reward"] == body["results"][0]["reward"]
    assert read_db(database_url, "SELECT sum(n) FROM arm_counters")[0][0] == 2


def test_a_reward_for_a_decision_of_a_completed_experiment_is_409_and_not_counted(client):
    # Before: the reward was accepted and counted after completion, moving a finished report.
    started(client)
    done, paused = decide(client, unit="u1"), decide(client, unit="u2")
    assert reward(client, done["decision_id"], 1).status_code == 200
    client.post("/v1/experiments/exp/pause")
    # Paused: a decision made while active still takes its reward.
    assert reward(client, paused["decision_id"], 0).status_code == 200
    late = decide(client, unit="u3")
    assert late["in_experiment"] is False
    client.post("/v1/experiments/exp/start")
    pending = decide(client, unit="u4")
    assert pending["in_experiment"] is True
    client.post("/v1/experiments/exp/complete", json={"winner": "a"})
    before = stats_of(client)
    refused = reward(client, pending["decision_id"], 1)
    assert refused.status_code == 409
    assert refused.json()["field"] == "decision_id" and "completed" in refused.json()["detail"]
    assert stats_of(client) == before
    # An exact retry of a reward stored before completion is still answered as the first time.
    assert reward(client, done["decision_id"], 1).status_code == 200
