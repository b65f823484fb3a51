"""What `bandit-service serve` sets up around uvicorn for metrics and logs.

Several workers: each is a process of its own, so Prometheus metrics need prometheus-client's
multi-process mode. `serve` makes a fresh directory, names it in PROMETHEUS_MULTIPROC_DIR before
uvicorn starts the workers (they inherit the variable, and prometheus-client reads it when a worker
imports it), and removes the directory when uvicorn returns: values of an earlier run must not be
added to this one's. An operator who sets PROMETHEUS_MULTIPROC_DIR keeps it (and must empty it
between runs, as prometheus-client requires). One worker needs nothing: its metrics live in its
memory.

`log_format: json`: uvicorn gets the JSON logging configuration and its access log is turned off,
since the app logs one JSON line per request itself.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

from bandit_service.http.json_logs import logging_config
from bandit_service.http.metrics import MULTIPROCESS_ENV
from bandit_service.settings import Settings

__all__ = ["serving_observability"]


@contextmanager
def serving_observability(
    settings: Settings, workers: int, log_level: str, environ: MutableMapping[str, str]
) -> Iterator[dict[str, Any]]:
    """uvicorn options for the log format; with several workers and metrics on, a fresh metrics directory."""
    options: dict[str, Any] = {}
    if settings.log_format == "json":
        options = {"log_config": logging_config(log_level), "access_log": False}
    if workers == 1 or not settings.metrics or environ.get(MULTIPROCESS_ENV):
        yield options
        return
    directory = tempfile.mkdtemp(prefix="bandit-metrics-")
    environ[MULTIPROCESS_ENV] = directory
    try:
        yield options
    finally:
        environ.pop(MULTIPROCESS_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)
