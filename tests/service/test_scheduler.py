"""Scheduled reweights: due times with a fake clock, one reweight per interval across replicas, real APScheduler."""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from bandit_service.app import runtime_of
from bandit_service.clock import FakeClock
from bandit_service.services.scheduler import Scheduler
from policies import StatsArray, ThompsonSampling
from tests.service.api import api_client, call, decide, reward, started


def history(client, key="exp"):
    return client.get(f"/v1/experiments/{key}/weights").json()["history"]


def test_reweight_due_reweights_when_the_interval_has_elapsed(client, clock):
    started(client, reweight_every_s=600)
    started(client, "paused", reweight_every_s=600)
    client.post("/v1/experiments/paused/pause")
    reweighter = runtime_of(client.app).services.reweighter
    clock.advance(599)
    assert call(client, reweighter.reweight_due, clock.time()) == 0
    clock.advance(1)
    assert call(client, reweighter.reweight_due, clock.time()) == 1
    assert call(client, reweighter.reweight_due, clock.time()) == 0  # the next one is 600 s away
    assert [h["reason"] for h in history(client)] == ["start", "schedule"]
    assert [h["reason"] for h in history(client, "paused")] == ["start"]
    clock.advance(600)
    assert call(client, reweighter.reweight_due, clock.time()) == 1
    assert [h["version"] for h in history(client)] == [1, 2, 3]


def test_the_reweight_seed_is_stored_and_replays_the_weights(client, clock):
    started(client, reweight_every_s=60)
    for i in range(30):
        d = decide(client, unit=f"u{i}")
        reward(client, d["decision_id"], int(d["arm"] == "b" or i % 3 == 0))
    clock.advance(60)
    call(client, runtime_of(client.app).services.reweighter.reweight_due, clock.time())
    record = history(client)[-1]
    stats = StatsArray(*(np.array([record["stats"][a][f] for a in ("a", "b")]) for f in ("n", "total", "total_sq")))
    replay = ThompsonSampling(reward="bernoulli").allocate(stats, np.random.default_rng(record["seed"]))
    assert [record["weights"]["a"], record["weights"]["b"]] == replay.tolist()


def test_two_replicas_land_one_reweight_per_interval(make_app, clock):
    with api_client(make_app()) as one, api_client(make_app()) as two:
        started(one, reweight_every_s=60)
        clock.advance(60)
        # Both replicas read the same revision before either writes: only one compare-and-set succeeds.
        snapshot = call(one, runtime_of(one.app).services.storage.experiment, "exp")
        won = call(one, runtime_of(one.app).services.reweighter.reweight, snapshot, "schedule", clock.time())
        lost = call(two, runtime_of(two.app).services.reweighter.reweight, snapshot, "schedule", clock.time())
        assert won is not None and lost is None
        # And the due list, read after the winner wrote, no longer holds the experiment.
        assert call(two, runtime_of(two.app).services.reweighter.reweight_due, clock.time()) == 0
        assert [h["version"] for h in history(one)] == [1, 2]


def test_the_real_scheduler_grows_the_weights_history(make_app, clock):
    app = make_app(scheduler_enabled=True, scheduler_tick_s=0.05)
    with api_client(app) as client:
        started(client, reweight_every_s=60)
        for target in (2, 3):
            clock.advance(60)
            deadline = time.monotonic() + 20.0  # a generous bound, not a timing assertion
            while len(history(client)) < target and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(history(client)) == target
        assert [h["reason"] for h in history(client)] == ["start", "schedule", "schedule"]


def test_idle_ticks_log_nothing_at_info(client, caplog):
    # Before: APScheduler logged "Running job ..." and "... executed successfully" at INFO on
    # every tick, two lines every 5 s per worker with nothing to do.
    services = runtime_of(client.app).services
    assert services.scheduler is None  # the test app ticks by hand; start a real one here
    scheduler = Scheduler(services.reweighter, services.rewards, FakeClock(), 0.02, services.rollouts)
    with caplog.at_level(logging.INFO):

        async def run() -> None:
            scheduler.start()
            await asyncio.sleep(0.3)  # about 15 ticks, none with work
            await scheduler.stop()

        call(client, run)
    assert [r for r in caplog.records if r.levelno >= logging.INFO] == []
