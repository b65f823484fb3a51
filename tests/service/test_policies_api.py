"""Policies through the service: Thompson learns, epsilon-greedy explores eps/k, a fixed split stays put."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

from bandit_service.app import runtime_of
from bandit_service.storage.memory import MemoryStorage
from tests.service.api import ADMIN_KEY, TEST_SETTINGS, call, decide, experiment_body, reward, started
from tests.service.conftest import app_factory


def test_thompson_moves_at_least_80_percent_to_the_better_arm_over_20000_units(clock):
    """20,000 simulated units at true rates 0.05 (a) and 0.15 (b), rewards in batches, hourly reweights.

    About learning, not storage: on the in-memory twin (a SQLite file took 50 s, PostgreSQL twice that).
    """
    app = app_factory(TEST_SETTINGS, clock)(storage=MemoryStorage())
    rng = np.random.default_rng(20261122)
    rates = {"a": 0.05, "b": 0.15}
    rounds, per_round = 10, 2_000

    async def drive() -> tuple[dict[str, float], list[dict]]:
        async with app.lifespan():
            transport = httpx.ASGITransport(app=app)
            headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
            async with httpx.AsyncClient(transport=transport, base_url="http://bandit.test", headers=headers) as http:
                body = experiment_body(policy={"kind": "thompson"}, reweight_every_s=3600)
                assert (await http.post("/v1/experiments", json=body)).status_code == 201
                assert (await http.post("/v1/experiments/exp/start")).status_code == 200
                reweighter = runtime_of(app).services.reweighter
                limit = asyncio.Semaphore(128)

                async def one(unit: str) -> dict:
                    async with limit:
                        response = await http.post("/v1/decisions", json={"experiment": "exp", "unit": unit})
                    assert response.status_code == 200
                    return response.json()

                for r in range(rounds):
                    units = [f"user-{r * per_round + i}" for i in range(per_round)]
                    decisions = await asyncio.gather(*(one(u) for u in units))
                    items = [
                        {"decision_id": d["decision_id"], "reward": int(rng.random() < rates[d["arm"]])}
                        for d in decisions
                    ]
                    for start in range(0, len(items), 1_000):
                        batch = await http.post("/v1/rewards/batch", json=items[start : start + 1_000])
                        assert batch.json()["failed"] == 0
                    clock.advance(3600)
                    assert await reweighter.reweight_due(clock.time()) == 1
                experiment = (await http.get("/v1/experiments/exp")).json()
                history = (await http.get("/v1/experiments/exp/weights")).json()["history"]
                return experiment, history

    experiment, history = asyncio.run(drive())
    assert experiment["weights"]["b"] >= 0.8
    assert sum(s["exposures"] for s in experiment["stats"].values()) == rounds * per_round
    assert [h["reason"] for h in history] == ["start"] + ["schedule"] * rounds
    assert all(h["seed"] is not None for h in history[1:])


def test_epsilon_greedy_gives_eps_over_k_to_the_worse_arm(client):
    started(client, policy={"kind": "epsilon_greedy", "epsilon": 0.2})
    for i in range(60):
        d = decide(client, unit=f"u{i}")
        assert reward(client, d["decision_id"], 1 if d["arm"] == "b" else 0).status_code == 200
    record = client.post("/v1/experiments/exp/reweight").json()
    assert record["weights"] == pytest.approx({"a": 0.1, "b": 0.9}, abs=1e-12)
    assert record["reason"] == "manual" and record["version"] == 2
    assert record["stats"]["a"]["mean"] == 0.0 and record["stats"]["b"]["mean"] == 1.0
    assert client.get("/v1/experiments/exp").json()["weights"] == record["weights"]


def test_a_fixed_split_keeps_its_weights(client, clock):
    started(client, policy={"kind": "fixed"}, arms=[{"name": "a", "weight": 0.7}, {"name": "b", "weight": 0.3}])
    for i in range(40):
        d = decide(client, unit=f"u{i}")
        reward(client, d["decision_id"], 1 if d["arm"] == "b" else 0)
    clock.advance(10 * 3600)
    assert call(client, runtime_of(client.app).services.reweighter.reweight_due, clock.time()) == 0
    assert client.post("/v1/experiments/exp/reweight").json()["weights"] == {"a": 0.7, "b": 0.3}
    body = client.get("/v1/experiments/exp").json()
    assert body["weights"] == {"a": 0.7, "b": 0.3} and body["next_reweight_at"] is None


def test_manual_weights_ramp_a_fixed_split_and_refuse_adaptive_policies(client):
    started(client, policy={"kind": "fixed"}, arms=[{"name": "a", "weight": 0.9}, {"name": "b", "weight": 0.1}])
    ramp = client.put("/v1/experiments/exp/weights", json={"weights": {"a": 0.5, "b": 0.5}})
    assert ramp.status_code == 200 and ramp.json()["weights"] == {"a": 0.5, "b": 0.5}
    # Keep-probabilities 1/(1 + max(0.1/0.9, 0.5/0.5)) + 1/(1 + max(0.9/0.1, 0.5/0.5)) = 0.5 + 0.1: 40% move,
    # the total-variation distance, i.e. only units that must leave a.
    assert ramp.json()["churn"] == pytest.approx(0.4, abs=1e-12)
    client.post("/v1/experiments", json=experiment_body("ts"))
    client.post("/v1/experiments/ts/start")
    refused = client.put("/v1/experiments/ts/weights", json={"weights": {"a": 0.5, "b": 0.5}})
    assert refused.status_code == 409 and refused.json()["field"] == "policy"


def test_one_reweight_draws_at_most_two_million_values(client):
    """A 50-arm experiment with draws: 1,000,000 took seconds of CPU per reweight: now a 422 at create and patch."""
    arms = [{"name": f"arm{i}"} for i in range(50)]
    refused = client.post(
        "/v1/experiments", json=experiment_body(arms=arms, policy={"kind": "thompson", "draws": 1_000_000})
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == "policy.draws"
    assert "arms x draws must be at most 2,000,000, got 50 x 1,000,000" in refused.json()["detail"]
    exact = client.post(
        "/v1/experiments", json=experiment_body(arms=arms, policy={"kind": "thompson", "method": "integration"})
    )
    assert exact.status_code == 422 and exact.json()["field"] == "policy.method"

    started(client, arms=arms, policy={"kind": "thompson", "draws": 40_000})  # at the bound: 50 x 40,000
    assert client.post("/v1/experiments/exp/reweight").status_code == 200

    small = experiment_body("small", policy={"kind": "thompson", "draws": 1_000_000})  # 2 arms x 1,000,000 fits
    assert client.post("/v1/experiments", json=small).status_code == 201
    grown = client.patch("/v1/experiments/small", json={"arms": arms, "control": "arm0"})
    assert grown.status_code == 422 and grown.json()["field"] == "policy.draws"
