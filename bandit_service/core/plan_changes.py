"""Rollout plans as changes: each operator action or scheduler step is a pure function of the stored state.

A change gets the experiment and its plans as the write transaction sees them and returns what
to write (`PlanWrite`), or None when the state it was computed for has moved on (another
replica already took the step). The one write job, `services.rollouts.edit_plans`, stores the
result with compare-and-set on both the experiment's and the plan's revision and logs the audit
entries, all in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, assert_never

import msgspec

from bandit_service.core.errors import (
    ConflictError,
    IllegalTransitionError,
    InvalidFieldError,
    NotFoundError,
)
from bandit_service.core.events import SCHEDULER, event
from bandit_service.core.lifecycle import next_status
from bandit_service.core.model import Event, Experiment, Rollout, RolloutKind, WeightsRecord
from bandit_service.core.plans import (
    Advance,
    Finish,
    Hold,
    PlanStep,
    RolloutAction,
    Stop,
    cancel_plan,
    shift_weights,
    start_plan,
)
from bandit_service.core.timestamps import to_datetime
from bandit_service.core.weights import with_weights
from policies import ArmStats

__all__ = [
    "GUARDED",
    "PlanWrite",
    "Plans",
    "cancel",
    "move",
    "plan_detail",
    "set_ramp",
    "start_completion",
]

GUARDED = "guarded rollout"
"""The prefix of the reason recorded when a breached guardrail stops a plan and pauses the experiment."""

Plans = dict[str, Rollout]


class PlanWrite(msgspec.Struct, frozen=True, kw_only=True):
    """What a change writes: the experiment (None: unchanged), plans, a weights version, audit entries."""

    experiment: Experiment | None = None
    plans: tuple[Rollout, ...] = ()
    weights: WeightsRecord | None = None
    events: tuple[Event, ...] = ()


def summary(plan: Rollout | None) -> dict[str, Any] | None:
    """A plan as an audit-log value."""
    if plan is None:
        return None
    return {
        "steps": [[s.value, s.hold_s] for s in plan.steps],
        "step": plan.state.step,
        "status": plan.state.status,
        "winner": plan.winner,
    }


def _running(plans: Plans, kind: RolloutKind) -> Rollout | None:
    plan = plans.get(kind)
    return plan if plan is not None and plan.state.status == "running" else None


def _new_plan(
    plans: Plans, experiment: Experiment, kind: RolloutKind, steps: Sequence[PlanStep], now: float
) -> Rollout:
    state, _ = start_plan(steps, to_datetime(now))
    old = plans.get(kind)
    return Rollout(
        experiment_id=experiment.id,
        kind=kind,
        steps=tuple(steps),
        state=state,
        created_at=now,
        updated_at=now,
        revision=old.revision if old is not None else 0,  # replaces a finished plan of this kind
    )


def set_ramp(experiment: Experiment, plans: Plans, steps: Sequence[PlanStep], now: float, actor: str) -> PlanWrite:
    """Start (or replace) the exposure ramp: the first step's exposure applies at once."""
    if experiment.status == "completed":
        raise IllegalTransitionError(
            f"cannot ramp experiment {experiment.key!r}: it is completed", current_status=experiment.status
        )
    ramp = _new_plan(plans, experiment, "ramp", steps, now)
    exposure = steps[0].value
    changed = msgspec.structs.replace(
        experiment, config=msgspec.structs.replace(experiment.config, exposure=exposure), updated_at=now
    )
    entry = event(
        experiment.id,
        "ramp_set",
        {"exposure": experiment.config.exposure, "ramp": summary(plans.get("ramp"))},
        {"exposure": exposure, "ramp": summary(ramp)},
        now,
        actor,
    )
    return PlanWrite(experiment=changed, plans=(ramp,), events=(entry,))


def _shifted(experiment: Experiment, plan: Rollout, share: float) -> tuple[float, ...]:
    winner = experiment.arm_index(plan.winner or "")
    return tuple(shift_weights(plan.base_weights, winner, share))


def start_completion(
    experiment: Experiment,
    plans: Plans,
    winner: str,
    steps: Sequence[PlanStep],
    stats: tuple[ArmStats, ...],
    now: float,
    actor: str,
) -> PlanWrite:
    """Begin shifting traffic to the winner: the first share applies at once, scheduled reweights stop."""
    if experiment.status != "active":
        raise IllegalTransitionError(
            f"a gradual completion needs an active experiment; {experiment.key!r} is {experiment.status!r} "
            "(complete it at once without a plan)",
            current_status=experiment.status,
        )
    if winner not in experiment.arm_names:
        raise InvalidFieldError(
            f"winner {winner!r} is not one of the arms {list(experiment.arm_names)}", field="winner"
        )
    if _running(plans, "completion") is not None:
        raise ConflictError(
            f"a gradual completion of {experiment.key!r} is already running; cancel it or complete at once",
            field="plan",
        )
    plan = msgspec.structs.replace(
        _new_plan(plans, experiment, "completion", steps, now), winner=winner, base_weights=experiment.weights
    )
    weights = _shifted(experiment, plan, steps[0].value)
    shifted, record = with_weights(experiment, weights, stats, "shift", now)
    changed = msgspec.structs.replace(shifted, next_reweight_at=None)  # the plan moves traffic now, not the policy
    entry = event(
        experiment.id,
        "completion_start",
        {"weights": list(experiment.weights), "weights_version": experiment.weights_version},
        {"winner": winner, "plan": summary(plan), "weights": list(weights), "weights_version": record.version},
        now,
        actor,
    )
    return PlanWrite(experiment=changed, plans=(plan,), weights=record, events=(entry,))


def _resume_reweights(experiment: Experiment, now: float) -> float | None:
    """When scheduled reweights resume after a completion plan ends without completing."""
    if experiment.status == "completed" or not experiment.config.policy.adaptive:
        return None
    return now + experiment.config.reweight_every_s


def _number(x: float) -> str:
    return f"{x:.4g}"


def _ramp_detail(experiment: Experiment, plan: Rollout) -> str:
    step, n = plan.state.step, len(plan.steps)
    value = plan.steps[step].value
    where = f"step {step + 1} of {n}"
    path = f"/v1/experiments/{experiment.key}"
    match plan.state.status:
        case "running":
            if step + 1 < n:
                return (
                    f"ramp at {where}: exposure {_number(value)}; it moves to {_number(plan.steps[step + 1].value)} "
                    "once the step's hold is over and every guardrail holds"
                )
            return f"ramp at its last step ({where}): exposure {_number(value)}; it is done at the next scheduler tick"
        case "done":
            return f"ramp done: exposure stays at {_number(value)} (its last step)"
        case "cancelled":
            left = f"ramp cancelled at {where}; exposure stays at {_number(value)} (the last step reached)"
        case "stopped":
            left = (
                f"ramp stopped at {where} by a breached guardrail, which paused the experiment; exposure stays "
                f"at {_number(value)} (the last step reached)"
            )
        case _:
            assert_never(plan.state.status)
    if experiment.status == "completed":
        return f"{left}; the experiment is completed, so every unit gets its winner (or the control)"
    if experiment.config.exposure != value:
        return f"{left}; it has been set to {_number(experiment.config.exposure)} since"
    return f"{left}; PUT {path}/exposure to change it, or PUT {path}/ramp for a new ramp"


def _completion_detail(experiment: Experiment, plan: Rollout) -> str:
    step, n = plan.state.step, len(plan.steps)
    share = plan.steps[step].value
    where = f"step {step + 1} of {n}"
    winner = plan.winner or ""
    weights = _shifted(experiment, plan, share)
    reached = ", ".join(f"{name} {_number(w)}" for name, w in zip(experiment.arm_names, weights, strict=True))
    match plan.state.status:
        case "running":
            return (
                f"shifting traffic to {winner!r}: {where}, {_number(share)} of the traffic; the next step comes once "
                f"the step's hold is over and every guardrail holds; after the last one the experiment is completed "
                f"with {winner!r}"
            )
        case "done":
            return f"completion done: the experiment was completed with {winner!r}"
        case "cancelled":
            left = f"completion cancelled at {where}; the weights stay at {reached} (the last step reached)"
        case "stopped":
            left = (
                f"completion stopped at {where} by a breached guardrail, which paused the experiment; the weights "
                f"stay at {reached} (the last step reached)"
            )
        case _:
            assert_never(plan.state.status)
    if experiment.status == "completed":
        return f"{left}; the experiment is completed, so every unit gets its winner (or the control)"
    path = f"/v1/experiments/{experiment.key}"
    then = (
        f"the policy reweights again from its next interval (POST {path}/reweight to do it now)"
        if experiment.config.policy.adaptive
        else f"PUT {path}/weights to change them"
    )
    return f"{left}; the experiment is not completed: {then}, or POST {path}/complete to complete it"


def plan_detail(experiment: Experiment, plan: Rollout) -> str:
    """In words: where the plan stands, what it leaves the experiment at, why, and what changes it."""
    match plan.kind:
        case "ramp":
            return _ramp_detail(experiment, plan)
        case "completion":
            return _completion_detail(experiment, plan)
        case _:
            assert_never(plan.kind)


def cancel(experiment: Experiment, plans: Plans, kind: RolloutKind, now: float, actor: str) -> PlanWrite:
    """Cancel a running plan by hand: exposure and weights stay where the plan left them (the entry says so)."""
    plan = plans.get(kind)
    if plan is None:
        raise NotFoundError(f"experiment {experiment.key!r} has no {kind}", field=kind)
    if plan.state.status != "running":
        raise IllegalTransitionError(
            f"the {kind} of {experiment.key!r} is {plan.state.status!r}; only a running one can be cancelled",
            current_status=plan.state.status,
        )
    reason = "cancelled by an operator"
    stopped = msgspec.structs.replace(plan, state=cancel_plan(plan.state, reason), updated_at=now)
    changed = None
    if kind == "completion":
        changed = msgspec.structs.replace(
            experiment, next_reweight_at=_resume_reweights(experiment, now), updated_at=now
        )
    left: dict[str, Any] = (
        {"exposure": experiment.config.exposure} if kind == "ramp" else {"weights": list(experiment.weights)}
    )
    entry = event(
        experiment.id,
        f"{kind}_cancel",
        {"status": "running", "step": plan.state.step},
        {
            "status": "cancelled",
            "step": plan.state.step,
            "reason": reason,
            **left,
            "detail": plan_detail(changed or experiment, stopped),
        },
        now,
        actor,
    )
    return PlanWrite(experiment=changed, plans=(stopped,), events=(entry,))


def move(
    experiment: Experiment,
    plans: Plans,
    kind: RolloutKind,
    revision: int,
    action: RolloutAction,
    stats: tuple[ArmStats, ...],
    now: float,
) -> PlanWrite | None:
    """The scheduler's step, or None if the plan (or the experiment's status) moved since it was decided."""
    plan = plans.get(kind)
    if plan is None or plan.revision != revision or plan.state.status != "running" or experiment.status != "active":
        return None
    match action:
        case Hold():
            return None
        case Stop():
            return _guarded_pause(experiment, plans, action.reason, now)
        case Advance():
            return _step(experiment, plan, action, stats, now)
        case Finish():
            return _finish(experiment, plans, plan, action, now)
        case _:
            assert_never(action)


def _step(experiment: Experiment, plan: Rollout, action: Advance, stats: tuple[ArmStats, ...], now: float) -> PlanWrite:
    moved = msgspec.structs.replace(plan, state=action.state, updated_at=now)
    before_step, after_step = plan.state.step, action.state.step
    if plan.kind == "ramp":
        changed = msgspec.structs.replace(
            experiment, config=msgspec.structs.replace(experiment.config, exposure=action.value), updated_at=now
        )
        entry = event(
            experiment.id,
            "ramp_step",
            {"step": before_step, "exposure": experiment.config.exposure},
            {"step": after_step, "exposure": action.value},
            now,
            SCHEDULER,
        )
        return PlanWrite(experiment=changed, plans=(moved,), events=(entry,))
    weights = _shifted(experiment, plan, action.value)
    changed, record = with_weights(experiment, weights, stats, "shift", now)
    entry = event(
        experiment.id,
        "completion_step",
        {
            "step": before_step,
            "share": plan.steps[before_step].value,
            "weights": list(experiment.weights),
            "weights_version": experiment.weights_version,
        },
        {"step": after_step, "share": action.value, "weights": list(weights), "weights_version": record.version},
        now,
        SCHEDULER,
    )
    return PlanWrite(experiment=changed, plans=(moved,), weights=record, events=(entry,))


def _finish(experiment: Experiment, plans: Plans, plan: Rollout, action: Finish, now: float) -> PlanWrite:
    done = msgspec.structs.replace(plan, state=action.state, updated_at=now)
    if plan.kind == "ramp":
        entry = event(
            experiment.id,
            "ramp_done",
            {"status": "running", "step": plan.state.step},
            {"status": "done", "step": plan.state.step, "exposure": experiment.config.exposure},
            now,
            SCHEDULER,
        )
        return PlanWrite(plans=(done,), events=(entry,))
    status = next_status("complete", experiment.key, experiment.status)
    completed = msgspec.structs.replace(
        experiment, status=status, winner=plan.winner, next_reweight_at=None, completed_at=now, updated_at=now
    )
    events = [
        event(
            experiment.id,
            "complete",
            {"status": experiment.status},
            {"status": status, "winner": plan.winner, "completion": "done"},
            now,
            SCHEDULER,
        )
    ]
    written = [done]
    ramp = _running(plans, "ramp")
    if ramp is not None:  # a completed experiment serves the winner to everyone: the ramp has nothing left to do
        reason = "the experiment was completed"
        written.append(msgspec.structs.replace(ramp, state=cancel_plan(ramp.state, reason), updated_at=now))
        events.append(
            event(
                experiment.id,
                "ramp_cancel",
                {"status": "running", "step": ramp.state.step},
                {"status": "cancelled", "step": ramp.state.step, "reason": reason},
                now,
                SCHEDULER,
            )
        )
    return PlanWrite(experiment=completed, plans=tuple(written), events=tuple(events))


def _guarded_pause(experiment: Experiment, plans: Plans, breach: str, now: float) -> PlanWrite:
    """A breached guardrail: stop every running plan with the reason and pause the experiment."""
    reason = f"{GUARDED}: {breach}"
    status = next_status("pause", experiment.key, experiment.status)
    running = [p for p in plans.values() if p.state.status == "running"]
    stopped = tuple(
        msgspec.structs.replace(
            p, state=msgspec.structs.replace(p.state, status="stopped", reason=reason), updated_at=now
        )
        for p in running
    )
    paused = msgspec.structs.replace(experiment, status=status, updated_at=now)
    if any(p.kind == "completion" for p in running):
        paused = msgspec.structs.replace(paused, next_reweight_at=_resume_reweights(experiment, now))
    entry = event(
        experiment.id,
        "pause",
        {"status": experiment.status, "plans": {p.kind: p.state.step for p in running}},
        {"status": status, "reason": reason},
        now,
        SCHEDULER,
    )
    return PlanWrite(experiment=paused, plans=stopped, events=(entry,))
