"""Connection limits of `bandit-service serve`: uvicorn's h11 protocol with a request deadline and a connection cap.

uvicorn has no timeout on receiving a request: its keep-alive timer is not armed on a new
connection and every byte received resets it (uvicorn issue #157 lists the request-start and
request-complete timeouts as not done). A client that opens connections and sends half a
request holds each one for ever; at the process's open-file limit (1,024 on many systems) the
accept loop fails thousands of times a second, logging a traceback each time (CPython 3.11's
loop goes on after the first failure, python/cpython#151615), and nobody is served.
`LimitedH11Protocol` adds two guards, both per process:

- a read deadline: a connection must deliver a whole request (head and body) within
  `read_timeout_s` of opening, or of its previous response; otherwise it is closed.
- a connection cap: a connection beyond `max_connections` closes the connection that has waited
  longest for a request (a stalled or idle one, for a second at least), so clients that stall
  cannot crowd out clients that send; when none is to be closed (all are busy with a request, or
  just arrived) the newcomer is answered 503 with Retry-After. Beyond a ceiling (twice the cap,
  or the open-file limit less a reserve) the longest-waiting connection is closed whatever its
  wait, and if every connection is busy with a request the newcomer is closed unanswered: there
  is no room left to answer it. Both are lowered to fit the open-file limit, which `serve` first
  raises to its hard maximum.

This is the one module that builds on uvicorn's protocol class (its `connection_made`,
`data_received`, `on_response_complete` and `conn`, `transport`, `connections`, `app`
attributes); `serve` runs it, h11 based, even where httptools is installed, and with both limits
0 it runs uvicorn's plain h11 protocol.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import resource
from typing import Any

import h11
import msgspec
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from bandit_service.core.errors import UnavailableError
from bandit_service.http.problems import PROBLEM_MEDIA_TYPE, RETRY_AFTER_S, problem_for
from bandit_service.settings import Settings

__all__ = [
    "BACKLOG",
    "EVICT_AFTER_S",
    "FD_RESERVE",
    "KEEP_ALIVE_S",
    "MAX_HEAD_BYTES",
    "ConnectionGuard",
    "LimitedH11Protocol",
    "connection_limits",
    "raise_open_file_limit",
    "uvicorn_limits",
]

log = logging.getLogger(__name__)

BACKLOG = 2_048
"""Connections the kernel queues for accept (uvicorn's default, stated)."""
KEEP_ALIVE_S = 5
"""Seconds an idle keep-alive connection stays open (uvicorn's default, stated)."""
MAX_HEAD_BYTES = 16 * 1024
"""Largest request line plus headers (h11's default, stated): a larger head gets 400."""
EVICT_AFTER_S = 1.0
"""A connection is closed for a newcomer only once it has waited this long for a request: one just
accepted may not have had its request read yet (the event loop accepts many connections at once)."""
FD_RESERVE = 64
"""Open files never used for connections: the database, log files, the listening socket."""


class ConnectionGuard:
    """One process's limits (0: none) and its connections waiting for a request, longest-waiting first."""

    def __init__(self, read_timeout_s: float, cap: int, ceiling: int) -> None:
        self.read_timeout_s = read_timeout_s
        self.cap = cap
        self.ceiling = ceiling
        self.waiting: dict[LimitedH11Protocol, float] = {}  # when each began to wait, in that order

    def __reduce__(self) -> tuple[type[ConnectionGuard], tuple[float, int, int]]:
        # With several workers uvicorn pickles its config for each worker process: each gets a fresh guard.
        return ConnectionGuard, (self.read_timeout_s, self.cap, self.ceiling)

    def evict(self, now: float, min_wait_s: float = EVICT_AFTER_S) -> bool:
        """Close the connection that has waited longest for a request, if that is `min_wait_s` or more."""
        for victim, since in self.waiting.items():
            if now - since < min_wait_s:
                return False
            victim.close_idle()
            return True
        return False


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the guard's read deadline and connection cap (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        guard: ConnectionGuard,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._guard = guard
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Accept the connection within the cap (evicting the longest-waiting one) and start its deadline."""
        super().connection_made(transport)
        guard = self._guard
        open_connections = len(self.connections)
        if guard.cap and open_connections > guard.cap and not guard.evict(self.loop.time()):
            if open_connections <= guard.ceiling:
                # No connection has waited long enough to be closed (they are busy with requests, or just
                # arrived): answer this one 503 as soon as its head is in.
                log.warning("connection limit reached (%d per process, none idle): answering 503", guard.cap)
                self.app = _over_capacity
            elif not guard.evict(self.loop.time(), min_wait_s=0.0):
                # No room left, not even to answer: every connection is busy with a request.
                log.warning("connection ceiling reached (%d per process, all busy): closing", guard.ceiling)
                transport.close()
                return
        self._track()

    def data_received(self, data: bytes) -> None:
        """Feed the request to h11, then stop the deadline if the request is complete."""
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        """After a response, the connection waits for its next request: a new deadline."""
        super().on_response_complete()
        self._track()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection."""
        self._stop_waiting()
        super().connection_lost(exc)

    def close_idle(self) -> None:
        """Close the connection (it holds no request in progress)."""
        self._stop_waiting()
        if not self.transport.is_closing():
            self.transport.close()

    def _track(self) -> None:
        """Keep the deadline and the waiting list in step with h11's view of the client's side."""
        if self.transport.is_closing():
            self._stop_waiting()
            return
        state = self.conn.their_state
        if state is h11.IDLE or state is h11.SEND_BODY:
            if self._deadline is None and self._guard.read_timeout_s:
                self._deadline = self.loop.call_later(self._guard.read_timeout_s, self._on_deadline)
            if state is h11.IDLE:
                self._guard.waiting.setdefault(self, self.loop.time())  # keeps its place if it was waiting already
            else:  # the head is in and the handler runs: not evictable, but the body must still arrive in time
                self._guard.waiting.pop(self, None)
        else:  # the request is complete (or the connection is done): no deadline
            self._stop_waiting()

    def _stop_waiting(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._guard.waiting.pop(self, None)

    def _on_deadline(self) -> None:
        self._deadline = None
        log.debug("closing a connection that sent no whole request within %g s", self._guard.read_timeout_s)
        self.close_idle()


_OVER_CAPACITY_BODY = msgspec.json.encode(
    problem_for(UnavailableError("the server is at its connection limit; retry later"))
)


async def _over_capacity(scope: Any, receive: Any, send: Any) -> None:
    """The ASGI answer of a connection beyond the cap: 503, Retry-After, and close."""
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(_OVER_CAPACITY_BODY)).encode()),
                (b"retry-after", RETRY_AFTER_S.encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _OVER_CAPACITY_BODY, "more_body": False})


def raise_open_file_limit() -> int:
    """Raise this process's soft open-file limit to its hard one (as Go's runtime does); the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # a container may forbid it: keep the soft limit
            pass
    return soft


def connection_limits(max_connections: int, open_files: int) -> tuple[int, int]:
    """The cap and the ceiling that fit `open_files` (0, 0 without `max_connections`).

    The cap leaves a quarter of the open files free and the ceiling `FD_RESERVE`: the event loop
    accepts every pending connection in one go, before the cap can close any.
    """
    if max_connections == 0:
        return 0, 0
    room = max(1, open_files - FD_RESERVE)
    cap = max(1, min(max_connections, open_files * 3 // 4, room))
    return cap, min(room, 2 * cap)


def uvicorn_limits(settings: Settings, open_files: int) -> dict[str, Any]:
    """Keyword arguments of `uvicorn.run` for the limits of `settings` in a process that may open `open_files`."""
    cap, ceiling = connection_limits(settings.max_connections, open_files)
    if cap < settings.max_connections:
        log.warning(
            "max_connections lowered from %d to %d to fit the open-file limit (%d)",
            settings.max_connections,
            cap,
            open_files,
        )
    limited = cap > 0 or settings.read_timeout_s > 0
    http: Any = (
        functools.partial(LimitedH11Protocol, guard=ConnectionGuard(settings.read_timeout_s, cap, ceiling))
        if limited
        else "h11"
    )
    return {
        "http": http,
        "backlog": BACKLOG,
        "timeout_keep_alive": KEEP_ALIVE_S,
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
    }
