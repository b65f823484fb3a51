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

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

import msgspec

from bandit_service.cache import ExperimentCache
from bandit_service.clock import Clock, to_datetime
from bandit_service.domain.audit import event
from bandit_service.domain.experiments import ExperimentService, Mutated, Mutation, mutate_experiments
from bandit_service.domain.model import Experiment, Rollout, RolloutKind
from bandit_service.domain.plan_changes import (
    PlanEdit,
    PlanResult,
    PlanWrite,
    cancel,
    edit_plans,
    move,
    set_ramp,
    start_completion,
)
from bandit_service.domain.views import experiment_out
from bandit_service.errors import ConflictError, IllegalTransitionError, InvalidFieldError, NotFoundError
from bandit_service.rollout import Hold, PlanError, PlanState, PlanStep, Stop, advance, validate_plan
from bandit_service.schemas import (
    CompleteIn,
    CompletionOut,
    ExperimentOut,
    ExposureIn,
    RampIn,
    RampOut,
    RampStepIn,
    ShiftStepIn,
)
from bandit_service.storage.repository import Repository
from bandit_service.writer import GroupCommitWriter
from policies import ArmStats

__all__ = ["GuardrailBreach", "RolloutService", "completion_out", "ramp_out"]

log = logging.getLogger(__name__)

GuardrailBreach = Callable[[str], Awaitable[str | None]]
"""Given an experiment key: None when every guardrail holds (or none is set), else why one is breached."""


def _next_step_at(steps: Sequence[PlanStep], state: PlanState) -> datetime | None:
    hold = steps[state.step].hold_s
    if state.status != "running" or hold is None:
        return None
    return state.step_started_at + timedelta(seconds=hold)


def ramp_out(experiment: Experiment, plan: Rollout) -> RampOut:
    """A ramp as the API shows it."""
    return RampOut(
        experiment=experiment.key,
        steps=[RampStepIn(exposure=s.value, hold_s=s.hold_s) for s in plan.steps],
        step=plan.state.step,
        step_started_at=plan.state.step_started_at,
        next_step_at=_next_step_at(plan.steps, plan.state),
        status=plan.state.status,
        reason=plan.state.reason,
        exposure=experiment.config.exposure,
        created_at=to_datetime(plan.created_at),
        updated_at=to_datetime(plan.updated_at),
    )


def completion_out(experiment: Experiment, plan: Rollout) -> CompletionOut:
    """A gradual completion as the API shows it."""
    return CompletionOut(
        experiment=experiment.key,
        winner=plan.winner or "",
        plan=[ShiftStepIn(share=s.value, hold_s=s.hold_s) for s in plan.steps],
        step=plan.state.step,
        step_started_at=plan.state.step_started_at,
        next_step_at=_next_step_at(plan.steps, plan.state),
        status=plan.state.status,
        reason=plan.state.reason,
        weights=dict(zip(experiment.arm_names, experiment.weights, strict=True)),
        created_at=to_datetime(plan.created_at),
        updated_at=to_datetime(plan.updated_at),
    )


def _is_due(plan: Rollout, now: float) -> bool:
    """Whether a plan would move now if its guardrails hold (running, and its step's hold is over)."""
    return not isinstance(advance(plan.steps, plan.state, to_datetime(now), None), Hold)


def _plan(steps: Sequence[PlanStep], name: str, value_name: str) -> tuple[PlanStep, ...]:
    try:
        validate_plan(steps, name, value_name)
    except PlanError as exc:
        raise InvalidFieldError(str(exc), field=exc.field) from exc
    return tuple(steps)


def _set_exposure(experiment: Experiment, exposure: float, now: float) -> Mutated:
    if experiment.status == "completed":
        raise IllegalTransitionError(
            f"exposure can only change before the experiment is completed; {experiment.key!r} is completed",
            current_status=experiment.status,
        )
    changed = msgspec.structs.replace(
        experiment, config=msgspec.structs.replace(experiment.config, exposure=exposure), updated_at=now
    )
    entry = event(experiment.id, "set_exposure", {"exposure": experiment.config.exposure}, {"exposure": exposure}, now)
    return Mutated(experiment=changed, event=entry)


class RolloutService:
    """Operator rollout actions and the scheduler's step."""

    def __init__(
        self,
        repository: Repository,
        writer: GroupCommitWriter,
        cache: ExperimentCache,
        experiments: ExperimentService,
        clock: Clock,
        guardrail_breach: GuardrailBreach,
    ) -> None:
        self._repository = repository
        self._writer = writer
        self._cache = cache
        self._experiments = experiments
        self._clock = clock
        self._guardrail_breach = guardrail_breach

    async def set_exposure(self, key: str, data: ExposureIn) -> ExperimentOut:
        """Set the exposure by hand (refused while a ramp drives it)."""
        now = self._clock.time()
        updated: Experiment = await self._writer.submit(
            mutate_experiments, Mutation(key, lambda e: _set_exposure(e, data.exposure, now))
        )
        self._cache.put(updated)
        return experiment_out(updated)

    async def set_ramp(self, key: str, data: RampIn) -> RampOut:
        """Start or replace the exposure ramp; its first step applies at once."""
        steps = _plan([PlanStep(s.exposure, s.hold_s) for s in data.steps], "steps", "exposure")
        now = self._clock.time()
        result = await self._edit(key, lambda e, plans: set_ramp(e, plans, steps, now))
        return ramp_out(result.experiment, result.plans["ramp"])

    async def ramp(self, key: str) -> RampOut:
        """The exposure ramp and where it stands."""
        experiment, plan = await self._plan_of(key, "ramp")
        return ramp_out(experiment, plan)

    async def cancel_ramp(self, key: str) -> RampOut:
        """Stop a running ramp; the exposure stays where it is."""
        now = self._clock.time()
        result = await self._edit(key, lambda e, plans: cancel(e, plans, "ramp", now))
        return ramp_out(result.experiment, result.plans["ramp"])

    async def complete(self, key: str, data: CompleteIn | None) -> ExperimentOut:
        """Complete at once, or with a plan: shift traffic to the winner step by step, then complete."""
        if data is None or data.plan is None:
            return await self._experiments.complete(key, data)
        steps = _plan([PlanStep(s.share, s.hold_s) for s in data.plan], "plan", "share")
        winner = data.winner
        if winner is None:
            raise InvalidFieldError("a gradual completion needs a winner to shift traffic to", field="winner")
        stats = await self._stats(key)
        now = self._clock.time()
        result = await self._edit(key, lambda e, plans: start_completion(e, plans, winner, steps, stats, now))
        return experiment_out(result.experiment)

    async def completion(self, key: str) -> CompletionOut:
        """The gradual completion and where it stands."""
        experiment, plan = await self._plan_of(key, "completion")
        return completion_out(experiment, plan)

    async def cancel_completion(self, key: str) -> CompletionOut:
        """Stop shifting to the winner; weights stay, scheduled reweights resume."""
        now = self._clock.time()
        result = await self._edit(key, lambda e, plans: cancel(e, plans, "completion", now))
        return completion_out(result.experiment, result.plans["completion"])

    async def advance_rollouts(self, now: float, limit: int = 100) -> int:
        """The scheduler's tick: check guardrails and advance every running plan of active experiments once."""
        moved = 0
        for key in await asyncio.to_thread(self._repository.running_rollouts, limit):
            experiment = await asyncio.to_thread(self._repository.experiment, key)
            if experiment is None or experiment.status != "active":
                continue  # changed since the list was read
            plans = await asyncio.to_thread(self._repository.rollouts, experiment.id)
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
            counts = await asyncio.to_thread(self._repository.arm_counts, experiment)
            stats = tuple(c.stats for c in counts)
        kind, revision = plan.kind, plan.revision
        try:
            result = await self._writer.submit(
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
        result: PlanResult = await self._writer.submit(edit_plans, PlanEdit(key, change))
        self._cache.put(result.experiment)
        return result

    async def _plan_of(self, key: str, kind: RolloutKind) -> tuple[Experiment, Rollout]:
        experiment = await self._load(key)
        plan = (await asyncio.to_thread(self._repository.rollouts, experiment.id)).get(kind)
        if plan is None:
            raise NotFoundError(f"experiment {key!r} has no {kind}", field=kind)
        return experiment, plan

    async def _stats(self, key: str) -> tuple[ArmStats, ...]:
        experiment = await self._load(key)
        counts = await asyncio.to_thread(self._repository.arm_counts, experiment)
        return tuple(c.stats for c in counts)

    async def _load(self, key: str) -> Experiment:
        experiment = await asyncio.to_thread(self._repository.experiment, key)
        if experiment is None:
            raise NotFoundError(f"no experiment with key {key!r}", field="key")
        return experiment
