"""Per-route request metrics: one histogram observation per HTTP request, by method, route template and status.

The route label is Litestar's route template (`/v1/experiments/{key}`), never the raw path, so the
number of series is bounded by the routes, methods and statuses. The latency runs from the start
mark (`request_start`) to the response's start, which for the service's JSON answers is sent
together with its body.

A `before_send` hook, so that answers made by Litestar's exception handler (401, 403, 429 raised
in middleware) are counted with their real status. The decision path pays a clock reading, a dict
lookup and one histogram observation: the labelled child of each (method, route, status) is made
once and kept.
"""

from __future__ import annotations

import time
from typing import cast

from litestar.types import HTTPScope, Message, Scope
from prometheus_client import Histogram

from bandit_service.http.metrics import PrometheusMetrics
from bandit_service.http.request_start import started_at

__all__ = ["RequestMetrics"]


class RequestMetrics:
    """Observes each answered request in the app's request histogram."""

    def __init__(self, metrics: PrometheusMetrics) -> None:
        self._histogram = metrics.requests
        self._children: dict[tuple[str, str, int], Histogram] = {}

    async def before_send(self, message: Message, scope: Scope) -> None:
        """Litestar `before_send` hook: on the response's start, observe the time since the request's."""
        if message["type"] != "http.response.start":
            return
        started = started_at(scope)
        if started is None:
            return
        elapsed = time.perf_counter() - started
        key = (cast("HTTPScope", scope)["method"], scope["path_template"], message["status"])
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._histogram.labels(key[0], key[1], str(key[2]))
        child.observe(elapsed)
