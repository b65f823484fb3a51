"""The server limits as `serve` hands them to uvicorn: the cap fits the open files, 0 means plain h11.

The protocol's behaviour (deadline, eviction, 503) is tested against real servers in
tests/multiprocess/test_slow_clients.py.
"""

from __future__ import annotations

import functools
import pickle
import resource
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from bandit_service.server_limits import (
    BACKLOG,
    FD_RESERVE,
    ConnectionGuard,
    LimitedH11Protocol,
    connection_limits,
    raise_open_file_limit,
    uvicorn_limits,
)
from bandit_service.settings import Settings


@pytest.mark.parametrize(
    ("max_connections", "open_files", "expected"),
    [
        pytest.param(0, 1_024, (0, 0), id="no-cap"),
        pytest.param(1_000, 1_048_576, (1_000, 2_000), id="room-to-spare"),
        pytest.param(1_000, 1_024, (768, 1_024 - FD_RESERVE), id="lowered-to-fit-1024-files"),
        pytest.param(4, 1_024, (4, 8), id="small-cap"),
        pytest.param(1_000, 40, (1, 1), id="hardly-any-files"),
    ],
)
def test_the_cap_and_ceiling_fit_the_open_files(
    max_connections: int, open_files: int, expected: tuple[int, int]
) -> None:
    assert connection_limits(max_connections, open_files) == expected


def _config(limits: dict[str, Any]) -> uvicorn.Config:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        """A do-nothing ASGI app: only the config is under test."""

    config = uvicorn.Config(app, **limits)
    config.load()
    return config


def test_with_both_limits_off_serve_runs_uvicorns_plain_h11() -> None:
    limits = uvicorn_limits(Settings(max_connections=0, read_timeout_s=0), open_files=1_024)
    assert limits["http"] == "h11"
    assert _config(limits).http_protocol_class.__name__ == "H11Protocol"


def test_with_limits_serve_runs_the_limited_protocol_with_the_fitted_cap() -> None:
    limits = uvicorn_limits(Settings(max_connections=1_000, read_timeout_s=7.5), open_files=1_024)
    config = _config(limits)
    protocol = config.http_protocol_class
    assert isinstance(protocol, functools.partial) and protocol.func is LimitedH11Protocol
    guard: ConnectionGuard = protocol.keywords["guard"]
    assert (guard.read_timeout_s, guard.cap, guard.ceiling) == (7.5, 768, 960)
    assert config.backlog == BACKLOG and config.h11_max_incomplete_event_size is not None


def test_each_worker_gets_a_fresh_guard_with_the_same_limits() -> None:
    guard = ConnectionGuard(10.0, 100, 200)
    guard.waiting[object()] = 1.0  # type: ignore[index]  # a connection of the parent: not for the workers
    copy = pickle.loads(pickle.dumps(guard))
    assert (copy.read_timeout_s, copy.cap, copy.ceiling, copy.waiting) == (10.0, 100, 200, {})


@pytest.fixture
def lowered_open_files() -> Iterator[int]:
    """This process's soft open-file limit set below the hard one for the test (restored after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.fail(f"the hard open-file limit ({hard}) leaves nothing to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    yield hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_serve_raises_its_open_file_limit_to_the_hard_one(lowered_open_files: int) -> None:
    assert raise_open_file_limit() == lowered_open_files
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == lowered_open_files


def test_the_limits_are_settings_read_from_the_environment() -> None:
    env = {
        "BANDIT_MAX_CONNECTIONS": "0",
        "BANDIT_READ_TIMEOUT_S": "2.5",
        "BANDIT_RATE_LIMIT_TRAFFIC_PER_S": "0",
        "BANDIT_RATE_LIMIT_OPERATOR_BURST": "5",
        "BANDIT_LOG_REPEAT_LINES": "0",
    }
    settings = Settings.from_env(env)
    assert (settings.max_connections, settings.read_timeout_s, settings.log_repeat_lines) == (0, 2.5, 0)
    assert (settings.rate_limit_traffic_per_s, settings.rate_limit_operator_burst) == (0.0, 5)
    with pytest.raises(ValueError, match="BANDIT_READ_TIMEOUT_S"):
        Settings.from_env({"BANDIT_READ_TIMEOUT_S": "-1"})
