"""Repeated log lines, rate-limited: the first few of a kind per interval, then one line that counts the rest.

Under a flood (a client that opens connections by the thousand, a database that fails every
request) the same warning or error is logged once per event, and the log grows by megabytes a
second. `RepeatedLineFilter` sits on a handler: per (logger, level, message template) it lets
the first `lines` records of each `interval_s` through and counts the rest; when the interval
is over, the next record that reaches the handler first brings out one line "suppressed K
similar lines in the last T s: <template>". Lines below `min_level` (the access and request
lines) pass untouched. Time is the record's own `created`, so the filter needs no clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

__all__ = ["SUMMARY", "RepeatedLineFilter", "limit_repeated_lines", "repeated_line_limit"]

SUMMARY = "suppressed %d similar lines in the last %g s: %s"
"""The message template of a summary line (itself limited like any other template)."""

_Key = tuple[str, int, str]


class _Window:
    """One kind of line's current interval: when it ends, lines let through, lines suppressed."""

    __slots__ = ("end", "passed", "suppressed")

    def __init__(self, end: float) -> None:
        self.end = end
        self.passed = 0
        self.suppressed = 0


class RepeatedLineFilter(logging.Filter):
    """Lets `lines` records per (logger, level, template) and `interval_s` through; `emit` writes the summaries.

    Give each handler its own filter with `emit=handler.handle`, so a summary goes where its lines went.
    """

    def __init__(
        self,
        lines: int,
        interval_s: float,
        emit: Callable[[logging.LogRecord], object],
        *,
        min_level: int = logging.WARNING,
    ) -> None:
        super().__init__()
        if lines < 1 or interval_s <= 0:
            raise ValueError(f"lines must be >= 1 and interval_s > 0, got lines={lines}, interval_s={interval_s}")
        self.lines = lines
        self.interval_s = interval_s
        self.min_level = min_level
        self._emit = emit
        self._windows: dict[_Key, _Window] = {}
        self._next_sweep = float("-inf")
        # Handlers are called from any thread (the scheduler's, sync_to_thread handlers). Summaries are
        # emitted after the lock is released: emitting runs this filter again, for the summary line.
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether the record is written; a due summary is emitted first."""
        if record.levelno < self.min_level:
            return True
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        key = (record.name, record.levelno, template)
        now = record.created
        with self._lock:
            due = self._sweep(now) if now >= self._next_sweep else []
            window = self._windows.get(key)
            if window is not None and now >= window.end:
                del self._windows[key]
                if window.suppressed:
                    due.append((key, window.suppressed))
                window = None
            if window is None:
                window = self._windows[key] = _Window(now + self.interval_s)
            passed = window.passed < self.lines
            if passed:
                window.passed += 1
            else:
                window.suppressed += 1
        for (name, level, text), count in due:
            self._emit(self._summary(name, level, text, count, now))
        return passed

    def _sweep(self, now: float) -> list[tuple[_Key, int]]:
        """Drop the windows that ended (keeps memory bounded); their suppressed counts, to be summed up."""
        self._next_sweep = now + self.interval_s
        ended = [key for key, window in self._windows.items() if now >= window.end]
        due = []
        for key in ended:
            window = self._windows.pop(key)
            if window.suppressed:
                due.append((key, window.suppressed))
        return due

    def _summary(self, name: str, level: int, template: str, count: int, now: float) -> logging.LogRecord:
        record = logging.makeLogRecord(
            {
                "name": name,
                "levelno": level,
                "levelname": logging.getLevelName(level),
                "msg": SUMMARY,
                "args": (count, self.interval_s, template),
            }
        )
        record.created = now
        return record


def _handlers() -> Iterator[logging.Handler]:
    """Every handler of the root logger and of every logger made so far, once each."""
    loggers: list[Any] = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    seen: set[int] = set()
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):  # placeholders in loggerDict have none
            if id(handler) not in seen:
                seen.add(id(handler))
                yield handler


def limit_repeated_lines(lines: int, interval_s: float) -> Callable[[], None]:
    """Put a `RepeatedLineFilter` on every handler there is now (uvicorn's, Litestar's, the root's); the undo.

    Call it once logging is configured (uvicorn configures it before it loads the app, Litestar
    when the app is made). A handler that has such a filter already keeps it.
    """
    added: list[tuple[logging.Handler, RepeatedLineFilter]] = []
    for handler in _handlers():
        if any(isinstance(f, RepeatedLineFilter) for f in handler.filters):
            continue
        line_filter = RepeatedLineFilter(lines, interval_s, handler.handle)
        handler.addFilter(line_filter)
        added.append((handler, line_filter))

    def remove() -> None:
        for handler, line_filter in added:
            handler.removeFilter(line_filter)

    return remove


def repeated_line_limit(lines: int, interval_s: float) -> Callable[[object], AbstractAsyncContextManager[None]]:
    """A lifespan hook that limits repeated lines while the app runs (`lines=0`: no limit)."""

    @asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[None]:
        remove = limit_repeated_lines(lines, interval_s) if lines > 0 else None
        try:
            yield
        finally:
            if remove is not None:
                remove()

    return lifespan
