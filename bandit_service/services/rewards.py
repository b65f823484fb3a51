"""Rewards: attribution to trials, idempotent retries, and the reward window.

A reward names its trial by decision id, or by experiment and unit (`trial: "unit"`). A decision
trial takes one reward; a unit trial several, combined by the experiment's `aggregate` and
counted as they arrive (the counters move by the change in the trial's value). Retries are
answered exactly as the first time (see `core.rewards`).

A trial is pending until its first reward arrives or its window (`reward_window_s`) closes; then
the scheduler counts it as the experiment's `missing` says (a value, or excluded). Pending trials
are not in the policy's statistics, so an arm that got recent traffic does not look worse for it.
A reward that arrives after the window is refused (422): the trial is settled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import msgspec

from bandit_service.core.commands import RewardIn
from bandit_service.core.definitions import OUTSIDE_PREFIX
from bandit_service.core.errors import DomainError, InvalidFieldError, NotFoundError
from bandit_service.core.model import RewardWrite, StoredReward
from bandit_service.core.rewards import RewardClaim, body_hash, check_target, judge_claim
from bandit_service.core.trials import combine
from bandit_service.ports import Clock, Storage, WriteTx

__all__ = ["MAX_BATCH", "RewardService", "expire_decisions", "record_rewards"]

MAX_BATCH = 1_000


def record_rewards(tx: WriteTx, items: Sequence[RewardClaim]) -> list[Any]:
    """Write job: find each claim's trial, judge it against the stored state, store and count the new ones."""
    claims: list[RewardClaim | DomainError] = []
    for claim in items:
        try:
            claims.append(claim if claim.decision_id is not None else _by_unit(tx, claim))
        except DomainError as exc:
            claims.append(exc)
    found = [c for c in claims if isinstance(c, RewardClaim)]
    decisions = tx.decision_contexts({c.decision_id for c in found if c.decision_id is not None})
    by_key = tx.rewards_by_key({c.idempotency_key for c in found if c.idempotency_key is not None})
    trials = {i: list(d.rewards) for i, d in decisions.items()}  # each trial's rewards, this batch's included
    out: list[Any] = []
    new: list[RewardWrite] = []
    for outcome in claims:
        if isinstance(outcome, DomainError):
            out.append(outcome)
            continue
        claim = outcome
        trial_id = claim.decision_id
        assert trial_id is not None  # every claim left names its trial
        decision = decisions.get(trial_id)
        prior = trials.get(trial_id, [])
        key = claim.idempotency_key
        try:
            repeated = judge_claim(claim, decision, by_key.get(key) if key else None, tuple(prior))
        except DomainError as exc:
            out.append(exc)
            continue
        if repeated is not None:
            out.append(repeated)
            continue
        assert decision is not None  # judge_claim refuses a claim without a decision
        before = prior[-1].counted_value if prior else None
        after = combine(decision.aggregate, [r.value for r in prior] + [claim.value])
        stored = StoredReward(
            decision_id=trial_id,
            seq=len(prior),
            experiment_id=decision.experiment_id,
            experiment_key=decision.experiment_key,
            arm=decision.arm,
            arm_name=decision.arm_name,
            weights_version=decision.weights_version,
            value=claim.value,
            metrics=dict(claim.metrics),
            idempotency_key=key,
            body_hash=claim.body_hash,
            created_at=claim.received_at,
            trial_value=after,
        )
        # Later claims in this batch must see this one (a retry racing its original, a second reward).
        prior.append(stored)
        trials[trial_id] = prior
        if key is not None:
            by_key[key] = stored
        new.append(RewardWrite(reward=stored, before=before, after=after))
        out.append(stored)
    tx.insert_rewards(new)
    return out


def _by_unit(tx: WriteTx, claim: RewardClaim) -> RewardClaim:
    """The claim with its decision id: the trial the unit is in (rewards sent by experiment and unit)."""
    assert claim.experiment is not None and claim.unit is not None  # check_target made sure
    experiment = tx.experiment(claim.experiment)
    if experiment is None:
        raise NotFoundError(f"no experiment with key {claim.experiment!r}", field="experiment")
    if experiment.config.trial != "unit":
        raise InvalidFieldError(
            f'experiment {claim.experiment!r} counts single decisions (trial "decision"): '
            "send the reward with its decision_id",
            field="unit",
        )
    assignment = tx.assignments(experiment.id, [claim.unit]).get(claim.unit)
    if assignment is None or assignment.trial_id is None:
        raise NotFoundError(
            f"unit {claim.unit!r} has no trial in experiment {claim.experiment!r} (no decision inside it yet)",
            field="unit",
        )
    return msgspec.structs.replace(claim, decision_id=assignment.trial_id)


def expire_decisions(tx: WriteTx, items: Sequence[Sequence[str]]) -> list[int]:
    """Write job: expire still-pending decisions and count them with their default reward."""
    return [len(tx.expire_decisions(ids)) for ids in items]


class RewardService:
    """POST /v1/rewards, POST /v1/rewards/batch, and the expiry of closed reward windows."""

    def __init__(self, storage: Storage, clock: Clock, expire_chunk: int) -> None:
        self._storage = storage
        self._clock = clock
        self._expire_chunk = expire_chunk

    async def record(self, data: RewardIn) -> StoredReward:
        """Record one reward (or answer a retry exactly as the first time)."""
        check_target(data)
        if data.decision_id is not None and data.decision_id.startswith(OUTSIDE_PREFIX):
            raise InvalidFieldError(
                f"decision {data.decision_id!r} was served outside the experiment (in_experiment false); "
                "its reward is not counted",
                field="decision_id",
            )
        claim = RewardClaim(
            decision_id=data.decision_id,
            experiment=data.experiment,
            unit=data.unit,
            value=float(data.reward),
            metrics=dict(data.metrics),
            idempotency_key=data.idempotency_key,
            body_hash=body_hash(data),
            received_at=self._clock.time(),
        )
        stored: StoredReward = await self._storage.write(record_rewards, claim)
        return stored

    async def record_batch(self, items: list[RewardIn]) -> list[StoredReward | DomainError]:
        """Record up to 1,000 rewards; each gets its own outcome (one refusal does not stop the rest)."""
        if not 1 <= len(items) <= MAX_BATCH:
            raise InvalidFieldError(f"a batch holds 1 to {MAX_BATCH} rewards, got {len(items)}", field="body")
        return list(await asyncio.gather(*(self._one(item) for item in items)))

    async def _one(self, data: RewardIn) -> StoredReward | DomainError:
        try:
            return await self.record(data)
        except DomainError as exc:
            return exc

    async def expire_pending(self, now: float) -> int:
        """Close the windows that have passed: count those decisions with the default reward."""
        total = 0
        while True:
            ids = await self._storage.due("expired", now, self._expire_chunk)
            if not ids:
                return total
            expired: int = await self._storage.write(expire_decisions, ids)
            total += expired
            if expired == 0 or len(ids) < self._expire_chunk:
                return total
