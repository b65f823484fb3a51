"""The service's own Prometheus metrics (prometheus-client): what each process did, summed over workers.

One `PrometheusMetrics` per app implements the `Telemetry` port (commits, reweights, scheduler
ticks, failed decisions) and holds the per-route request histogram the middleware observes.

Single process: the metrics live in a registry of the app's own (no module-level state, so two
apps in one test process count apart), with the process, platform and garbage-collector metrics.
Several workers (`serve --workers N`): prometheus-client's multi-process mode. Each worker writes
its values to memory-mapped files in PROMETHEUS_MULTIPROC_DIR, and a scrape answered by any worker
merges the files of all of them (counters and histograms summed, the timestamp gauges by maximum),
so every worker answers with the same totals. prometheus-client chooses the mode when it is first
imported, from that variable; `multiprocess_dir` asks the same variable, so the two always agree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from bandit_service.core.telemetry import ReweightOutcome, TickOutcome

__all__ = ["MULTIPROCESS_ENV", "PrometheusMetrics", "multiprocess_dir"]

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JOB_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


def multiprocess_dir(environ: Mapping[str, str] | None = None) -> str | None:
    """The multi-process directory prometheus-client writes to, or None in single-process mode.

    prometheus-client reads this variable itself, at import; asking it here (instead of through a
    BANDIT_* setting that could disagree with it) is why this module reads the environment.
    """
    env = os.environ if environ is None else environ
    return env.get(MULTIPROCESS_ENV) or None


class PrometheusMetrics:
    """The metric objects of one app, its `Telemetry`, and the exposition of what they hold."""

    def __init__(self, directory: str | None = None) -> None:
        """`directory`: prometheus-client's multi-process directory (`multiprocess_dir()`), None for one process."""
        self.directory = directory
        self._registry = CollectorRegistry()
        # In multi-process mode the values go to files and a scrape merges the files; registering
        # the objects too would report this process's values twice.
        registry = None if directory is not None else self._registry
        if directory is None:
            ProcessCollector(registry=self._registry)
            PlatformCollector(registry=self._registry)
            GCCollector(registry=self._registry)
        self.requests = Histogram(
            "bandit_http_request_duration_seconds",
            "HTTP requests by method, route template and status: latency (its _count is the request count)",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._decision_errors = Counter(
            "bandit_decision_errors",
            "Decisions for an existing experiment that were not stored, by experiment, candidate arm and error",
            ["experiment", "arm", "error"],
            registry=registry,
        )
        self._commit_writes = Histogram(
            "bandit_commit_batch_writes",
            "Writes per group-commit transaction, by outcome (committed or failed)",
            ["outcome"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self._commit_seconds = Histogram(
            "bandit_commit_duration_seconds",
            "Time to run and commit one group-commit transaction, by outcome",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._reweights = Counter(
            "bandit_reweights",
            "Reweight runs by experiment, reason (schedule, manual) and outcome (applied, superseded, failed)",
            ["experiment", "reason", "outcome"],
            registry=registry,
        )
        self._reweight_seconds = Histogram(
            "bandit_reweight_duration_seconds",
            "Time of one reweight: counters read, policy computed, weights stored",
            ["reason"],
            buckets=JOB_BUCKETS,
            registry=registry,
        )
        self._reweight_success = Gauge(
            "bandit_reweight_last_success_timestamp_seconds",
            "Unix time of the experiment's last applied reweight (service clock)",
            ["experiment"],
            multiprocess_mode="max",
            registry=registry,
        )
        self._scheduler_lag = Histogram(
            "bandit_scheduler_lag_seconds",
            "How late a scheduler tick started after the time it was scheduled for",
            buckets=JOB_BUCKETS,
            registry=registry,
        )
        self._ticks = Histogram(
            "bandit_scheduler_tick_duration_seconds",
            "Time of one scheduler tick (expiry, rollouts, reweights), by outcome",
            ["outcome"],
            buckets=JOB_BUCKETS,
            registry=registry,
        )
        self._tick_success = Gauge(
            "bandit_scheduler_last_tick_timestamp_seconds",
            "Unix time of the last scheduler tick that finished without error (service clock)",
            multiprocess_mode="max",
            registry=registry,
        )

    def exposition(self) -> bytes:
        """This app's metrics (every worker's, merged, in multi-process mode) in the Prometheus text format."""
        if self.directory is None:
            return generate_latest(self._registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self.directory)
        return generate_latest(merged)

    def decision_failed(self, experiment: str, arm: str, error: str) -> None:
        """Count a decision that was not stored."""
        self._decision_errors.labels(experiment, arm, error).inc()

    def committed(self, writes: int, seconds: float, ok: bool) -> None:
        """Observe one writer transaction."""
        outcome = "committed" if ok else "failed"
        self._commit_writes.labels(outcome).observe(writes)
        self._commit_seconds.labels(outcome).observe(seconds)

    def reweighted(self, experiment: str, reason: str, outcome: ReweightOutcome, seconds: float, at: float) -> None:
        """Count and time one reweight; an applied one sets the experiment's last success time."""
        self._reweights.labels(experiment, reason, outcome).inc()
        self._reweight_seconds.labels(reason).observe(seconds)
        if outcome == "applied":
            self._reweight_success.labels(experiment).set(at)

    def scheduler_lag(self, seconds: float) -> None:
        """Observe how late a tick started."""
        self._scheduler_lag.observe(seconds)

    def ticked(self, outcome: TickOutcome, seconds: float, at: float) -> None:
        """Time one tick; a successful one sets the last tick time."""
        self._ticks.labels(outcome).observe(seconds)
        if outcome == "ok":
            self._tick_success.set(at)
