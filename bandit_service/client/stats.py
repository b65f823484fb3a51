"""What a client has done so far: decisions by source, rewards and decision logs by outcome."""

from __future__ import annotations

import threading

import msgspec

__all__ = ["COUNTERS", "ClientStats", "Counters"]


class ClientStats(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a client's counters (`client.stats`).

    Rewards: `sent` (the service recorded them, a retry's repeat included once), `refused` (the
    service refused them for good: unknown decision, window closed, bad value; each is logged with
    its problem), `skipped_rewards` (for a fallback decision or one outside the experiment: not
    sent), `dropped` (the oldest, when the queue was full), `pending` (queued or in flight).
    Local decisions' logs: `logged_decisions`, `duplicates` (logged before: a retry whose first
    answer was lost), `refused_logs`, `dropped_logs`, `pending_logs`, `contradictions` (the
    service's sticky arm for the unit differs from the one served here). `retried` counts items
    put back after a failed send (each time). `last_error` says what went wrong last, if anything.
    """

    decisions: int = 0
    remote_decisions: int = 0
    local_decisions: int = 0
    fallback_decisions: int = 0
    sent: int = 0
    refused: int = 0
    skipped_rewards: int = 0
    dropped: int = 0
    pending: int = 0
    logged_decisions: int = 0
    duplicates: int = 0
    refused_logs: int = 0
    dropped_logs: int = 0
    pending_logs: int = 0
    contradictions: int = 0
    retried: int = 0
    definitions_version: str | None = None
    last_error: str | None = None


COUNTERS = (
    "decisions",
    "remote_decisions",
    "local_decisions",
    "fallback_decisions",
    "sent",
    "refused",
    "skipped_rewards",
    "logged_decisions",
    "duplicates",
    "refused_logs",
    "contradictions",
    "retried",
)
"""The counters a client increments itself (the others are read from its queues and state)."""


class Counters:
    """The mutable counters behind `ClientStats`; safe to bump from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTERS, 0)
        self.last_error: str | None = None

    def add(self, name: str, n: int = 1) -> None:
        """Add `n` to one counter."""
        with self._lock:
            self._counts[name] += n

    def add_decision(self, source: str) -> None:
        """Count a decision and its source ("remote_decisions", "local_decisions", "fallback_decisions")."""
        with self._lock:
            self._counts["decisions"] += 1
            self._counts[source] += 1

    def error(self, message: str) -> None:
        """Remember the latest problem (for `ClientStats.last_error`)."""
        self.last_error = message

    def snapshot(self, **state: int | str | None) -> ClientStats:
        """The counters with the state the caller reads from its queues (pending, dropped, ...)."""
        with self._lock:
            counts = dict(self._counts)
        return ClientStats(**counts, **state, last_error=self.last_error)  # type: ignore[arg-type]
