"""The storage contract for decisions SDKs log (memory twin, SQLite with and without speed-ups, PostgreSQL):
claimed ids, local and contradicted counters, and the write job that shares the server's decision path."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bandit_service.core.model import Assignment, Experiment, LocalDecision
from bandit_service.ports import Storage, WriteTx
from bandit_service.services.decision_log import LogOutcome, log_local_decisions
from bandit_service.services.decisions import Placement
from tests.storage.test_contract import T0, contract, create, write


def local(experiment: Experiment, decision_id: str, arm: int, contradicts: bool = False) -> LocalDecision:
    return LocalDecision(
        decision_id=decision_id, experiment_id=experiment.id, arm=arm, logged_at=T0, contradicts=contradicts
    )


def served(experiment: Experiment, decision_id: str, arm: int, unit: str | None = "u1") -> Placement:
    return Placement(
        decision_id=decision_id,
        experiment_id=experiment.id,
        unit=unit,
        sticky=True,
        trial="unit",
        arm=arm,
        propensity=0.5,
        weights_version=1,
        attributes={"country": "de"},
        created_at=T0,
        expires_at=T0 + 100,
        served=True,
    )


async def log(storage: Storage, placement: Placement) -> LogOutcome | None:
    outcome: LogOutcome | None = await storage.write(log_local_decisions, placement)
    return outcome


async def counters(storage: Storage, experiment: Experiment) -> list[tuple[int, ...]]:
    """Per arm: (local, contradicted, trials, exposures, units)."""
    return [(c.local, c.contradicted, c.trials, c.exposures, c.units) for c in await storage.arm_counts(experiment)]


async def assignment(storage: Storage, experiment: Experiment, unit: str) -> Assignment | None:
    found: dict[str, Assignment] = await write(storage, lambda tx: tx.assignments(experiment.id, [unit]))
    return found.get(unit)


@contract
async def test_claimed_ids_are_found_again_with_their_contradiction(storage: Storage) -> None:
    exp = await create(storage, status="active")
    rows = [local(exp, "d1", 0), local(exp, "d2", 1)]
    assert await write(storage, lambda tx: tx.claim_local_decisions(rows)) == {}
    await write(storage, lambda tx: tx.count_local_decisions([local(exp, "d1", 0), local(exp, "d2", 1, True)]))
    again = [local(exp, "d2", 1), local(exp, "d3", 1), local(exp, "d1", 0)]
    assert await write(storage, lambda tx: tx.claim_local_decisions(again)) == {"d1": False, "d2": True}
    assert await write(storage, lambda tx: tx.claim_local_decisions([local(exp, "d3", 0)])) == {"d3": False}
    counts = await storage.arm_counts(exp)
    assert [(c.local, c.contradicted) for c in counts] == [(1, 0), (1, 1)]
    data = await storage.report_data(exp)
    assert (data.local, data.contradicted) == ((1, 1), (0, 1))


@contract
async def test_an_experiment_without_local_decisions_reports_none(storage: Storage) -> None:
    exp = await create(storage, status="active")
    data = await storage.report_data(exp)
    assert (data.local, data.contradicted) == ((), ())
    assert [(c.local, c.contradicted) for c in await storage.arm_counts(exp)] == [(0, 0), (0, 0)]


@contract
async def test_a_job_that_fails_after_claiming_leaves_no_claim(storage: Storage) -> None:
    exp = await create(storage, status="active")

    def claim_then_fail(tx: WriteTx) -> Any:
        tx.claim_local_decisions([local(exp, "d1", 0)])
        raise ValueError("refused after the claim")

    with pytest.raises(ValueError, match="after the claim"):
        await write(storage, claim_then_fail)
    assert await write(storage, lambda tx: tx.claim_local_decisions([local(exp, "d1", 0)])) == {}


@contract
async def test_logged_decisions_keep_the_sticky_arm_and_count_once(storage: Storage) -> None:
    exp = await create(storage, status="active")
    assert await log(storage, served(exp, "d1", 1)) == LogOutcome(duplicate=False, contradicts=False)
    kept = await assignment(storage, exp, "u1")
    assert kept is not None and (kept.arm, kept.trial_id) == (1, "d1")  # a new unit gets the served arm
    # The SDK's sticky store disagrees: arm 0 is logged and counted, the stored arm 1 stays.
    assert await log(storage, served(exp, "d2", 0)) == LogOutcome(duplicate=False, contradicts=True)
    assert (await assignment(storage, exp, "u1")) == kept
    expected = [(1, 1, 0, 1, 0), (1, 0, 1, 1, 1)]  # arm 0: an exposure of u1's trial; arm 1: the trial
    assert await counters(storage, exp) == expected
    # Retried (an answer lost on the way): answered as the first time, nothing counted again.
    assert await log(storage, served(exp, "d1", 1)) == LogOutcome(duplicate=True, contradicts=False)
    assert await log(storage, served(exp, "d2", 0)) == LogOutcome(duplicate=True, contradicts=True)
    assert await counters(storage, exp) == expected


@contract
async def test_the_same_id_twice_in_one_transaction_counts_once(storage: Storage) -> None:
    exp = await create(storage, status="active")
    # Concurrent writes: the SQL writer runs them as one job call, the twin one after the other.
    outcomes = await asyncio.gather(*(log(storage, served(exp, "d1", 1, unit=None)) for _ in range(3)))
    assert sorted(o.duplicate for o in outcomes if o is not None) == [False, True, True]
    assert await counters(storage, exp) == [(0, 0, 0, 0, 0), (1, 0, 1, 1, 0)]


@contract
async def test_a_decision_of_an_experiment_no_longer_active_is_not_claimed(storage: Storage) -> None:
    exp = await create(storage, status="paused")
    assert await log(storage, served(exp, "d1", 1)) is None
    assert await write(storage, lambda tx: tx.claim_local_decisions([local(exp, "d1", 1)])) == {}
    assert await counters(storage, exp) == [(0, 0, 0, 0, 0), (0, 0, 0, 0, 0)]
