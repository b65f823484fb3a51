"""Reward attribution: what a reward claim is, and whether the stored state takes it.

A claim names its trial by decision id, or by experiment and unit (the unit's current trial, in a
`trial: "unit"` experiment). It is judged against the trial and its earlier rewards:

- A decision trial takes one reward: the same body again is a retry (answered as the first time,
  whatever the idempotency key), a different one a 409.
- A unit trial takes several rewards, combined by the experiment's `aggregate`: a reward with a
  new idempotency key is a new reward; without a key, a body equal to one of the trial's earlier
  rewards is a retry of it (send keys to count equal rewards twice).
- Reusing an idempotency key with a different body is a 409; a new reward for a trial of a
  completed experiment a 409 (completion makes the counts final; a paused experiment still takes
  the rewards of trials opened while it was active); a reward after its window a 422; a non-0/1
  reward on a Bernoulli experiment a 422.

Pure: the write job reads the state.
"""

from __future__ import annotations

import hashlib

import msgspec

from bandit_service.core.commands import RewardIn
from bandit_service.core.errors import ConflictError, InvalidFieldError, NotFoundError, RewardWindowClosedError
from bandit_service.core.model import DecisionContext, StoredReward
from bandit_service.core.timestamps import to_datetime

__all__ = ["RewardClaim", "body_hash", "check_target", "judge_claim"]


class RewardClaim(msgspec.Struct, frozen=True, kw_only=True):
    """A reward as received, with the hash that recognises a retry.

    `decision_id` is None until the write job has found the trial of `experiment` and `unit`.
    """

    decision_id: str | None
    experiment: str | None = None
    unit: str | None = None
    value: float
    metrics: dict[str, float]
    idempotency_key: str | None
    body_hash: str
    received_at: float

    @property
    def field(self) -> str:
        """The request field that names the trial (for problems)."""
        return "unit" if self.decision_id is None or self.unit is not None else "decision_id"


def check_target(data: RewardIn) -> None:
    """Refuse a reward that names its trial both ways, or neither, or by experiment without unit."""
    by_unit = data.experiment is not None or data.unit is not None
    if data.decision_id is not None and by_unit:
        raise InvalidFieldError(
            "give decision_id, or experiment and unit, not both", field="experiment" if data.experiment else "unit"
        )
    if data.decision_id is None and not by_unit:
        raise InvalidFieldError("give the decision_id, or experiment and unit", field="decision_id")
    if by_unit and (data.experiment is None or data.unit is None):
        missing = "experiment" if data.experiment is None else "unit"
        raise InvalidFieldError(f"a reward by unit needs both experiment and unit; {missing} is missing", field=missing)


def body_hash(data: RewardIn) -> str:
    """blake2b of the canonical (trial reference, reward, sorted metrics): what makes two bodies 'the same'."""
    target: object = data.decision_id if data.decision_id is not None else [data.experiment, data.unit]
    canonical = msgspec.json.encode([target, float(data.reward), sorted(data.metrics.items())])
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


def judge_claim(
    claim: RewardClaim,
    decision: DecisionContext | None,
    prior_by_key: StoredReward | None,
    prior: tuple[StoredReward, ...],
) -> StoredReward | None:
    """The earlier reward this claim repeats, None if it is new, or a DomainError if it is refused.

    `prior` holds the trial's rewards so far (stored, and earlier in this batch), by seq.
    """
    if prior_by_key is not None:
        if prior_by_key.body_hash == claim.body_hash:
            return prior_by_key
        raise ConflictError(
            f"idempotency_key {claim.idempotency_key!r} was already used with a different body",
            field="idempotency_key",
        )
    if decision is None:
        raise NotFoundError(f"no decision with id {claim.decision_id!r}", field="decision_id")
    if decision.trial == "unit":
        if claim.idempotency_key is None:
            repeated = next((r for r in prior if r.body_hash == claim.body_hash), None)
            if repeated is not None:
                return repeated
    elif prior:
        if prior[0].body_hash == claim.body_hash:
            return prior[0]
        raise ConflictError(
            f"decision {claim.decision_id!r} already has a reward ({prior[0].value}); a decision takes one reward "
            '(an experiment with trial "unit" combines several)',
            field="decision_id",
        )
    if decision.experiment_status == "completed":
        raise ConflictError(
            f"experiment {decision.experiment_key!r} is completed: its counts are final and take no new rewards",
            field=claim.field,
        )
    if decision.status in ("expired", "excluded") or claim.received_at >= decision.expires_at:
        closed = to_datetime(decision.expires_at).isoformat()
        raise RewardWindowClosedError(
            f"the reward window of trial {decision.decision_id!r} closed at {closed}; "
            "the trial counts as the experiment's `missing` says",
            field=claim.field,
        )
    if decision.reward_kind == "bernoulli" and claim.value not in (0.0, 1.0):
        raise InvalidFieldError(
            f"experiment {decision.experiment_key!r} has bernoulli rewards: 0 or 1, got {claim.value}", field="reward"
        )
    return None
