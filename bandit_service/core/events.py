"""Audit-log entries: the one factory, and the actors the service names.

Operator changes are written by the job that makes them, in the same transaction, so the log
never shows a change that did not happen nor misses one that did.
"""

from __future__ import annotations

from typing import Any

from bandit_service.core.model import Event

__all__ = ["ACTOR", "SCHEDULER", "event"]

ACTOR = "anonymous"
"""The actor of operator changes while authentication is off (otherwise the name of the caller's key)."""

SCHEDULER = "scheduler"
"""The actor of changes the service makes by itself (ramp steps, guarded pauses, shift steps)."""


def event(
    experiment_id: int,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    now: float,
    actor: str,
) -> Event:
    """An audit-log entry stamped with the injected clock's time."""
    return Event(experiment_id=experiment_id, created_at=now, actor=actor, action=action, before=before, after=after)
