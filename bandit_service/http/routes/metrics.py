"""GET /metrics (registered only when the `metrics` setting is on)."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency
from prometheus_client import generate_latest

from bandit_service.http.counter_metrics import read_counters
from bandit_service.http.metrics import PrometheusMetrics
from bandit_service.ports import Storage

__all__ = ["MEDIA_TYPE", "metrics"]

MEDIA_TYPE = "text/plain; version=0.0.4"
"""Prometheus' text format (Litestar adds `charset=utf-8`)."""


# Role "read": the labels name every running experiment and its arms, which a `read` key may see
# anyway; a Prometheus scrape job sends such a key as its bearer token.
@get("/metrics", tags=["operations"], opt={"role": "read"}, media_type=MEDIA_TYPE)
async def metrics(storage: NamedDependency[Storage], prometheus: NamedDependency[PrometheusMetrics]) -> Response[bytes]:
    """Prometheus text format: per-arm counters from the database, and the metrics of this service's processes."""
    counters = await read_counters(storage)
    return Response(generate_latest(counters) + prometheus.exposition(), media_type=MEDIA_TYPE)
