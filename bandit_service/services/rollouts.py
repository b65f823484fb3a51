"""Rollout controls: exposure, exposure ramps and gradual completion, advanced by the scheduler under guardrails.

A ramp's steps and a completion's shares advance one step per scheduler tick once the step's
hold is over, and only while every guardrail holds: when a step is due, `advance_rollouts(now)`
asks the report side for a breach (`guardrail_breach(key)`, None when all hold) before it moves;
a breach stops the plans and pauses the experiment with the reason ("guarded rollout: ...").
Guardrails are looked at once per step, not on every tick: the report's guardrail test has a
fixed-sample level, so looking every few seconds would multiply false stops (peeking), while
one look per step keeps the chance of a false stop below (number of steps) x alpha.

While a completion shifts traffic to the winner the experiment keeps serving (status active,
sticky units keep their arm), scheduled and manual reweights are suspended and manual weights
refused, so the plan alone moves the weights; each step is a new weights version (reason
"shift"), so analysis sees the change like any other. When the last step's hold is over the
experiment is completed with the winner. Cancelling the completion keeps the weights where the
plan left them and lets the policy reweight again from the next interval.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from bandit_service.core.commands import CompleteIn, ExposureIn, RampIn
from bandit_service.core.errors import (
    ConflictError,
    DomainError,
    IllegalTransitionError,
    InvalidFieldError,
    NotFoundError,
)
from bandit_service.core.events import event
from bandit_service.core.model import Experiment, ExperimentPlan, Rollout, RolloutKind
from bandit_service.core.plan_changes import (
    Plans,
    PlanWrite,
    cancel,
    move,
    set_ramp,
    start_completion,
)
from bandit_service.core.plans import Hold, PlanError, PlanStep, Stop, advance, validate_plan
from bandit_service.core.timestamps import to_datetime
from bandit_service.ports import Clock, Storage, WriteTx
from bandit_service.services.cache import ExperimentCache
from bandit_service.services.experiments import EditedExperiment, ExperimentEdit, ExperimentService, edit_experiments
from bandit_service.services.lookup import load_experiment
from policies import ArmStats

__all__ = ["GuardrailBreach", "RolloutService"]

log = logging.getLogger(__name__)

GuardrailBreach = Callable[[str], Awaitable[str | None]]
"""Given an experiment key: None when every guardrail holds (or none is set), else why one is breached."""


def _is_due(plan: Rollout, now: float) -> bool:
    """Whether a plan would move now if its guardrails hold (running, and its step's hold is over)."""
    return not isinstance(advance(plan.steps, plan.state, to_datetime(now), None), Hold)


def _plan(steps: Sequence[PlanStep], name: str, value_name: str) -> tuple[PlanStep, ...]:
    try:
        validate_plan(steps, name, value_name)
    except PlanError as exc:
        raise InvalidFieldError(str(exc), field=exc.field) from exc
    return tuple(steps)


def _set_exposure(experiment: Experiment, exposure: float, now: float, actor: str) -> EditedExperiment:
    if experiment.status == "completed":
        raise IllegalTransitionError(
            f"exposure can only change before the experiment is completed; {experiment.key!r} is completed",
            current_status=experiment.status,
        )
    changed = msgspec.structs.replace(
        experiment, config=msgspec.structs.replace(experiment.config, exposure=exposure), updated_at=now
    )
    entry = event(
        experiment.id, "set_exposure", {"exposure": experiment.config.exposure}, {"exposure": exposure}, now, actor
    )
    return EditedExperiment(experiment=changed, event=entry)


class PlanResult(msgspec.Struct, frozen=True, kw_only=True):
    """The experiment and its plans after a change was stored."""

    experiment: Experiment
    plans: dict[str, Rollout]


class PlanEdit(msgspec.Struct, frozen=True):
    """A change to the plans of experiment `key`, as a pure function of its current state."""

    key: str
    change: Callable[[Experiment, Plans], PlanWrite | None]


def edit_plans(tx: WriteTx, items: Sequence[PlanEdit]) -> list[Any]:
    """Write job: apply each change to the current state; a lost compare-and-set undoes the item (raises)."""
    out: list[Any] = []
    for item in items:
        current = tx.experiment(item.key)
        if current is None:
            out.append(NotFoundError(f"no experiment with key {item.key!r}", field="key"))
            continue
        plans = tx.rollouts(current.id)
        try:
            write = item.change(current, plans)
        except DomainError as exc:
            out.append(exc)
            continue
        if write is None:
            out.append(None)
            continue
        experiment = current
        if write.experiment is not None:
            updated = tx.update_experiment(write.experiment)
            if updated is None:
                raise ConflictError(f"experiment {item.key!r} changed concurrently; retry", field="key")
            experiment = updated
        stored = dict(plans)
        for plan in write.plans:
            saved = tx.save_rollout(plan)
            if saved is None:
                raise ConflictError(f"the {plan.kind} of {item.key!r} changed concurrently; retry", field="key")
            stored[plan.kind] = saved
        if write.weights is not None:
            tx.append_weights(write.weights)
        for entry in write.events:
            tx.log_event(entry)
        out.append(PlanResult(experiment=experiment, plans=stored))
    return out


class RolloutService:
    """Operator rollout actions and the scheduler's step."""

    def __init__(
        self,
        storage: Storage,
        cache: ExperimentCache,
        experiments: ExperimentService,
        clock: Clock,
        guardrail_breach: GuardrailBreach,
    ) -> None:
        self._storage = storage
        self._cache = cache
        self._experiments = experiments
        self._clock = clock
        self._guardrail_breach = guardrail_breach

    async def set_exposure(self, key: str, data: ExposureIn, *, actor: str) -> Experiment:
        """Set the exposure by hand (refused while a ramp drives it)."""
        now = self._clock.time()
        updated: Experiment = await self._storage.write(
            edit_experiments, ExperimentEdit(key, lambda e: _set_exposure(e, data.exposure, now, actor), actor)
        )
        self._cache.put(updated)
        return updated

    async def set_ramp(self, key: str, data: RampIn, *, actor: str) -> ExperimentPlan:
        """Start or replace the exposure ramp; its first step applies at once."""
        steps = _plan([PlanStep(s.exposure, s.hold_s) for s in data.steps], "steps", "exposure")
        now = self._clock.time()
        result = await self._edit(key, lambda e, plans: set_ramp(e, plans, steps, now, actor))
        return ExperimentPlan(experiment=result.experiment, plan=result.plans["ramp"])

    async def ramp(self, key: str) -> ExperimentPlan:
        """The exposure ramp and where it stands."""
        return await self._plan_of(key, "ramp")

    async def cancel_ramp(self, key: str, *, actor: str) -> ExperimentPlan:
        """Stop a running ramp; the exposure stays at the last step reached (the plan's detail says so)."""
        now = self._clock.time()
        result = await self._edit(key, lambda e, plans: cancel(e, plans, "ramp", now, actor))
        return ExperimentPlan(experiment=result.experiment, plan=result.plans["ramp"])

    async def complete(self, key: str, data: CompleteIn | None, *, actor: str) -> Experiment:
        """Complete at once, or with a plan: shift traffic to the winner step by step, then complete."""
        if data is None or data.plan is None:
            return await self._experiments.complete(key, data, actor=actor)
        steps = _plan([PlanStep(s.share, s.hold_s) for s in data.plan], "plan", "share")
        winner = data.winner
        if winner is None:
            raise InvalidFieldError("a gradual completion needs a winner to shift traffic to", field="winner")
        stats = await self._stats(key)
        now = self._clock.time()
        result = await self._edit(key, lambda e, plans: start_completion(e, plans, winner, steps, stats, now, actor))
        return result.experiment

    async def completion(self, key: str) -> ExperimentPlan:
        """The gradual completion and where it stands."""
        return await self._plan_of(key, "completion")

    async def cancel_completion(self, key: str, *, actor: str) -> ExperimentPlan:
        """Stop shifting to the winner; weights stay, scheduled reweights resume."""
        now = self._clock.time()
        result = await self._edit(key, lambda e, plans: cancel(e, plans, "completion", now, actor))
        return ExperimentPlan(experiment=result.experiment, plan=result.plans["completion"])

    async def advance_rollouts(self, now: float, limit: int = 100) -> int:
        """The scheduler's tick: check guardrails and advance every running plan of active experiments once."""
        moved = 0
        for key in await self._storage.due("rollouts", now, limit):
            experiment = await self._storage.experiment(key)
            if experiment is None or experiment.status != "active":
                continue  # changed since the list was read
            plans = await self._storage.rollouts(experiment.id)
            due = [p for k, p in sorted(plans.items()) if _is_due(p, now)]
            if not due:
                continue
            breach = await self._guardrail_breach(key)
            for plan in due:
                if await self.advance_plan(experiment, plan, now, breach):
                    moved += 1
                if breach is not None:
                    break  # the stop pauses the experiment and stops all of its plans at once
        return moved

    async def advance_plan(self, experiment: Experiment, plan: Rollout, now: float, breach: str | None) -> bool:
        """Take the plan's next step as read (compare-and-set): False if nothing to do or another replica won."""
        action = advance(plan.steps, plan.state, to_datetime(now), breach)
        if isinstance(action, Hold):
            return False
        stats: tuple[ArmStats, ...] = ()
        if plan.kind == "completion":
            counts = await self._storage.arm_counts(experiment)
            stats = tuple(c.stats for c in counts)
        kind, revision = plan.kind, plan.revision
        try:
            result = await self._storage.write(
                edit_plans,
                PlanEdit(experiment.key, lambda e, plans: move(e, plans, kind, revision, action, stats, now)),
            )
        except ConflictError:
            return False  # a concurrent writer moved the experiment or the plan first
        if result is None:
            return False
        if isinstance(action, Stop):
            log.warning("experiment %r paused by its guarded rollout: %s", experiment.key, action.reason)
        self._cache.put(result.experiment)
        return True

    async def _edit(self, key: str, change: Callable[[Experiment, dict[str, Rollout]], PlanWrite | None]) -> PlanResult:
        result: PlanResult = await self._storage.write(edit_plans, PlanEdit(key, change))
        self._cache.put(result.experiment)
        return result

    async def _plan_of(self, key: str, kind: RolloutKind) -> ExperimentPlan:
        experiment = await load_experiment(self._storage, key)
        plan = (await self._storage.rollouts(experiment.id)).get(kind)
        if plan is None:
            raise NotFoundError(f"experiment {key!r} has no {kind}", field=kind)
        return ExperimentPlan(experiment=experiment, plan=plan)

    async def _stats(self, key: str) -> tuple[ArmStats, ...]:
        experiment = await load_experiment(self._storage, key)
        counts = await self._storage.arm_counts(experiment)
        return tuple(c.stats for c in counts)
