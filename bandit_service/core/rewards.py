"""Reward attribution: what a reward claim is, and whether the stored state takes it.

A claim is judged against its decision and any earlier reward (by decision or idempotency key):
an exact retry gets the earlier answer, a conflicting one a 409, a new reward for a decision of a
completed experiment a 409 (completion makes the counts final; a paused experiment still takes
the rewards of decisions made while it was active), a reward after its window a 422, a non-0/1
reward on a Bernoulli experiment a 422. Pure: the write job reads the state.
"""

from __future__ import annotations

import hashlib

import msgspec

from bandit_service.core.commands import RewardIn
from bandit_service.core.errors import ConflictError, InvalidFieldError, NotFoundError, RewardWindowClosedError
from bandit_service.core.model import DecisionContext, StoredReward
from bandit_service.core.timestamps import to_datetime

__all__ = ["RewardClaim", "body_hash", "judge_claim"]


class RewardClaim(msgspec.Struct, frozen=True, kw_only=True):
    """A reward as received, with the hash that recognises a retry."""

    decision_id: str
    value: float
    metrics: dict[str, float]
    idempotency_key: str | None
    body_hash: str
    received_at: float


def body_hash(data: RewardIn) -> str:
    """blake2b of the canonical (decision_id, reward, sorted metrics): what makes two bodies 'the same'."""
    canonical = msgspec.json.encode([data.decision_id, float(data.reward), sorted(data.metrics.items())])
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


def judge_claim(
    claim: RewardClaim,
    decision: DecisionContext | None,
    prior_by_key: StoredReward | None,
    prior: StoredReward | None,
) -> StoredReward | None:
    """The earlier reward this claim repeats, None if it is new, or a DomainError if it is refused."""
    if prior_by_key is not None:
        if prior_by_key.body_hash == claim.body_hash:
            return prior_by_key
        raise ConflictError(
            f"idempotency_key {claim.idempotency_key!r} was already used with a different body",
            field="idempotency_key",
        )
    if decision is None:
        raise NotFoundError(f"no decision with id {claim.decision_id!r}", field="decision_id")
    if prior is not None:
        if prior.body_hash == claim.body_hash:
            return prior
        raise ConflictError(
            f"decision {claim.decision_id!r} already has a reward ({prior.value}); a decision takes one reward",
            field="decision_id",
        )
    if decision.experiment_status == "completed":
        raise ConflictError(
            f"experiment {decision.experiment_key!r} is completed: its counts are final and take no new rewards",
            field="decision_id",
        )
    if decision.status == "expired" or claim.received_at >= decision.expires_at:
        closed = to_datetime(decision.expires_at).isoformat()
        raise RewardWindowClosedError(
            f"the reward window of decision {claim.decision_id!r} closed at {closed}; "
            "the decision counts with the experiment's default_reward",
            field="decision_id",
        )
    if decision.reward_kind == "bernoulli" and claim.value not in (0.0, 1.0):
        raise InvalidFieldError(
            f"experiment {decision.experiment_key!r} has bernoulli rewards: 0 or 1, got {claim.value}", field="reward"
        )
    return None
