"""Repeated log lines: the first N of a kind per interval pass, the rest come out as one summary line."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from bandit_service.log_flood import SUMMARY, RepeatedLineFilter, limit_repeated_lines


class Collect(logging.Handler):
    """A handler that keeps the messages it writes."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def handler() -> Collect:
    """A collecting handler with a filter of 3 lines per 10 s."""
    collect = Collect()
    collect.addFilter(RepeatedLineFilter(3, 10.0, collect.handle))
    return collect


def record(
    at: float, msg: str = "accept failed on fd %d", *args: object, name: str = "asyncio", level: int = logging.ERROR
) -> logging.LogRecord:
    """A record made at time `at` (the filter's only clock)."""
    made = logging.makeLogRecord(
        {"name": name, "levelno": level, "levelname": logging.getLevelName(level), "msg": msg, "args": args or (9,)}
    )
    made.created = at
    return made


def test_the_first_lines_of_a_kind_pass_and_the_rest_are_summed_up_after_the_interval(handler: Collect) -> None:
    for i in range(1_000):
        handler.handle(record(100.0 + i * 0.001, "accept failed on fd %d", i))
    assert handler.lines == ["accept failed on fd 0", "accept failed on fd 1", "accept failed on fd 2"]
    handler.handle(record(111.0))  # the next interval: its summary comes first
    assert handler.lines[3:] == [
        "suppressed 997 similar lines in the last 10 s: accept failed on fd %d",
        "accept failed on fd 9",
    ]


def test_kinds_are_counted_apart_by_logger_level_and_template(handler: Collect) -> None:
    kinds = [
        {"name": "asyncio", "level": logging.ERROR, "msg": "a %d"},
        {"name": "uvicorn.error", "level": logging.ERROR, "msg": "a %d"},
        {"name": "asyncio", "level": logging.WARNING, "msg": "a %d"},
        {"name": "asyncio", "level": logging.ERROR, "msg": "b %d"},
    ]
    for i in range(5):
        for kind in kinds:
            handler.handle(record(100.0 + i, kind["msg"], i, name=kind["name"], level=kind["level"]))  # type: ignore[arg-type]
    assert len(handler.lines) == 3 * len(kinds)


def test_lines_below_warning_are_never_limited(handler: Collect) -> None:
    for _ in range(50):
        handler.handle(
            record(100.0, '%s - "GET /healthz" %d', "127.0.0.1", 200, name="uvicorn.access", level=logging.INFO)
        )
    assert len(handler.lines) == 50 and not any("suppressed" in line for line in handler.lines)


def test_a_flood_that_stops_is_summed_up_by_the_next_line_of_any_kind(handler: Collect) -> None:
    for i in range(10):
        handler.handle(record(100.0, "db down %d", i))
    handler.handle(record(111.0, "scheduler lag %d", 1, name="bandit_service.scheduler", level=logging.WARNING))
    assert handler.lines[-2:] == ["suppressed 7 similar lines in the last 10 s: db down %d", "scheduler lag 1"]


def test_an_interval_without_suppressed_lines_writes_no_summary(handler: Collect) -> None:
    for at in (100.0, 101.0, 120.0, 121.0):
        handler.handle(record(at))
    assert not any("suppressed" in line for line in handler.lines)
    assert len(handler.lines) == 4


def test_summaries_are_limited_like_any_line(handler: Collect) -> None:
    # Many kinds flooding at once: their summaries share one template, so they too stop after 3.
    for kind in range(20):
        for i in range(5):
            handler.handle(record(100.0, f"kind {kind} %d", i))
    handler.handle(record(111.0, "after %d", 1))
    summaries = [line for line in handler.lines if line.startswith("suppressed")]
    assert len(summaries) == 3


def test_the_filter_needs_lines_and_an_interval() -> None:
    with pytest.raises(ValueError, match="lines must be >= 1"):
        RepeatedLineFilter(0, 10.0, print)
    with pytest.raises(ValueError, match="interval_s > 0"):
        RepeatedLineFilter(3, 0.0, print)


@pytest.fixture
def stream_logger() -> Iterator[tuple[logging.Logger, logging.StreamHandler[io.StringIO]]]:
    """A logger of its own with a stream handler, removed afterwards."""
    stream = io.StringIO()
    stream_handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tests.log_flood.flooded")
    logger.addHandler(stream_handler)
    logger.propagate = False
    yield logger, stream_handler
    logger.removeHandler(stream_handler)
    logger.propagate = True


def test_installed_on_every_handler_it_limits_a_real_flood_and_comes_off_again(
    stream_logger: tuple[logging.Logger, logging.StreamHandler[io.StringIO]],
) -> None:
    logger, handler = stream_logger
    stream = handler.stream
    remove = limit_repeated_lines(5, 3_600.0)
    try:
        assert limit_repeated_lines(5, 3_600.0) is not None  # a second install adds no second filter
        assert sum(isinstance(f, RepeatedLineFilter) for f in handler.filters) == 1
        for i in range(10_000):
            logger.error("socket.accept() out of system resource (%d)", i)
        assert stream.getvalue().count("\n") == 5
    finally:
        remove()
    assert not any(isinstance(f, RepeatedLineFilter) for f in handler.filters)
    logger.error("after")
    assert stream.getvalue().endswith("after\n")


def test_the_summary_template_names_its_count_interval_and_kind() -> None:
    assert SUMMARY % (7, 10.0, "db down %d") == "suppressed 7 similar lines in the last 10 s: db down %d"
