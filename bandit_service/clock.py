"""The clock seam: wall time for timestamps and windows, monotonic time for cache ages."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock", "to_datetime"]


class Clock(Protocol):
    """Where the service gets the time; injected so tests can move it by hand."""

    def time(self) -> float:
        """Wall-clock time in seconds since the Unix epoch (timestamps, reward windows, schedules)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (cache ages)."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        """Seconds since the Unix epoch."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds on the process's monotonic clock."""
        return time.monotonic()


class FakeClock:
    """A clock that only moves when told to; both readings advance together."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._mono = 0.0

    def time(self) -> float:
        """The fake wall time."""
        return self._now

    def monotonic(self) -> float:
        """The fake monotonic time."""
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move both readings forward."""
        if seconds < 0:
            raise ValueError(f"seconds: a clock cannot go backwards, got {seconds}")
        self._now += seconds
        self._mono += seconds


def to_datetime(timestamp: float) -> datetime:
    """A Unix timestamp as an aware UTC datetime (the wire format)."""
    return datetime.fromtimestamp(timestamp, UTC)
