"""Rewards: attribution to decisions, idempotent retries, and the reward window.

A decision takes at most one reward. Sending the same body again (same decision, reward and
metrics) is a retry: it is counted once and answered exactly as the first time, whatever the
idempotency key. Reusing an idempotency key with a different body is 409, and so is a second,
different reward for a decision that already has one.

A decision is pending until its reward arrives or its window (`reward_window_s`) closes; then
the scheduler counts it with the experiment's `default_reward`. Pending decisions are not in the
policy's statistics, so an arm that got recent traffic does not look worse for it. A reward
that arrives after the window is refused (422): the decision was (or is about to be) counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from bandit_service.core.commands import RewardIn
from bandit_service.core.errors import (
    DomainError,
    InvalidFieldError,
)
from bandit_service.core.model import StoredReward
from bandit_service.core.rewards import RewardClaim, body_hash, judge_claim
from bandit_service.ports import Clock, Storage, WriteTx
from bandit_service.services.decisions import OUTSIDE_PREFIX

__all__ = ["MAX_BATCH", "RewardService", "expire_decisions", "record_rewards"]

MAX_BATCH = 1_000


def record_rewards(tx: WriteTx, items: Sequence[RewardClaim]) -> list[Any]:
    """Write job: judge every claim against the stored state, store and count the new ones."""
    decisions = tx.decision_contexts({c.decision_id for c in items})
    by_key = tx.rewards_by_key({c.idempotency_key for c in items if c.idempotency_key is not None})
    by_decision = {i: d.reward for i, d in decisions.items() if d.reward is not None}
    out: list[Any] = []
    new: list[StoredReward] = []
    for claim in items:
        decision = decisions.get(claim.decision_id)
        key = claim.idempotency_key
        try:
            prior = judge_claim(claim, decision, by_key.get(key) if key else None, by_decision.get(claim.decision_id))
        except DomainError as exc:
            out.append(exc)
            continue
        if prior is not None:
            out.append(prior)
            continue
        assert decision is not None  # judge_claim refuses a claim without a decision
        stored = StoredReward(
            decision_id=claim.decision_id,
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
        )
        # Later claims in this batch must see this one (a retry racing its original).
        by_decision[claim.decision_id] = stored
        if key is not None:
            by_key[key] = stored
        new.append(stored)
        out.append(stored)
    tx.insert_rewards(new)
    return out


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
        if data.decision_id.startswith(OUTSIDE_PREFIX):
            raise InvalidFieldError(
                f"decision {data.decision_id!r} was served outside the experiment (in_experiment false); "
                "its reward is not counted",
                field="decision_id",
            )
        claim = RewardClaim(
            decision_id=data.decision_id,
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
