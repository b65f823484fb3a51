"""Clocks for the `ports.Clock` seam: the real one, and a fake one that tests move by hand."""

from __future__ import annotations

import time

__all__ = ["FakeClock", "SystemClock"]


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
