"""Two replicas converge after idle: a change made through A holds on B within BANDIT_CACHE_TTL_S (1 s).

The issue's reproducer: B serves an experiment (so it caches it) and sits idle; A completes or
pauses it; B then answers decisions as in the experiment with the old weights, stores them after
the change, and accepts a reward for one. After a start through A, B keeps units out. Within the
1 s bound B may answer stale, but nothing it answers after the change may be stored or counted;
1.1 s after the change every answer must follow it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.multiprocess import rows
from tests.multiprocess.replicas import Replicas
from tests.multiprocess.traffic import Answer, ReplicaClients, create_experiment, experiment_body, summary, transition

KEY = "converge"
ARMS = ("a", "b")  # a is the control; b is the winner on completion, so the two are told apart
IDLE_S = 2.0  # longer than the default BANDIT_CACHE_TTL_S of 1 s
SETTLE_S = 1.1  # the TTL and a little: every answer after this follows the change
WARM = 10
ASKED = 20
SETTINGS = {"BANDIT_SCHEDULER_ENABLED": "false"}  # the cache TTL stays at its default

CHANGES: dict[str, tuple[str, dict[str, Any] | None, str]] = {
    # change -> (action at A, its body, the arm B must serve once the change holds)
    "complete": ("complete", {"winner": "b"}, "b"),
    "pause": ("pause", None, "a"),
}


async def ask(url: str, key: str, prefix: str, count: int = ASKED) -> list[Answer]:
    """`count` decisions for new units, all at once, at one replica."""
    async with ReplicaClients([url], connections=count) as http:
        return list(await asyncio.gather(*(http.decide(0, key, f"{prefix}-{i}") for i in range(count))))


async def change_then_ask(
    a: str, b: str, key: str, action: str, body: dict[str, Any] | None
) -> tuple[Answer, float, list[Answer]]:
    """The change at A and, as soon as A has answered (monotonic time returned), ASKED decisions at B at once."""
    async with ReplicaClients([a, b], connections=ASKED) as http:
        changed = await http.post(0, f"/v1/experiments/{key}/{action}", body)
        answered = time.monotonic()
        after = await asyncio.gather(*(http.decide(1, key, f"after-{i}") for i in range(ASKED)))
    return changed, answered, list(after)


async def reward_all(url: str, answers: list[Answer]) -> list[Answer]:
    """A reward of 1 at one replica for each of these decisions."""
    async with ReplicaClients([url], connections=max(1, len(answers))) as http:
        return list(await asyncio.gather(*(http.reward(0, a.body["decision_id"], 1.0) for a in answers)))


def in_experiment(answers: list[Answer]) -> list[Answer]:
    """The 2xx answers that put their unit in the experiment."""
    return [x for x in answers if x.ok and x.body["in_experiment"]]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One database per module and kind: the tests share their replicas, each with an experiment of its own."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'bandit.db'}"
    url: str = request.getfixturevalue("postgres_module_schema_url")
    return url


@pytest.fixture(scope="module")
def pair(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    """Replicas A and B, started once for the module's tests on this database (the scheduler off)."""
    replicas = Replicas(database_url, 2, SETTINGS, tmp_path_factory.mktemp("replicas"))
    replicas.start()
    yield replicas
    replicas.stop()


@pytest.mark.parametrize("change", list(CHANGES))
def test_no_stale_state_after_idle(change: str, pair: Replicas, engine: Engine):
    action, body, served = CHANGES[change]
    replicas, key = pair, f"{KEY}-{change}"
    a, b = replicas.urls
    create_experiment(a, experiment_body(key, ARMS))
    transition(a, key, "start")
    warm = asyncio.run(ask(b, key, "warm", WARM))
    assert len(in_experiment(warm)) == WARM, summary(warm)
    experiment_id = rows.experiment(engine, key).id
    before = rows.counters(engine, experiment_id)
    time.sleep(IDLE_S)

    changed, changed_clock, after = asyncio.run(change_then_ask(a, b, key, action, body))
    assert changed.ok, summary([changed])
    stored = rows.experiment(engine, key)
    changed_at = stored.completed_at if change == "complete" else stored.updated_at
    assert changed_at is not None
    stale = in_experiment(after)
    rewarded = asyncio.run(reward_all(b, stale))
    time.sleep(max(0.0, changed_clock + SETTLE_S - time.monotonic()))
    settled = asyncio.run(ask(b, key, "settled"))

    problems = []
    if not all(x.ok for x in after + settled):
        problems.append("not every decision got a 2xx answer: " + summary(after + settled))
    late = sorted(
        d.created_at - changed_at for d in rows.decisions(engine, experiment_id) if d.created_at >= changed_at
    )
    if late:
        problems.append(
            f"{len(late)} decisions stored after the experiment was {change}d through A "
            f"(created {late[0]:.3f} to {late[-1]:.3f} s after); "
            f"B answered {len(stale)} of {ASKED} as in the experiment right after A's 200"
        )
    accepted = [x for x in rewarded if x.ok]
    if accepted:
        problems.append(f"B accepted {len(accepted)} rewards for decisions it served after the {change}")
    counted = {r.decision_id for r in rows.rewards(engine, experiment_id)} & {x.body["decision_id"] for x in stale}
    if counted:
        problems.append(f"{len(counted)} rewards for decisions served after the {change} are stored")
    moved = rows.counter_changes(before, rows.counters(engine, experiment_id), ARMS)
    if moved:
        problems.append(f"the per-arm counters changed after the {change}: {', '.join(moved)}")
    wrong = [(x.body["arm"], x.body["in_experiment"]) for x in settled if x.ok]
    wrong = [w for w in wrong if w != (served, False)]
    if wrong:
        problems.append(
            f"{SETTLE_S} s after the {change}, B answered {len(wrong)} of {ASKED} decisions other than "
            f"arm {served!r} outside the experiment: (arm, in_experiment) {sorted(set(wrong))}"
        )
    assert not problems, "\n".join(problems) + "\n" + replicas.logs()


@pytest.mark.parametrize("resume", [False, True], ids=["start", "resume"])
def test_no_stale_state_after_idle_start(resume: bool, pair: Replicas, engine: Engine):
    replicas, key = pair, f"{KEY}-{'resume' if resume else 'start'}"
    a, b = replicas.urls
    create_experiment(a, experiment_body(key, ARMS))
    if resume:
        transition(a, key, "start")
        transition(a, key, "pause")
    warm = asyncio.run(ask(b, key, "warm", WARM))
    assert all(x.ok for x in warm) and not in_experiment(warm), summary(warm)
    time.sleep(IDLE_S)

    transition(a, key, "start")
    time.sleep(SETTLE_S)
    settled = asyncio.run(ask(b, key, "settled"))

    problems = []
    if not all(x.ok for x in settled):
        problems.append("not every decision got a 2xx answer: " + summary(settled))
    kept_out = [x for x in settled if x.ok and not x.body["in_experiment"]]
    if kept_out:
        problems.append(
            f"{SETTLE_S} s after the {'resume' if resume else 'start'} through A, "
            f"B kept {len(kept_out)} of {ASKED} units out of the experiment"
        )
    stored = {d.id for d in rows.decisions(engine, rows.experiment(engine, key).id)}
    missing = [x.body["decision_id"] for x in in_experiment(settled) if x.body["decision_id"] not in stored]
    if missing:
        problems.append(f"{len(missing)} decisions B answered in the experiment are not stored")
    assert not problems, "\n".join(problems) + "\n" + replicas.logs()
