"""The telemetry seam: what the services and the writer report as they work, and a default that ignores it.

Services and storage call these methods and never see a metrics library: the app injects an
implementation (`bandit_service.http.metrics`, Prometheus) when `metrics` is on, and `NoTelemetry`
otherwise. Every call is made off the decision's happy path (a failed write, a reweight, a commit
batch, a scheduler tick), so the no-op default costs the hot path nothing.
"""

from __future__ import annotations

from typing import Literal, Protocol

__all__ = ["NoTelemetry", "ReweightOutcome", "Telemetry", "TickOutcome"]

ReweightOutcome = Literal["applied", "superseded", "failed"]
"""A reweight stored its weights, lost the compare-and-set to a concurrent change, or raised."""

TickOutcome = Literal["ok", "failed"]


class Telemetry(Protocol):
    """Receives what happened; implementations must be cheap and thread-safe (the writer calls from its thread)."""

    def decision_failed(self, experiment: str, arm: str, error: str) -> None:
        """A decision for an existing experiment was not stored (`error`: the exception's class name)."""
        ...

    def committed(self, writes: int, seconds: float, ok: bool) -> None:
        """The writer ran one transaction of `writes` queued writes in `seconds`; `ok` if it committed."""
        ...

    def reweighted(self, experiment: str, reason: str, outcome: ReweightOutcome, seconds: float, at: float) -> None:
        """A reweight ran for `seconds`; `at` is the service clock's time it was computed for."""
        ...

    def scheduler_lag(self, seconds: float) -> None:
        """A scheduler tick started `seconds` after the time it was scheduled for."""
        ...

    def ticked(self, outcome: TickOutcome, seconds: float, at: float) -> None:
        """A scheduler tick ran for `seconds`; `at` is the service clock's time at its start."""
        ...


class NoTelemetry:
    """Telemetry that records nothing (metrics off, and services built directly in tests)."""

    def decision_failed(self, experiment: str, arm: str, error: str) -> None:
        """Ignore."""

    def committed(self, writes: int, seconds: float, ok: bool) -> None:
        """Ignore."""

    def reweighted(self, experiment: str, reason: str, outcome: ReweightOutcome, seconds: float, at: float) -> None:
        """Ignore."""

    def scheduler_lag(self, seconds: float) -> None:
        """Ignore."""

    def ticked(self, outcome: TickOutcome, seconds: float, at: float) -> None:
        """Ignore."""
