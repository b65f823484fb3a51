"""kill -9 of one replica under a mixed load loses no acknowledged write.

A 2xx for a decision or a reward means it is committed. The load retries a request that got no
answer once on another replica, as a client would; requests that errored are not acknowledged and
do not count. Afterwards every acknowledged decision and reward is stored exactly once, and the
per-arm counters equal a recount from the rows.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import httpx
import msgspec
import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine

from tests.multiprocess import rows
from tests.multiprocess.replicas import Replicas, StartReplicas
from tests.multiprocess.traffic import Answer, ReplicaClients, create_experiment, experiment_body, summary, transition

KEY = "crash"
ARMS = ("a", "b", "c")
RATES = np.array([0.10, 0.15, 0.20])
UNITS = 1_500
UNITS_IN_FLIGHT = 200
REWARD_SHARE = 0.8
VICTIM = 1
KILL_AFTER = 800  # answers (of about 2,700) before the victim is killed: mid-load, with requests in flight


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """Per unit: deciding replica, rewarding replica, retry offsets, whether rewarded, the reward draw."""

    decider: NDArray[np.int64]
    rewarder: NDArray[np.int64]
    retry: NDArray[np.int64]  # (UNITS, 2): a retry goes to (replica + offset) % replicas, offset 1..replicas-1
    rewarded: NDArray[np.bool_]
    draws: NDArray[np.float64]


def plan_load(rng: np.random.Generator, replicas: int) -> Plan:
    """The seeded plan of the whole load."""
    return Plan(
        decider=rng.integers(0, replicas, UNITS),
        rewarder=rng.integers(0, replicas, UNITS),
        retry=rng.integers(1, replicas, (UNITS, 2)),
        rewarded=rng.random(UNITS) < REWARD_SHARE,
        draws=rng.random(UNITS),
    )


class Load:
    """The mixed load; kills the victim once KILL_AFTER answers have arrived."""

    def __init__(self, replicas: Replicas, plan: Plan) -> None:
        self.replicas = replicas
        self.plan = plan
        self.answers: list[Answer] = []  # every attempt, retries included
        self.decisions: list[Answer] = []  # the final answer per unit
        self.rewards: list[Answer] = []  # the final answer per reward
        self.killed_after: int | None = None

    def record(self, answer: Answer) -> None:
        self.answers.append(answer)
        if self.killed_after is None and len(self.answers) >= KILL_AFTER:
            self.replicas.kill(VICTIM)
            self.killed_after = len(self.answers)

    async def send(self, replica: int, offset: int, request: Callable[[int], Awaitable[Answer]]) -> Answer:
        """Send to one replica and, if no answer came, once more (the same body) to another."""
        answer = await request(replica)
        self.record(answer)
        if answer.status is None:
            answer = await request((replica + offset) % len(self.replicas))
            self.record(answer)
        return answer

    async def run(self) -> None:
        gate = asyncio.Semaphore(UNITS_IN_FLIGHT)
        plan = self.plan
        async with ReplicaClients(self.replicas.urls) as http:

            async def one_unit(i: int) -> None:
                async with gate:
                    decided = await self.send(
                        int(plan.decider[i]), int(plan.retry[i, 0]), lambda r: http.decide(r, KEY, f"unit-{i}")
                    )
                    self.decisions.append(decided)
                    if not (decided.ok and decided.body["in_experiment"] and plan.rewarded[i]):
                        return
                    value = float(plan.draws[i] < RATES[ARMS.index(decided.body["arm"])])
                    rewarded = await self.send(
                        int(plan.rewarder[i]),
                        int(plan.retry[i, 1]),
                        lambda r: http.reward(r, decided.body["decision_id"], value),
                    )
                    self.rewards.append(rewarded)

            await asyncio.gather(*(one_unit(i) for i in range(UNITS)))


def test_kill_minus_nine_loses_no_acknowledged_write(
    start_replicas: StartReplicas, engine: Engine, rng: np.random.Generator
):
    replicas = start_replicas(3, {"BANDIT_SCHEDULER_ENABLED": "false"})
    create_experiment(replicas[0].url, experiment_body(KEY, ARMS))
    transition(replicas[0].url, KEY, "start")

    load = Load(replicas, plan_load(rng, len(replicas)))
    asyncio.run(load.run())

    # The kill must have hit a replica that was acknowledging writes, with requests to it left unanswered.
    assert load.killed_after is not None and replicas[VICTIM].process.returncode == -9
    victim = [a for a in load.answers if a.replica == VICTIM]
    assert any(a.ok for a in victim) and any(a.status is None for a in victim), summary(victim)
    for survivor in set(range(len(replicas))) - {VICTIM}:
        assert httpx.get(f"{replicas[survivor].url}/healthz", timeout=30).status_code == 200

    stored = rows.experiment(engine, KEY)
    decisions = rows.decisions(engine, stored.id)
    copies = Counter(d.id for d in decisions)
    arm_of = {d.id: d.arm for d in decisions}
    acked = {
        a.body["decision_id"]: ARMS.index(a.body["arm"]) for a in load.decisions if a.ok and a.body["in_experiment"]
    }
    problems = []
    lost = [i for i in acked if copies[i] == 0]
    doubled = [i for i in acked if copies[i] > 1]
    moved = [i for i in acked if copies[i] and arm_of[i] != acked[i]]
    if lost or doubled or moved:
        problems.append(
            f"of {len(acked)} acknowledged decisions, {len(lost)} are not stored, {len(doubled)} more than once, "
            f"{len(moved)} on another arm; e.g. {(lost + doubled + moved)[:5]}"
        )
    reward_rows = rows.rewards(engine, stored.id)
    reward_copies = Counter(r.decision_id for r in reward_rows)
    stored_rewards = {r.decision_id: r for r in reward_rows}
    acked_rewards = {a.body["decision_id"]: a.body["reward"] for a in load.rewards if a.ok}
    lost_rewards = [i for i in acked_rewards if reward_copies[i] == 0]
    doubled_rewards = [i for i in acked_rewards if reward_copies[i] > 1]
    wrong = [
        i
        for i, value in acked_rewards.items()
        if i in stored_rewards and (stored_rewards[i].value != value or stored_rewards[i].arm != arm_of.get(i))
    ]
    if lost_rewards or doubled_rewards or wrong:
        problems.append(
            f"of {len(acked_rewards)} acknowledged rewards, {len(lost_rewards)} are not stored, "
            f"{len(doubled_rewards)} more than once, {len(wrong)} differ from what was acknowledged; "
            f"e.g. {(lost_rewards + doubled_rewards + wrong)[:5]}"
        )
    problems += rows.counter_mismatches(engine, stored.id, ARMS)
    assert not problems, (
        "\n".join(problems)
        + f"\nkilled replica {VICTIM} after {load.killed_after} answers; "
        + summary(load.answers)
        + "\n"
        + replicas.logs()
    )
