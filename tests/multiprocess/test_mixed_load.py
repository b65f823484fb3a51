"""Three replicas, 1,000 units each decided twice at once on two different replicas, rewards mixed in.

The issue's PostgreSQL findings this catches: counter upserts deadlocking each other (answered
503), and the per-arm `units` counter overcounting when two replicas store the same first arm for
a unit at the same time (each counts the unit as new).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx
import msgspec
import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Engine

from tests.multiprocess import rows
from tests.multiprocess.replicas import AUTH, StartReplicas
from tests.multiprocess.traffic import Answer, ReplicaClients, create_experiment, experiment_body, summary, transition

KEY = "mixed"
ARMS = ("a", "b", "c")
RATES = np.array([0.10, 0.15, 0.20])  # each arm's reward probability
UNITS = 1_000
UNITS_IN_FLIGHT = 250  # units between their first decision and their last reward, so decisions and rewards mix
REWARD_SHARE = 0.8  # share of decisions that get a reward


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """Per unit (rows) and decision (columns): the deciding replicas (two different), the rewarding replica,
    whether it is rewarded, and the uniform draw that makes the reward 1 when below the arm's rate."""

    deciders: NDArray[np.int64]
    rewarders: NDArray[np.int64]
    rewarded: NDArray[np.bool_]
    draws: NDArray[np.float64]


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """Every answer of the load: both decisions of each unit, the rewards, the manual reweight."""

    decisions: list[tuple[Answer, Answer]]
    rewards: list[Answer]
    reweights: list[Answer]


def plan_load(rng: np.random.Generator, replicas: int) -> Plan:
    """The seeded plan of the whole load."""
    first = rng.integers(0, replicas, UNITS)
    second = (first + rng.integers(1, replicas, UNITS)) % replicas
    return Plan(
        deciders=np.stack([first, second], axis=1),
        rewarders=rng.integers(0, replicas, (UNITS, 2)),
        rewarded=rng.random((UNITS, 2)) < REWARD_SHARE,
        draws=rng.random((UNITS, 2)),
    )


async def mixed_load(urls: Sequence[str], plan: Plan) -> Outcome:
    """Decide every unit twice at once on its two replicas, then reward its decisions, many units at a time."""
    gate = asyncio.Semaphore(UNITS_IN_FLIGHT)
    rewards: list[Answer] = []
    reweights: list[Answer] = []
    decided = 0
    async with ReplicaClients(urls) as http:

        async def one_unit(i: int) -> tuple[Answer, Answer]:
            nonlocal decided
            async with gate:
                unit = f"unit-{i}"
                first, second = await asyncio.gather(*(http.decide(int(r), KEY, unit) for r in plan.deciders[i]))
                decided += 1
                if decided == UNITS // 2:
                    # New weights on replica 0 while the others serve the old ones from their caches, so
                    # the two decisions of a unit can get different candidate arms (stickiness must hold).
                    reweights.append(await http.post(0, f"/v1/experiments/{KEY}/reweight"))
                pending = [
                    http.reward(
                        int(plan.rewarders[i, j]),
                        answer.body["decision_id"],
                        float(plan.draws[i, j] < RATES[ARMS.index(answer.body["arm"])]),
                    )
                    for j, answer in enumerate((first, second))
                    if answer.ok and answer.body["in_experiment"] and plan.rewarded[i, j]
                ]
                rewards.extend(await asyncio.gather(*pending))
                return first, second

        decisions = await asyncio.gather(*(one_unit(i) for i in range(UNITS)))
    return Outcome(decisions=list(decisions), rewards=rewards, reweights=reweights)


def test_three_replicas_thousand_units(start_replicas: StartReplicas, engine: Engine, rng: np.random.Generator):
    replicas = start_replicas(3, {"BANDIT_SCHEDULER_ENABLED": "false"})
    create_experiment(replicas[0].url, experiment_body(KEY, ARMS))
    transition(replicas[0].url, KEY, "start")

    outcome = asyncio.run(mixed_load(replicas.urls, plan_load(rng, len(replicas))))

    problems: list[str] = []
    answers = [a for pair in outcome.decisions for a in pair] + outcome.rewards + outcome.reweights
    if not all(a.ok for a in answers):
        problems.append("not every request got a 2xx answer: " + summary(answers))
    split = [
        (f"unit-{i}", first.body["arm"], second.body["arm"])
        for i, (first, second) in enumerate(outcome.decisions)
        if first.ok and second.ok and first.body["arm"] != second.body["arm"]
    ]
    if split:
        problems.append(f"{len(split)} units were answered two different arms, e.g. {split[:5]}")
    stored = rows.experiment(engine, KEY)
    arms_of: dict[str | None, set[int]] = {}
    for d in rows.decisions(engine, stored.id):
        arms_of.setdefault(d.unit, set()).add(d.arm)
    stored_split = sorted(unit for unit, arms in arms_of.items() if unit is not None and len(arms) > 1)
    if stored_split:
        problems.append(f"{len(stored_split)} units have decisions on two arms in the table, e.g. {stored_split[:5]}")
    if len(arms_of) != UNITS:
        problems.append(f"the decisions table holds {len(arms_of)} distinct units, not {UNITS}")
    stats = httpx.get(f"{replicas[2].url}/v1/experiments/{KEY}", timeout=30, headers=AUTH).json()["stats"]
    units = {arm: s["units"] for arm, s in stats.items()}
    if sum(units.values()) != UNITS:
        problems.append(f"the per-arm units counters sum to {sum(units.values())} for {UNITS} units: {units}")
    problems += rows.counter_mismatches(engine, stored.id, ARMS)
    assert not problems, "\n".join(problems) + "\n" + replicas.logs()
