"""Rules that tie operator changes to namespaces and running plans, checked inside the write transaction.

The experiment jobs (`create_experiments`, `edit_experiments`) call these so every path that
changes an experiment obeys them, whichever endpoint it came from:
- a namespace slice may not overlap another experiment of the namespace that is not completed;
- the feature an experiment serves must exist (when set, and again when the experiment starts);
- while a ramp runs, exposure belongs to the ramp; while a completion runs, weights belong to it;
- completing an experiment cancels its running plans; starting or resuming it restarts the hold
  of the current step, so every step holds for `hold_s` of active running before it advances.
"""

from __future__ import annotations

import msgspec

from bandit_service.core.errors import ConflictError, InvalidFieldError
from bandit_service.core.events import event
from bandit_service.core.model import Experiment, Namespace, NewExperiment
from bandit_service.core.plans import cancel_plan, slices_overlap
from bandit_service.core.timestamps import to_datetime
from bandit_service.ports import WriteTx

__all__ = ["check_change", "check_feature", "check_namespace", "check_new", "restart_or_cancel_plans"]


def check_namespace(tx: WriteTx, key: str, space: Namespace | None) -> None:
    """ConflictError naming the other experiment if `space` overlaps a slice taken in its namespace."""
    if space is None:
        return
    for other in tx.namespace_members(space.name):
        theirs = other.config.namespace
        if other.key == key or theirs is None:
            continue
        if slices_overlap((space.start, space.end), (theirs.start, theirs.end)):
            raise ConflictError(
                f"namespace {space.name!r}: slice [{space.start}, {space.end}) overlaps experiment "
                f"{other.key!r} (slice [{theirs.start}, {theirs.end}), {other.status})",
                field="namespace",
            )


def check_feature(tx: WriteTx, key: str, feature: str | None, *, starting: bool = False) -> None:
    """Refuse an experiment naming a feature that does not exist: 422 when set, 409 when started.

    `tx.feature` share-locks the feature's row, so it cannot be deleted before this change commits.
    """
    if feature is None or tx.feature(feature) is not None:
        return
    missing = f"feature {feature!r} does not exist; create it with PUT /v1/features/{feature}"
    if starting:
        raise ConflictError(f"experiment {key!r} serves {missing}, or PATCH its feature", field="feature")
    raise InvalidFieldError(missing, field="feature")


def check_new(tx: WriteTx, new: NewExperiment) -> None:
    """Refuse a new experiment whose namespace slice is taken or whose feature does not exist."""
    check_namespace(tx, new.key, new.config.namespace)
    check_feature(tx, new.key, new.config.feature)


def check_change(tx: WriteTx, before: Experiment, after: Experiment) -> None:
    """Refuse an operator change that breaks a namespace or takes over what a running plan controls."""
    space = after.config.namespace
    # Only a new slice or a (re)start is checked: pausing or completing must always be possible.
    starting = after.status == "active" and before.status != "active"
    if space != before.config.namespace or starting:
        check_namespace(tx, after.key, space)
    if after.config.feature != before.config.feature or starting:
        check_feature(tx, after.key, after.config.feature, starting=after.config.feature == before.config.feature)
    exposure_moved = after.config.exposure != before.config.exposure
    weights_moved = after.weights_version != before.weights_version and before.status != "draft"
    if not (exposure_moved or weights_moved):
        return
    plans = tx.rollouts(after.id)
    ramp, completion = plans.get("ramp"), plans.get("completion")
    if exposure_moved and ramp is not None and ramp.state.status == "running":
        raise ConflictError(
            f"exposure of {after.key!r} is driven by a running ramp; cancel it (DELETE .../ramp) first",
            field="exposure",
        )
    if weights_moved and completion is not None and completion.state.status == "running":
        raise ConflictError(
            f"weights of {after.key!r} are shifting to the winner {completion.winner!r}; "
            "cancel the completion (DELETE .../completion) first",
            field="weights",
        )


def restart_or_cancel_plans(tx: WriteTx, before: Experiment, after: Experiment, actor: str) -> None:
    """After a status change: cancel running plans on completion, restart their hold on (re)start."""
    if after.status == before.status or after.status == "paused":
        return
    now = after.updated_at
    for plan in tx.rollouts(after.id).values():
        if plan.state.status != "running":
            continue
        if after.status == "completed":
            reason = "the experiment was completed"
            state = cancel_plan(plan.state, reason)
            tx.log_event(
                event(
                    after.id,
                    f"{plan.kind}_cancel",
                    {"status": "running", "step": plan.state.step},
                    {"status": "cancelled", "step": plan.state.step, "reason": reason},
                    now,
                    actor,
                )
            )
        else:
            state = msgspec.structs.replace(plan.state, step_started_at=to_datetime(now))
        if tx.save_rollout(msgspec.structs.replace(plan, state=state, updated_at=now)) is None:
            raise ConflictError(f"the {plan.kind} of {after.key!r} changed concurrently; retry", field="key")
