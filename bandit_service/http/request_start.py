"""When a request reached the app: the mark that request metrics and request logs measure from.

Route middleware cannot observe the status of every answer: a 401, 403 or 429 raised by another
middleware (authentication, rate limits) is turned into a response by Litestar's app-level
exception handler, which sends through the app's `send`, not through a middleware's wrapped one.
So the observers are `before_send` hooks, which see every message the app sends, and this
middleware, first in the app's list, only records the start time in the request's state.
Requests that match no route (the router's 404 and 405) reach no middleware: they carry no
mark, and the hooks leave them out.
"""

from __future__ import annotations

import time
from typing import Any

from litestar.types import ASGIApp, Receive, Scope, Send

__all__ = ["STARTED", "RequestStartMiddleware", "started_at"]

STARTED = "bandit_service.started"
"""Key of the start time (`time.perf_counter()`) in the request's scope state."""


class RequestStartMiddleware:
    """ASGI middleware (`DefineMiddleware(RequestStartMiddleware)`): record the request's start time."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Mark the start, then serve the request."""
        scope["state"][STARTED] = time.perf_counter()
        await self._app(scope, receive, send)


def started_at(scope: Scope) -> float | None:
    """The request's start mark, or None for a request that matched no route."""
    state: dict[str, Any] = scope.get("state", {})
    started: float | None = state.get(STARTED)
    return started
