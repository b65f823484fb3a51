"""The storage contract: one suite, run through the port on every storage (memory twin and SQLite).

Each case opens the storage on its own event loop, writes through jobs (plain functions over a
`WriteTx`, as the services do) and asserts only what the port lets a service observe.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from operator import methodcaller
from typing import Any

import msgspec
import numpy as np
import pytest

from bandit_service.core.errors import AlreadyExistsError, ConflictError, InvalidFieldError, UnavailableError
from bandit_service.core.model import (
    Arm,
    Assignment,
    Decision,
    Event,
    Experiment,
    ExperimentConfig,
    ExperimentStatus,
    LoggedEvent,
    Namespace,
    NewExperiment,
    RewardWrite,
    Rollout,
    RolloutKind,
    StoredReward,
    WeightsRecord,
)
from bandit_service.core.plans import PlanState, PlanStatus, PlanStep
from bandit_service.core.timestamps import to_datetime
from bandit_service.core.webhooks import Answered, claimed, settled
from bandit_service.ports import Storage, WriteTx
from bandit_service.storage.sketches import SKETCH_ACCURACY
from policies import ArmStats, ThompsonSampling
from policies.sketch import QuantileSketch

T0 = 1_800_000_000.0
Scenario = Callable[[Storage], Awaitable[None]]


def contract(scenario: Scenario) -> Callable[[Storage], None]:
    """Run an async case on a fresh event loop, with the storage opened before and closed after."""

    @functools.wraps(scenario)
    def run(storage: Storage) -> None:
        async def opened() -> None:
            await storage.open()
            try:
                await scenario(storage)
            finally:
                await storage.close()

        asyncio.run(opened())

    return run


def each(tx: WriteTx, items: Sequence[Callable[[WriteTx], Any]]) -> list[Any]:
    """A write job whose items are functions of the transaction."""
    return [item(tx) for item in items]


async def write(storage: Storage, fn: Callable[[WriteTx], Any]) -> Any:
    """Run one function of the transaction as a write."""
    return await storage.write(each, fn)


def new_experiment(
    key: str = "exp",
    *,
    status: ExperimentStatus = "draft",
    created_at: float = T0,
    namespace: str | None = None,
    default_reward: float = 0.0,
    next_reweight_at: float | None = None,
) -> NewExperiment:
    """Two arms, a (control) and b, Thompson sampling on bernoulli rewards."""
    return NewExperiment(
        key=key,
        name=f"Experiment {key}",
        description="",
        status=status,
        arms=(Arm(name="a", payload={"model": "v1"}), Arm(name="b", weight=0.5, payload={"model": ["v2", 2]})),
        config=ExperimentConfig(
            control="a",
            policy=ThompsonSampling(),
            reward="bernoulli",
            reweight_every_s=3600,
            exposure=1.0,
            targeting={"country": ["de", "fr"]},
            sticky=True,
            reward_window_s=86_400,
            default_reward=default_reward,
            namespace=None if namespace is None else Namespace(name=namespace, start=0.0, end=0.5),
        ),
        salt=f"salt-{key}",
        weights=(0.5, 0.5),
        weights_version=1,
        next_reweight_at=next_reweight_at,
        created_at=created_at,
        updated_at=created_at,
    )


async def create(storage: Storage, *args: Any, **kwargs: Any) -> Experiment:
    new = new_experiment(*args, **kwargs)
    experiment: Experiment = await write(storage, lambda tx: tx.insert_experiment(new))
    return experiment


def decision(
    experiment: Experiment,
    decision_id: str,
    arm: int,
    *,
    version: int = 1,
    new_unit: bool = True,
    expires_at: float = T0 + 100,
    **attributes: Any,
) -> Decision:
    return Decision(
        id=decision_id,
        experiment_id=experiment.id,
        unit=f"unit-{decision_id}",
        arm=arm,
        propensity=0.5,
        weights_version=version,
        attributes=attributes,
        created_at=T0,
        expires_at=expires_at,
        new_unit=new_unit,
    )


def reward_of(
    experiment: Experiment,
    d: Decision,
    value: float,
    metrics: dict[str, float] | None = None,
    key: str | None = None,
) -> StoredReward:
    return StoredReward(
        decision_id=d.id,
        experiment_id=experiment.id,
        experiment_key=experiment.key,
        arm=d.arm,
        arm_name=experiment.arms[d.arm].name,
        weights_version=d.weights_version,
        value=value,
        metrics=metrics or {},
        idempotency_key=key,
        body_hash=f"hash-{d.id}",
        created_at=T0 + 1,
        trial_value=value,
    )


def firsts(rewards: list[StoredReward]) -> list[RewardWrite]:
    """Each reward as its trial's first."""
    return [RewardWrite(reward=r, before=None, after=r.value) for r in rewards]


def weights(experiment: Experiment, version: int) -> WeightsRecord:
    return WeightsRecord(
        experiment_id=experiment.id,
        version=version,
        created_at=T0 + version,
        weights=(0.4, 0.6),
        stats=(ArmStats(3, 1.0, 1.0), ArmStats(4, 2.0, 2.0)),
        reason="schedule",
        seed=2**40 + version,
        churn=0.1,
    )


def rollout(experiment: Experiment, kind: RolloutKind = "ramp", *, status: PlanStatus = "running") -> Rollout:
    return Rollout(
        experiment_id=experiment.id,
        kind=kind,
        steps=(PlanStep(0.1, 60), PlanStep(1.0)),
        state=PlanState(step=0, step_started_at=to_datetime(T0 + 0.25), status=status),
        winner="b" if kind == "completion" else None,
        base_weights=(0.5, 0.5) if kind == "completion" else (),
        created_at=T0,
        updated_at=T0,
    )


@contract
async def test_experiments_are_created_read_and_listed_newest_first(storage: Storage) -> None:
    first = await create(storage, "one", created_at=T0)
    second = await create(storage, "two", created_at=T0, status="active")
    third = await create(storage, "three", created_at=T0 + 1, status="active")
    assert [(e.id, e.revision) for e in (first, second, third)] == [(1, 1), (2, 1), (3, 1)]
    assert await storage.experiment("two") == second
    assert await storage.experiment("missing") is None
    listed = await storage.experiments(None, 10, 0)
    assert [e.key for e in listed] == ["three", "two", "one"]  # created_at desc, then id desc
    assert listed == [third, second, first]
    assert [e.key for e in await storage.experiments("active", 10, 0)] == ["three", "two"]
    assert [e.key for e in await storage.experiments(None, 1, 1)] == ["two"]
    assert await storage.experiments("completed", 10, 0) == []


@contract
async def test_stored_values_do_not_share_the_callers_dicts(storage: Storage) -> None:
    new = new_experiment("exp")
    await write(storage, lambda tx: tx.insert_experiment(new))
    new.arms[0].payload["model"] = "changed"
    new.config.targeting["country"].append("xx")
    stored = await storage.experiment("exp")
    assert stored is not None
    assert stored.arms[0].payload == {"model": "v1"}
    assert stored.config.targeting == {"country": ["de", "fr"]}
    targeting: dict[str, Any] = {"country": ["it"]}
    config = msgspec.structs.replace(stored.config, targeting=targeting)
    await write(storage, lambda tx: tx.update_experiment(msgspec.structs.replace(stored, config=config)))
    targeting["country"].append("xx")
    updated = await storage.experiment("exp")
    assert updated is not None and updated.config.targeting == {"country": ["it"]}


@contract
async def test_a_used_key_is_refused(storage: Storage) -> None:
    first = await create(storage, "exp")
    with pytest.raises(AlreadyExistsError, match="already exists") as refused:
        await create(storage, "exp", created_at=T0 + 5)
    assert refused.value.field == "key"
    assert await storage.experiments(None, 10, 0) == [first]


@contract
async def test_update_is_compare_and_set_on_the_revision(storage: Storage) -> None:
    created = await create(storage, "exp")
    changed = msgspec.structs.replace(
        created,
        status="active",
        weights=(0.2, 0.8),
        weights_version=2,
        name="Renamed",
        next_reweight_at=T0 + 60,
        started_at=T0 + 1,
        key="not-rewritten",
        salt="not-rewritten",
        created_at=T0 - 100,
    )
    updated = await write(storage, lambda tx: tx.update_experiment(changed))
    assert updated == msgspec.structs.replace(changed, revision=2)
    stored = await storage.experiment("exp")
    assert stored == msgspec.structs.replace(changed, key="exp", salt="salt-exp", created_at=T0, revision=2)
    assert await storage.experiment("not-rewritten") is None
    stale = msgspec.structs.replace(created, name="Stale")  # still revision 1
    assert await write(storage, lambda tx: tx.update_experiment(stale)) is None
    assert await storage.experiment("exp") == stored


@contract
async def test_update_replaces_the_arms_only_when_given(storage: Storage) -> None:
    created = await create(storage, "exp")
    arms = (Arm(name="a"), Arm(name="c", weight=0.3, payload=[1, 2]), Arm(name="d", payload=None))
    with_arms = msgspec.structs.replace(created, arms=arms, weights=(0.3, 0.3, 0.4))
    updated = await write(storage, lambda tx: tx.update_experiment(with_arms, with_arms.arms))
    assert updated is not None and updated.arms == arms
    stored = await storage.experiment("exp")
    assert stored is not None and stored.arms == arms and stored.revision == 2
    # Without `arms`, the stored arms stay whatever the experiment value says.
    without = msgspec.structs.replace(stored, arms=(Arm(name="zz"),), description="kept arms")
    assert await write(storage, lambda tx: tx.update_experiment(without)) is not None
    stored = await storage.experiment("exp")
    assert stored is not None and stored.arms == arms and stored.description == "kept arms"


@contract
async def test_weights_history_is_the_latest_rows_oldest_first(storage: Storage) -> None:
    exp = await create(storage, "exp")
    other = await create(storage, "other")
    for version in (3, 1, 2, 5, 4):
        await write(storage, methodcaller("append_weights", weights(exp, version)))
    await write(storage, lambda tx: tx.append_weights(weights(other, 1)))
    assert [r.version for r in await storage.weights_history(exp.id, 2)] == [4, 5]
    history = await storage.weights_history(exp.id, 10)
    assert history == [weights(exp, v) for v in (1, 2, 3, 4, 5)]
    assert await storage.weights_history(other.id, 10) == [weights(other, 1)]
    assert (await storage.report_data(exp)).history == tuple(history)


@contract
async def test_events_page_by_id_cursor(storage: Storage) -> None:
    exp = await create(storage, "exp")
    other = await create(storage, "other")

    def event(experiment: Experiment, i: int) -> Event:
        after = {"weights": [0.5, 0.5], "n": i, "note": None}
        return Event(
            experiment_id=experiment.id, created_at=T0 + i, actor="ops", action=f"a{i}", before=None, after=after
        )

    for i in range(5):
        await write(storage, methodcaller("log_event", event(exp, i)))
        await write(storage, methodcaller("log_event", event(other, i)))
    page = await storage.events(exp.id, 0, 2)
    assert [e.action for e in page] == ["a0", "a1"]
    assert page[0] == LoggedEvent(**msgspec.structs.asdict(event(exp, 0)), id=page[0].id)
    seen = list(page)
    for _ in range(3):  # bounded: a cursor that does not move must fail, not hang
        page = await storage.events(exp.id, page[-1].id, 2) if page else []
        seen += page
    assert [e.action for e in seen] == [f"a{i}" for i in range(5)]
    ids = [e.id for e in seen]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert all(e.experiment_id == exp.id for e in seen)
    assert await storage.events(exp.id, ids[-1], 10) == []


@contract
async def test_sticky_assignments_keep_the_first(storage: Storage) -> None:
    exp = await create(storage, "exp")
    first = Assignment(arm=0, propensity=0.5, weights_version=1)
    later = Assignment(arm=1, propensity=0.25, weights_version=2)
    # A job inserts the units it found unassigned; the answer is the rows the insert created.
    created = await write(storage, lambda tx: tx.insert_assignments(exp.id, [("u2", later), ("u1", first)], T0))
    assert created == {"u1", "u2"}
    assert await write(storage, lambda tx: tx.insert_assignments(exp.id, [("u3", later)], T0 + 1)) == {"u3"}
    found = await write(storage, lambda tx: tx.assignments(exp.id, ["u1", "u2", "u3", "u4"]))
    assert found == {"u1": first, "u2": later, "u3": later}
    assert await write(storage, lambda tx: tx.assignments(exp.id + 1, ["u1"])) == {}


@contract
async def test_a_rebalance_pages_through_earlier_units_and_moves_each_once(storage: Storage) -> None:
    exp = await create(storage, "exp")  # weights version 1
    other = await create(storage, "other")
    earlier = {f"u{i:02d}": Assignment(arm=i % 2, propensity=0.5, weights_version=1) for i in range(10)}
    earlier["u03"] = Assignment(arm=1, propensity=0.5, weights_version=1, trial_id="d-3", trial_expires_at=T0 + 50)
    await write(storage, lambda tx: tx.insert_assignments(exp.id, list(earlier.items()), T0))
    await write(storage, lambda tx: tx.insert_assignments(other.id, list(earlier.items()), T0))
    assert await write(storage, lambda tx: tx.update_experiment(msgspec.structs.replace(exp, weights_version=2)))
    later = Assignment(arm=1, propensity=0.8, weights_version=2)  # a unit assigned after the change
    await write(storage, lambda tx: tx.insert_assignments(exp.id, [("u05b", later)], T0 + 1))
    await write(storage, methodcaller("append_weights", msgspec.structs.replace(weights(exp, 2), moved=0.0)))
    assert await storage.assignment_counts(exp.id, 2) == {0: 5, 1: 5}
    assert await storage.assignment_counts(exp.id, 3) == {0: 5, 1: 6}

    pages: list[list[tuple[str, Assignment]]] = []
    after = None
    for _ in range(5):  # bounded: a cursor that does not move must fail, not hang
        page = await write(storage, methodcaller("rebalance_page", exp.id, 2, after, 4))
        pages.append(page)
        if len(page) < 4:
            break
        after = page[-1][0]
    assert [len(p) for p in pages] == [4, 4, 2]
    assert dict(row for p in pages for row in p) == earlier  # each earlier unit once, the later one left out
    assert await write(storage, lambda tx: tx.rebalance_page(exp.id, 3, None, 4)) is None  # not the current version

    def to(arm: int) -> Assignment:
        return Assignment(arm=arm, propensity=0.75, weights_version=2)

    stale = Assignment(arm=0, propensity=0.5, weights_version=1)  # u05 is on arm 1: the compare-and-set fails
    moves = [("u03", earlier["u03"], to(0)), ("u04", earlier["u04"], to(1)), ("u05", stale, to(0))]
    assert await write(storage, lambda tx: tx.move_assignments(exp.id, moves)) == 2
    assert await write(storage, lambda tx: tx.move_assignments(exp.id, moves)) == 0  # never twice
    found = await write(storage, lambda tx: tx.assignments(exp.id, ["u03", "u04", "u05"]))
    assert found == {"u03": to(0), "u04": to(1), "u05": earlier["u05"]}  # u03's open trial is closed
    assert await write(storage, lambda tx: tx.assignments(other.id, ["u03"])) == {"u03": earlier["u03"]}
    again = await write(storage, lambda tx: tx.rebalance_page(exp.id, 2, None, 20))
    assert {unit for unit, _ in again} == set(earlier) - {"u03", "u04"}
    assert await storage.assignment_counts(exp.id, 2) == {0: 4, 1: 4}

    await write(storage, lambda tx: tx.set_moved(exp.id, 2, 0.2))
    assert [r.moved for r in await storage.weights_history(exp.id, 1)] == [0.2]


@contract
async def test_only_active_experiments_pass_the_status_check(storage: Storage) -> None:
    draft = await create(storage, "draft")
    active = await create(storage, "active")
    stored = await write(storage, lambda tx: tx.update_experiment(msgspec.structs.replace(active, status="active")))
    assert stored is not None
    assert await write(storage, lambda tx: tx.active_experiments({draft.id, active.id, 999})) == {active.id}


@contract
async def test_changes_come_in_order_with_the_changed_revisions(storage: Storage) -> None:
    start = await storage.changes(None)
    assert start.revisions == {}
    assert (await storage.changes(start.seq)).revisions == {}
    a = await create(storage, "a")
    b = await create(storage, "b")
    after_create = await storage.changes(start.seq)
    assert after_create.revisions == {"a": 1, "b": 1} and after_create.seq >= start.seq + 2
    assert await write(storage, lambda tx: tx.update_experiment(msgspec.structs.replace(a, name="A"))) is not None
    after_update = await storage.changes(after_create.seq)
    assert after_update.revisions == {"a": 2} and after_update.seq > after_create.seq
    assert (await storage.changes(None)).seq == after_update.seq
    assert (await storage.changes(after_update.seq)).revisions == {}
    assert b.revision == 1


@contract
async def test_decisions_are_counted_per_arm_and_per_weights_period(storage: Storage) -> None:
    exp = await create(storage, "exp")
    rows = [
        decision(exp, "d1", 0, version=1),
        decision(exp, "d2", 1, version=1),
        decision(exp, "d3", 1, version=1, new_unit=False),
        decision(exp, "d4", 0, version=3),
    ]
    await write(storage, lambda tx: tx.insert_decisions(rows[:2]))
    await write(storage, lambda tx: tx.insert_decisions(rows[2:]))
    counts = await storage.arm_counts(exp)
    assert [(c.units, c.trials, c.pending, c.rewarded, c.expired) for c in counts] == [
        (2, 2, 2, 0, 0),
        (1, 2, 2, 0, 0),
    ]
    assert counts[0].stats == ArmStats() and counts[0].metrics == {}
    counters = (await storage.report_data(exp)).counters
    assert counters.versions == (1, 3)
    assert counters.trials.tolist() == [[1, 2], [1, 0]]
    assert counters.units.tolist() == [[1, 1], [1, 0]]
    assert counters.reward.n.tolist() == [[0, 0], [0, 0]]
    contexts = await write(storage, lambda tx: tx.decision_contexts(["d2", "nope"]))
    assert list(contexts) == ["d2"]
    context = contexts["d2"]
    assert (context.experiment_key, context.reward_kind, context.arm, context.arm_name) == ("exp", "bernoulli", 1, "b")
    assert (context.status, context.weights_version, context.expires_at, context.reward) == (
        "pending",
        1,
        T0 + 100,
        None,
    )
    empty = await create(storage, "empty")
    assert [c.trials for c in await storage.arm_counts(empty)] == [0, 0]
    assert (await storage.report_data(empty)).counters.versions == ()


@contract
async def test_rewards_are_stored_counted_and_refused_twice(storage: Storage) -> None:
    exp = await create(storage, "exp")
    d1, d2, d3 = (decision(exp, f"d{i}", arm) for i, arm in ((1, 0), (2, 1), (3, 1)))
    await write(storage, lambda tx: tx.insert_decisions([d1, d2, d3]))
    r1 = reward_of(exp, d1, 1.0, {"latency_ms": 12.5, "error": 0.0}, key="k1")
    r2 = reward_of(exp, d2, 0.0, {"latency_ms": 0.0}, key=None)
    r3 = reward_of(exp, d3, 1.0, {"latency_ms": -3.0, "error": 1.0}, key="k3")
    await write(storage, lambda tx: tx.insert_rewards(firsts([r1, r2])))
    await write(storage, lambda tx: tx.insert_rewards(firsts([r3])))

    contexts = await write(storage, lambda tx: tx.decision_contexts(["d1", "d2"]))
    assert contexts["d1"].status == "rewarded" and contexts["d1"].reward == r1
    assert contexts["d2"].reward == r2
    assert await write(storage, lambda tx: tx.rewards_by_key(["k1", "k3", "unknown"])) == {"k1": r1, "k3": r3}

    with pytest.raises(ConflictError) as refused:
        await write(storage, lambda tx: tx.insert_rewards(firsts([reward_of(exp, d1, 0.0, key="k9")])))
    assert refused.value.field == "decision_id"
    assert await write(storage, lambda tx: tx.rewards_by_key(["k9"])) == {}

    counts = await storage.arm_counts(exp)
    assert [(c.rewarded, c.pending, c.stats) for c in counts] == [
        (1, 0, ArmStats(1, 1.0, 1.0)),
        (2, 0, ArmStats(2, 1.0, 1.0)),
    ]
    assert counts[1].metrics == {"latency_ms": ArmStats(2, -3.0, 9.0), "error": ArmStats(1, 1.0, 1.0)}
    counters = (await storage.report_data(exp)).counters
    assert counters.rewarded.tolist() == [[1, 2]]
    assert counters.reward.total.tolist() == [[1.0, 1.0]]
    assert sorted(counters.metrics) == ["error", "latency_ms"]
    assert counters.metrics["latency_ms"].n.tolist() == [[1, 2]]
    assert counters.metrics["latency_ms"].total_sq.tolist() == [[156.25, 9.0]]
    # Only latency-like metrics are sketched, and only their non-negative values.
    assert list(counters.sketches) == ["latency_ms"]
    empty = QuantileSketch(relative_accuracy=SKETCH_ACCURACY)
    assert counters.sketches["latency_ms"] == (empty.add([12.5]), empty.add([0.0]))


@contract
async def test_expiry_counts_the_default_reward(storage: Storage) -> None:
    exp = await create(storage, "exp", default_reward=0.25)
    rows = [
        decision(exp, "b-late", 0, expires_at=T0 + 10),
        decision(exp, "x-early", 1, expires_at=T0 + 5),
        decision(exp, "open", 0, expires_at=T0 + 20),
        decision(exp, "paid", 1, expires_at=T0 + 1),
    ]
    await write(storage, lambda tx: tx.insert_decisions(rows))
    await write(storage, lambda tx: tx.insert_rewards(firsts([reward_of(exp, rows[3], 1.0)])))
    assert await storage.due("expired", T0 + 15, 10) == ["x-early", "b-late"]  # by expires_at, pending only
    assert await storage.due("expired", T0 + 15, 1) == ["x-early"]

    expired = await write(storage, lambda tx: tx.expire_decisions(["b-late", "x-early", "paid", "unknown"]))
    assert sorted((e.decision_id, e.experiment_id, e.arm, e.weights_version) for e in expired) == [
        ("b-late", exp.id, 0, 1),
        ("x-early", exp.id, 1, 1),
    ]
    assert await write(storage, lambda tx: tx.expire_decisions(["b-late"])) == []
    assert await storage.due("expired", T0 + 15, 10) == []
    contexts = await write(storage, lambda tx: tx.decision_contexts(["b-late"]))
    assert contexts["b-late"].status == "expired" and contexts["b-late"].reward is None

    counts = await storage.arm_counts(exp)
    assert [(c.expired, c.rewarded, c.pending, c.stats) for c in counts] == [
        (1, 0, 1, ArmStats(1, 0.25, 0.0625)),
        (1, 1, 0, ArmStats(2, 1.25, 1.0625)),
    ]
    counters = (await storage.report_data(exp)).counters
    assert counters.expired.tolist() == [[1, 1]]
    assert counters.reward.total.tolist() == [[0.25, 1.25]]
    with pytest.raises(ConflictError):  # an expired decision takes no reward
        await write(storage, lambda tx: tx.insert_rewards(firsts([reward_of(exp, rows[0], 1.0)])))


@contract
async def test_due_reweights_come_in_order_of_their_time(storage: Storage) -> None:
    for key, status, at in [
        ("c", "active", T0 + 30),
        ("a", "active", T0 + 10),
        ("never", "active", None),
        ("future", "active", T0 + 99),
        ("paused", "paused", T0 + 1),
        ("b", "active", T0 + 20),
    ]:
        await create(storage, key, status=status, next_reweight_at=at)
    assert await storage.due("reweight", T0 + 30, 10) == ["a", "b", "c"]
    assert await storage.due("reweight", T0 + 30, 2) == ["a", "b"]
    assert await storage.due("reweight", T0, 10) == []


@contract
async def test_rollouts_are_compare_and_set_and_listed_when_running(storage: Storage) -> None:
    exp = await create(storage, "zeta", status="active")
    ramp = rollout(exp)
    saved = await write(storage, lambda tx: tx.save_rollout(ramp))
    assert saved == msgspec.structs.replace(ramp, revision=1)
    assert await write(storage, lambda tx: tx.save_rollout(ramp)) is None  # revision 0: already exists
    moved = msgspec.structs.replace(
        saved, state=PlanState(step=1, step_started_at=to_datetime(T0 + 60.5)), updated_at=T0 + 60
    )
    assert await write(storage, lambda tx: tx.save_rollout(moved)) == msgspec.structs.replace(moved, revision=2)
    assert await write(storage, lambda tx: tx.save_rollout(moved)) is None  # stale revision 1
    completion = await write(storage, lambda tx: tx.save_rollout(rollout(exp, "completion", status="done")))
    plans = await storage.rollouts(exp.id)
    assert plans == {"ramp": msgspec.structs.replace(moved, revision=2), "completion": completion}
    assert await write(storage, lambda tx: tx.rollouts(exp.id)) == plans
    assert await storage.rollouts(exp.id + 100) == {}

    alpha = await create(storage, "alpha", status="active")
    paused = await create(storage, "paused", status="paused")
    finished = await create(storage, "finished", status="active")
    await write(storage, lambda tx: tx.save_rollout(rollout(alpha, "completion")))
    await write(storage, lambda tx: tx.save_rollout(rollout(paused)))
    await write(storage, lambda tx: tx.save_rollout(rollout(finished, status="stopped")))
    assert await storage.due("rollouts", T0, 10) == ["alpha", "zeta"]  # by key
    assert await storage.due("rollouts", T0, 1) == ["alpha"]


@contract
async def test_namespace_members_are_the_experiments_not_completed(storage: Storage) -> None:
    for key, status, space in [
        ("draft", "draft", "ns"),
        ("active", "active", "ns"),
        ("done", "completed", "ns"),
        ("elsewhere", "active", "other"),
        ("none", "active", None),
    ]:
        await create(storage, key, status=status, namespace=space)
    members = await write(storage, lambda tx: tx.namespace_members("ns"))
    assert sorted(e.key for e in members) == ["active", "draft"]
    assert await write(storage, lambda tx: tx.namespace_members("missing")) == []
    by_id = await write(storage, lambda tx: tx.experiments_by_id([m.id for m in members] + [999]))
    assert by_id == {m.id: m for m in members}


@contract
async def test_segments_split_counters_by_attribute_value(storage: Storage) -> None:
    exp = await create(storage, "exp", default_reward=0.5)
    rows = [
        decision(exp, "t1", 0, flag=True, lang="en"),
        decision(exp, "t2", 1, flag=True, lang="de"),
        decision(exp, "i1", 0, flag=1, lang="en"),
        decision(exp, "s1", 1, flag="1", version=2, lang="en"),
        decision(exp, "n1", 0, flag=None),
        decision(exp, "m1", 1, new_unit=False),
    ]
    await write(storage, lambda tx: tx.insert_decisions(rows))
    await write(
        storage,
        lambda tx: tx.insert_rewards(
            firsts(
                [
                    reward_of(exp, rows[0], 1.0, {"latency_ms": 10.0}),
                    reward_of(exp, rows[2], 0.0, {"latency_ms": 30.0, "error": 1.0}),
                    reward_of(exp, rows[3], 1.0, {"error": 0.0}),
                ]
            )
        ),
    )
    await write(storage, lambda tx: tx.expire_decisions(["t2", "m1"]))
    await write(storage, lambda tx: tx.append_weights(weights(exp, 1)))

    data = await storage.segment_data(exp, "flag", 10)
    assert data.attribute == "flag" and data.history == (weights(exp, 1),)
    # true and 1 are different values; 1 and "1" share a name; missing and null are "(none)".
    assert list(data.segments) == ["(none)", "1", "true"]
    true, one, none = data.segments["true"], data.segments["1"], data.segments["(none)"]
    assert true.versions == (1,)
    assert true.trials.tolist() == [[1, 1]]
    assert (true.rewarded.tolist(), true.expired.tolist()) == ([[1, 0]], [[0, 1]])
    assert true.reward.total.tolist() == [[1.0, 0.5]]  # the expired decision counts with the default
    assert true.reward.total_sq.tolist() == [[1.0, 0.25]]
    assert one.versions == (1, 2)
    assert one.trials.tolist() == [[1, 0], [0, 1]]
    assert one.metrics["error"].total.tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert one.metrics["error"].n.tolist() == [[1, 0], [0, 1]]
    assert none.units.tolist() == [[1, 0]] and none.trials.tolist() == [[1, 1]]
    assert none.metrics == {}
    empty = QuantileSketch(relative_accuracy=SKETCH_ACCURACY)
    assert true.sketches == {"latency_ms": (empty.add([10.0]), empty)}
    assert one.sketches == {"latency_ms": (empty.add([30.0]), empty)}
    assert none.sketches == {}

    by_lang = await storage.segment_data(exp, "lang", 3)
    assert list(by_lang.segments) == ["(none)", "de", "en"]
    assert by_lang.segments["en"].trials.sum() == 3
    np.testing.assert_array_equal(by_lang.segments["en"].metrics["latency_ms"].total, [[40.0, 0.0], [0.0, 0.0]])

    with pytest.raises(InvalidFieldError, match="more than 3 values") as refused:
        await storage.segment_data(exp, "flag", 3)  # true, 1, "1" and null are four JSON values
    assert refused.value.field == "segment"


def record(tx: WriteTx, items: Sequence[str]) -> list[Any]:
    """A job that logs an event per item, refuses "refuse" (an error as its outcome) and crashes on "crash"."""
    out: list[Any] = []
    for item in items:
        if item == "refuse":
            out.append(InvalidFieldError("refused", field="item"))
            continue
        if item == "crash":
            raise RuntimeError("a bug in one item")
        tx.log_event(Event(experiment_id=1, created_at=T0, actor="test", action=item, before=None, after=None))
        out.append(item)
    return out


@contract
async def test_a_job_that_raises_leaves_nothing_behind(storage: Storage) -> None:
    exp = await create(storage, "kept", default_reward=1.0)
    await write(storage, lambda tx: tx.insert_decisions([decision(exp, "d0", 0)]))

    def everything_then_crash(tx: WriteTx) -> None:
        made = tx.insert_experiment(new_experiment("gone"))
        tx.update_experiment(msgspec.structs.replace(exp, name="changed"))
        tx.append_weights(weights(exp, 7))
        tx.log_event(Event(experiment_id=exp.id, created_at=T0, actor="t", action="x", before=None, after=None))
        tx.insert_assignments(exp.id, [("u9", Assignment(arm=1, propensity=0.5, weights_version=1))], T0)
        tx.insert_decisions([decision(exp, "d9", 1), decision(made, "g1", 0)])
        tx.insert_rewards(firsts([reward_of(exp, decision(exp, "d9", 1), 1.0, {"latency_ms": 5.0}, key="k9")]))
        tx.expire_decisions(["d0"])
        tx.save_rollout(rollout(exp))
        raise RuntimeError("a bug after the writes")

    before = (await storage.arm_counts(exp), await storage.report_data(exp))
    with pytest.raises(RuntimeError, match="a bug after the writes"):
        await write(storage, everything_then_crash)
    assert await storage.experiment("gone") is None
    assert await storage.experiment("kept") == exp
    assert await storage.weights_history(exp.id, 10) == []
    assert await storage.events(exp.id, 0, 10) == []
    assert await storage.rollouts(exp.id) == {}
    assert await write(storage, lambda tx: tx.assignments(exp.id, ["u9"])) == {}
    contexts = await write(storage, lambda tx: tx.decision_contexts(["d0", "d9", "g1"]))
    assert list(contexts) == ["d0"] and contexts["d0"].status == "pending"
    assert await write(storage, lambda tx: tx.rewards_by_key(["k9"])) == {}
    after = (await storage.arm_counts(exp), await storage.report_data(exp))
    assert after[0] == before[0]
    assert after[1].counters.trials.tolist() == before[1].counters.trials.tolist()
    assert after[1].counters.sketches == before[1].counters.sketches == {}
    assert await storage.due("expired", T0 + 1000, 10) == ["d0"]
    # The key is free again, and the experiment is created afresh.
    again = await create(storage, "gone")
    assert await storage.experiment("gone") == again


@contract
async def test_an_error_outcome_refuses_only_its_item(storage: Storage) -> None:

    async def outcome(item: str) -> Any:
        try:
            return await storage.write(record, item)
        except (InvalidFieldError, RuntimeError) as exc:  # raised, not returned
            return type(exc)

    # Sent together, so the SQL writer can group them into one transaction.
    outcomes = await asyncio.gather(*(outcome(item) for item in ["one", "refuse", "two", "crash", "three"]))
    assert outcomes == ["one", InvalidFieldError, "two", RuntimeError, "three"]
    assert sorted(e.action for e in await storage.events(1, 0, 10)) == ["one", "three", "two"]


@contract
async def test_writes_after_close_are_unavailable(storage: Storage) -> None:
    await storage.ping()
    start = storage.stats()
    await write(storage, lambda tx: tx.experiment("exp"))
    await create(storage, "exp")
    stats = storage.stats()
    assert stats.writes - start.writes == 2 and 1 <= stats.commits - start.commits <= 2
    await storage.close()
    with pytest.raises(UnavailableError):
        await create(storage, "late")
    assert storage.stats() == stats


def logged(experiment: Experiment, action: str, at: float = T0) -> Callable[[WriteTx], None]:
    """A write that logs one audit entry of `experiment`."""
    entry = Event(experiment_id=experiment.id, created_at=at, actor="ops", action=action, before=None, after={"n": 1})
    return methodcaller("log_event", entry)


@contract
async def test_an_audit_entry_is_queued_for_its_experiments_and_the_global_webhook(storage: Storage) -> None:
    storage.webhook_url = "https://global.example/hook"
    own = new_experiment("own")
    own = msgspec.structs.replace(own, config=msgspec.structs.replace(own.config, webhook_url="https://own.example/h"))
    same = new_experiment("same")
    same = msgspec.structs.replace(same, config=msgspec.structs.replace(same.config, webhook_url=storage.webhook_url))
    a = await write(storage, lambda tx: tx.insert_experiment(own))
    b = await create(storage, "plain")
    c = await write(storage, lambda tx: tx.insert_experiment(same))
    await write(storage, logged(a, "start", T0 + 2))
    await write(storage, logged(b, "pause", T0 + 1))
    await write(storage, logged(c, "complete", T0 + 3))

    # A job that raises after logging queues nothing (the deliveries share the entry's transaction).
    def log_then_crash(tx: WriteTx) -> None:
        logged(a, "lost")(tx)
        raise RuntimeError("a bug after the log")

    with pytest.raises(RuntimeError, match="a bug after the log"):
        await write(storage, log_then_crash)

    due = await storage.due_deliveries(T0 + 3, 10)
    assert [(e.experiment, e.event.action, e.delivery.url) for e in due] == [
        ("plain", "pause", "https://global.example/hook"),  # the longest-waiting first
        ("own", "start", "https://own.example/h"),
        ("own", "start", "https://global.example/hook"),
        ("same", "complete", "https://global.example/hook"),  # one delivery per distinct URL
    ]
    first = due[1]
    assert first.event == (await storage.events(a.id, 0, 10))[0]
    assert first.delivery.event_id == first.event.id and first.delivery.experiment_id == a.id
    assert (first.delivery.status, first.delivery.attempts, first.delivery.next_attempt_at) == ("pending", 0, T0 + 2)
    assert first.delivery.created_at == T0 + 2 and first.delivery.delivered_at is None
    assert [e.event.action for e in await storage.due_deliveries(T0 + 1.5, 10)] == ["pause"]
    assert len(await storage.due_deliveries(T0 + 3, 2)) == 2
    # The log: newest first, of one experiment or all, paged by id.
    everything = await storage.deliveries(None, None, None, 10)
    assert [e.delivery.id for e in everything] == sorted((e.delivery.id for e in due), reverse=True)
    assert [e.delivery.url for e in await storage.deliveries(a.id, None, None, 10)] == [
        "https://global.example/hook",
        "https://own.example/h",
    ]
    older = await storage.deliveries(None, None, everything[1].delivery.id, 10)
    assert [e.delivery.id for e in older] == [e.delivery.id for e in everything[2:]]


@contract
async def test_a_webhook_delivery_is_compare_and_set_on_its_attempts(storage: Storage) -> None:
    storage.webhook_url = "https://global.example/hook"
    exp = await create(storage, "exp")
    await write(storage, logged(exp, "start"))
    [entry] = await storage.due_deliveries(T0, 10)
    queued = entry.delivery
    claim = claimed(queued, T0 + 5)
    assert await write(storage, lambda tx: tx.update_delivery(claim, 0))
    # A second sender that read the same row loses: the attempt count moved.
    assert not await write(storage, lambda tx: tx.update_delivery(claim, 0))
    assert await storage.due_deliveries(T0 + 5, 10) == []  # due again only at the retry time
    [retry] = await storage.due_deliveries(T0 + 15, 10)
    again = retry.delivery
    assert (again.attempts, again.next_attempt_at, again.last_attempt_at) == (1, T0 + 15, T0 + 5)
    # The outcome; what the delivery was queued with is never rewritten.
    done = msgspec.structs.replace(settled(claim, Answered(204), T0 + 6), url="https://elsewhere.example")
    assert await write(storage, lambda tx: tx.update_delivery(done, 1))
    assert not await write(storage, lambda tx: tx.update_delivery(done, 1))  # no longer pending
    [stored] = await storage.deliveries(exp.id, "delivered", None, 10)
    assert stored.delivery == msgspec.structs.replace(done, url=queued.url)
    assert stored.delivery.status == "delivered" and stored.delivery.last_status_code == 204
    assert await storage.deliveries(exp.id, "pending", None, 10) == []
    assert await storage.due_deliveries(T0 + 10_000, 10) == []
