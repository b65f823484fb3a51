"""Gradual rollout plans: exposure ramps and winner shifts, advanced step by step under guardrails.

A plan is a list of steps, each a target value (the exposure, or the winner's share of traffic)
held for `hold_s` seconds before the next step; the last step has no hold. `advance` is the
whole state machine as a pure function of (plan, state, now, guardrail breach), so the
scheduler only stores its result and a fake clock tests it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from bandit_service.core.placement import in_slice

__all__ = [
    "Advance",
    "Finish",
    "Hold",
    "PlanError",
    "PlanState",
    "PlanStatus",
    "PlanStep",
    "RolloutAction",
    "Stop",
    "advance",
    "cancel_plan",
    "in_slice",
    "shift_weights",
    "slices_overlap",
    "start_plan",
    "validate_plan",
]

Share = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
HoldSeconds = Annotated[int, msgspec.Meta(ge=1, le=10 * 365 * 86400)]
PlanStatus = Literal["running", "done", "stopped", "cancelled"]


class PlanError(ValueError):
    """A plan that cannot run; `field` names the offending step, e.g. `steps[1].exposure`."""

    def __init__(self, detail: str, *, field: str) -> None:
        super().__init__(detail)
        self.field = field


class PlanStep(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One step: move to `value`, then hold it `hold_s` seconds (None on the last step)."""

    value: Share
    hold_s: HoldSeconds | None = None


class PlanState(msgspec.Struct, frozen=True):
    """Where a plan stands: the current step and when it began; `status` says whether it still runs."""

    step: int
    step_started_at: datetime
    status: PlanStatus = "running"
    reason: str | None = None


class Hold(msgspec.Struct, frozen=True, tag="hold"):
    """Nothing to do yet: the step's hold has not elapsed (or the plan has ended)."""


class Advance(msgspec.Struct, frozen=True, tag="advance"):
    """Move to the next step's value."""

    state: PlanState
    value: float


class Finish(msgspec.Struct, frozen=True, tag="finish"):
    """The last step's hold is over (or it has none): the plan is done."""

    state: PlanState


class Stop(msgspec.Struct, frozen=True, tag="stop"):
    """A guardrail is breached: stop the plan and pause the experiment, with the reason."""

    state: PlanState
    reason: str


RolloutAction = Hold | Advance | Finish | Stop


def validate_plan(steps: Sequence[PlanStep], name: str = "steps", value_name: str = "value") -> None:
    """Refuse an empty plan, a missing hold before the last step, or a value that goes down.

    Raises `PlanError` (a ValueError) whose `field` uses the caller's names, so the service can
    name `plan[1].share` where the wire calls the value `share`.
    """
    if not steps:
        raise PlanError(f"{name}: a plan needs at least one step", field=name)
    for i, step in enumerate(steps[:-1]):
        if step.hold_s is None:
            field = f"{name}[{i}].hold_s"
            raise PlanError(f"{field}: every step but the last needs a hold time", field=field)
    for i in range(1, len(steps)):
        if steps[i].value < steps[i - 1].value:
            field = f"{name}[{i}].{value_name}"
            raise PlanError(
                f"{field}: a rollout only moves forward ({steps[i - 1].value} -> {steps[i].value})", field=field
            )


def start_plan(steps: Sequence[PlanStep], now: datetime) -> tuple[PlanState, float]:
    """The state at the first step and the value to apply now."""
    validate_plan(steps)
    return PlanState(step=0, step_started_at=now), steps[0].value


def advance(steps: Sequence[PlanStep], state: PlanState, now: datetime, breach: str | None) -> RolloutAction:
    """The next action of a running plan at time `now`.

    A breach stops the plan whatever the step: a guarded rollout never moves forward on a
    breached guardrail, and pausing is the safe state. Otherwise a step whose hold is over
    moves to the next one; one step per call, so each step's guardrails are checked on the
    traffic that step actually received.
    """
    if state.status != "running":
        return Hold()
    if breach is not None:
        return Stop(msgspec.structs.replace(state, status="stopped", reason=breach), breach)
    hold = steps[state.step].hold_s
    if hold is not None and (now - state.step_started_at).total_seconds() < hold:
        return Hold()
    if state.step + 1 >= len(steps):
        return Finish(msgspec.structs.replace(state, status="done"))
    nxt = state.step + 1
    return Advance(PlanState(step=nxt, step_started_at=now), steps[nxt].value)


def cancel_plan(state: PlanState, reason: str) -> PlanState:
    """The state of a running plan that an operator (or the experiment's completion) cancelled."""
    if state.status != "running":
        raise ValueError(f"status: only a running plan can be cancelled, this one is {state.status!r}")
    return msgspec.structs.replace(state, status="cancelled", reason=reason)


def shift_weights(weights: Sequence[float], winner: int, share: float) -> list[float]:
    """Weights with `share` to the winner and the rest split over the others in their current ratio.

    If the other arms have no weight left, their part is split evenly, so the result is
    always a distribution.
    """
    if not 0 <= winner < len(weights):
        raise ValueError(f"winner: arm index {winner} out of range for {len(weights)} arms")
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share: must be in [0, 1], got {share}")
    others = [i for i in range(len(weights)) if i != winner]
    rest = sum(weights[i] for i in others)
    out = [0.0] * len(weights)
    out[winner] = share
    for i in others:
        out[i] = (1.0 - share) * (weights[i] / rest if rest > 0 else 1.0 / len(others))
    return out


def slices_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two half-open slices [start, end) of the namespace share any point."""
    return a[0] < b[1] and b[0] < a[1]
