"""The experiment lifecycle: draft -> active <-> paused -> completed, as one table."""

from __future__ import annotations

from typing import Literal

from bandit_service.core.errors import IllegalTransitionError
from bandit_service.core.model import ExperimentStatus

__all__ = ["TRANSITIONS", "Action", "next_status"]

Action = Literal["start", "pause", "complete"]

TRANSITIONS: dict[Action, dict[ExperimentStatus, ExperimentStatus]] = {
    "start": {"draft": "active", "paused": "active"},
    "pause": {"active": "paused"},
    "complete": {"active": "completed", "paused": "completed"},
}


def next_status(action: Action, key: str, current: ExperimentStatus) -> ExperimentStatus:
    """The status after `action`, or IllegalTransitionError (409) naming the current status."""
    target = TRANSITIONS[action].get(current)
    if target is None:
        allowed = " or ".join(TRANSITIONS[action])
        raise IllegalTransitionError(
            f"cannot {action} experiment {key!r}: its status is {current!r} (allowed from {allowed})",
            current_status=current,
        )
    return target
