"""Three replicas each ticking the scheduler: one scheduled reweight per interval, cluster-wide.

Every replica looks for due reweights every BANDIT_SCHEDULER_TICK_S; the compare-and-set on the
experiment must let exactly one of them land per `reweight_every_s`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from datetime import datetime

import httpx
import numpy as np

from tests.multiprocess.replicas import AUTH, StartReplicas
from tests.multiprocess.traffic import ReplicaClients, create_experiment, experiment_body, transition

KEY = "scheduled"
ARMS = ("a", "b")
TICK_S = 0.2
EVERY_S = 1  # the shortest reweight_every_s the API accepts (an integer >= 1)
WATCH_S = 6.0  # from the start to reading the history
ROUND_S = 0.1
PER_ROUND = 10


def timestamp(iso: str) -> float:
    """Unix seconds of an ISO 8601 time from the API."""
    return datetime.fromisoformat(iso).timestamp()


async def traffic(urls: Sequence[str], rng: np.random.Generator, until: float) -> int:
    """Decisions and rewards at random replicas in small rounds until `until` (monotonic); returns the rounds."""
    rounds = 0
    async with ReplicaClients(urls, connections=PER_ROUND) as http:
        while time.monotonic() < until:
            rounds += 1
            units = [f"unit-{rounds}-{i}" for i in range(PER_ROUND)]
            where = rng.integers(0, len(urls), (PER_ROUND, 2))
            answers = await asyncio.gather(
                *(http.decide(int(r), KEY, u) for u, r in zip(units, where[:, 0], strict=True))
            )
            values = rng.random(PER_ROUND) < np.where([a.ok and a.body["arm"] == "b" for a in answers], 0.3, 0.1)
            await asyncio.gather(
                *(
                    http.reward(int(r), a.body["decision_id"], float(v))
                    for a, r, v in zip(answers, where[:, 1], values, strict=True)
                    if a.ok and a.body["in_experiment"]
                )
            )
            await asyncio.sleep(ROUND_S)
    return rounds


def test_scheduled_reweight_runs_once_per_interval(start_replicas: StartReplicas, rng: np.random.Generator):
    replicas = start_replicas(3, {"BANDIT_SCHEDULER_TICK_S": str(TICK_S)})
    create_experiment(replicas[0].url, experiment_body(KEY, ARMS, reweight_every_s=EVERY_S))
    started = transition(replicas[0].url, KEY, "start")
    started_at = timestamp(started["started_at"])

    asyncio.run(traffic(replicas.urls, rng, until=time.monotonic() + WATCH_S))
    history = httpx.get(f"{replicas[1].url}/v1/experiments/{KEY}/weights", timeout=30, headers=AUTH).json()["history"]
    elapsed = time.time() - started_at

    assert [h["reason"] for h in history][:1] == ["start"], history
    assert {h["reason"] for h in history[1:]} <= {"schedule"}, [h["reason"] for h in history]
    times = [timestamp(h["created_at"]) for h in history]
    gaps = np.diff(times)
    # Each reweight sets the next one EVERY_S after itself, and all replicas share this machine's clock.
    too_close = [
        (history[i]["version"], history[i + 1]["version"], round(g, 4))
        for i, g in enumerate(gaps)
        if g < EVERY_S - 1e-3
    ]
    scheduled = len(history) - 1
    assert not too_close, (
        f"scheduled reweights less than {EVERY_S} s apart (version, next version, seconds): {too_close}; "
        f"{scheduled} scheduled reweights in {elapsed:.2f} s\n{replicas.logs()}"
    )
    # A due reweight waits for the next tick of the first replica to tick (at most TICK_S) plus the
    # reweight itself; the last interval may be in progress when the history is read.
    fewest = math.floor(elapsed / (EVERY_S + TICK_S)) - 1
    assert fewest <= scheduled <= elapsed / EVERY_S, (
        f"{scheduled} scheduled reweights in {elapsed:.2f} s (expected {fewest} to {elapsed / EVERY_S:.1f}); "
        f"gaps {np.round(gaps, 3).tolist()}\n{replicas.logs()}"
    )
