"""Decisions SDKs evaluated locally and log in batches (POST /v1/decisions/log).

Each item is checked against the cached experiment (known, active, its arm, a weights version it
has had), then goes through the server's own write job (`services.decisions.log_decisions`) as a
`served` placement: it opens a trial or is an exposure of its unit's open trial, stores a new
unit's sticky assignment, and is counted, with the arm the SDK served, because that is the arm
the app used. A unit's stored sticky arm is never replaced; where it differs from the logged arm
the item answers `contradicts: true` and the arm's `contradicted` counter moves (the report says
how many).

Idempotent by decision id: the job records each id in `logged_decisions` (insert or ignore) in
the same transaction as the decision's writes, so a batch retried after a lost answer finds its
ids and counts nothing twice, on any replica; it answers 200 and the first answer's `contradicts`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec

from bandit_service.core.definitions import OUTSIDE_PREFIX, LoggedDecisionIn
from bandit_service.core.errors import DomainError, InvalidFieldError, NotFoundError, UnavailableError
from bandit_service.core.model import Experiment, LocalDecision
from bandit_service.ports import Clock, Storage, WriteTx
from bandit_service.services.cache import ExperimentCache
from bandit_service.services.decisions import Placement, log_decisions

__all__ = ["DecisionLogService", "LogOutcome", "log_local_decisions"]


class LogOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What one logged decision answers: counted now, or a duplicate of one logged before, and whether its
    arm contradicts the unit's stored sticky arm."""

    duplicate: bool
    contradicts: bool


def log_local_decisions(tx: WriteTx, items: Sequence[Placement]) -> list[LogOutcome | None]:
    """Write job: claim each decision id, then log and count the new ones like server decisions.

    None for an item whose experiment is no longer active as this transaction commits (nothing is
    stored for it). An id sent twice, in this call or before, is a duplicate: nothing is counted again.
    """
    active = tx.active_experiments({p.experiment_id for p in items})
    firsts: dict[str, Placement] = {}
    for p in items:
        if p.experiment_id in active:
            firsts.setdefault(p.decision_id, p)
    claims = [
        LocalDecision(decision_id=p.decision_id, experiment_id=p.experiment_id, arm=p.arm, logged_at=p.created_at)
        for p in firsts.values()
    ]
    before = tx.claim_local_decisions(claims)
    new = [p for p in firsts.values() if p.decision_id not in before]
    outcomes = {key: LogOutcome(duplicate=True, contradicts=flag) for key, flag in before.items()}
    counted = []
    for p, logged in zip(new, log_decisions(tx, new), strict=True):
        if logged is None:  # cannot happen: the statuses read above hold until commit
            raise RuntimeError(f"experiment {p.experiment_id} left active within one transaction")
        outcomes[p.decision_id] = LogOutcome(duplicate=False, contradicts=logged.contradicts)
        counted.append(
            LocalDecision(
                decision_id=p.decision_id,
                experiment_id=p.experiment_id,
                arm=p.arm,
                logged_at=p.created_at,
                contradicts=logged.contradicts,
            )
        )
    tx.count_local_decisions(counted)
    out: list[LogOutcome | None] = []
    for p in items:
        outcome = outcomes.get(p.decision_id) if p.experiment_id in active else None
        if outcome is not None and firsts[p.decision_id] is not p:  # the same id again in this call
            outcome = msgspec.structs.replace(outcome, duplicate=True)
        out.append(outcome)
    return out


class DecisionLogService:
    """POST /v1/decisions/log."""

    def __init__(self, storage: Storage, cache: ExperimentCache, clock: Clock) -> None:
        self._storage = storage
        self._cache = cache
        self._clock = clock

    async def log(self, items: Sequence[LoggedDecisionIn]) -> list[LogOutcome | DomainError]:
        """Log each decision (one refusal never stops the others); outcomes in input order.

        A database that cannot take writes refuses the whole call (503, retried by the SDK whole).
        """
        return list(await asyncio.gather(*(self._one(item) for item in items)))

    async def _one(self, item: LoggedDecisionIn) -> LogOutcome | DomainError:
        try:
            return await self._log(item)
        except UnavailableError:
            raise
        except DomainError as exc:
            return exc

    async def _log(self, item: LoggedDecisionIn) -> LogOutcome:
        if item.decision_id.startswith(OUTSIDE_PREFIX):
            raise InvalidFieldError(
                f"decision id {item.decision_id!r} starts with {OUTSIDE_PREFIX!r}, the mark of a decision made "
                "outside the experiment: such decisions are not logged",
                field="decision_id",
            )
        experiment = await self._experiment(item)
        arm = _arm_index(experiment, item.arm)
        if not 1 <= item.weights_version <= experiment.weights_version:
            raise InvalidFieldError(
                f"experiment {item.experiment!r} has had weights versions 1 to {experiment.weights_version}, "
                f"not {item.weights_version}",
                field="weights_version",
            )
        now = self._clock.time()
        placement = Placement(
            decision_id=item.decision_id,
            experiment_id=experiment.id,
            unit=item.unit,
            sticky=experiment.config.sticky,
            trial=experiment.config.trial,
            arm=arm,
            propensity=item.propensity,
            weights_version=item.weights_version,
            attributes=dict(item.attributes),
            created_at=now,
            expires_at=now + experiment.config.reward_window_s,
            served=True,
        )
        outcome: LogOutcome | None = await self._storage.write(log_local_decisions, placement)
        if outcome is None:
            # Paused or completed since this process cached it: nothing was stored.
            fresh = await self._cache.reload(item.experiment)
            raise _not_active(fresh if fresh is not None else experiment)
        return outcome

    async def _experiment(self, item: LoggedDecisionIn) -> Experiment:
        """The active experiment the item names; read again when the cache may be behind the SDK's definitions."""
        experiment = await self._cache.get(item.experiment)
        if experiment is not None and (
            experiment.status != "active" or item.weights_version > experiment.weights_version
        ):
            # The SDK may have read a change this process has not polled yet (another replica served it).
            experiment = await self._cache.reload(item.experiment)
        if experiment is None:
            raise NotFoundError(f"no experiment with key {item.experiment!r}", field="experiment")
        if experiment.status != "active":
            raise _not_active(experiment)
        return experiment


def _arm_index(experiment: Experiment, arm: str) -> int:
    try:
        return experiment.arm_index(arm)
    except ValueError:
        names = ", ".join(experiment.arm_names)
        raise InvalidFieldError(
            f"experiment {experiment.key!r} has no arm {arm!r} (its arms: {names})", field="arm"
        ) from None


def _not_active(experiment: Experiment) -> InvalidFieldError:
    return InvalidFieldError(
        f"experiment {experiment.key!r} is {experiment.status}: only decisions of an active experiment are logged",
        field="experiment",
    )
