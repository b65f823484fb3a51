"""What storage reads for a report: counters per weights period and arm, metric statistics and sketches.

One `PeriodCounters` describes the whole experiment (read from the incremental counters) or one
segment of it (aggregated from the decisions at report time); the report builder input is made
from it in `domain.reports`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec
import numpy as np

from bandit_service.core.model import WeightsRecord
from policies.sketch import QuantileSketch
from policies.stats import FloatArray, StatsArray

__all__ = ["CounterRow", "MetricRow", "PeriodCounters", "ReportData", "SegmentData", "period_counters"]

CounterRow = tuple[int, int, float, float, float | None, float, float, float, float, float, float]
"""(weights_version, arm, units, trials, exposures, rewarded, expired, excluded, n, total, total_sq) of the
primary reward; exposures are None where they are not known (segments: exposures are counted, not logged)."""

MetricRow = tuple[int, int, str, float, float, float]
"""(weights_version, arm, metric, n, total, total_sq) of one extra metric."""


class PeriodCounters(msgspec.Struct, frozen=True, kw_only=True):
    """Counters per weights period (rows, by version) and arm (columns); arrays of shape (P, k), P >= 0."""

    versions: tuple[int, ...]
    units: FloatArray
    trials: FloatArray
    exposures: FloatArray | None  # None for segments (exposures of unit trials are counted, not logged)
    rewarded: FloatArray
    expired: FloatArray
    excluded: FloatArray
    reward: StatsArray
    metrics: dict[str, StatsArray]
    sketches: dict[str, tuple[QuantileSketch, ...]]  # one sketch per arm (over all periods)


class ReportData(msgspec.Struct, frozen=True, kw_only=True):
    """One consistent read of an experiment for its report: counters and the weights history."""

    counters: PeriodCounters
    history: tuple[WeightsRecord, ...]  # every weights version, oldest first
    # Per arm: decisions SDKs evaluated locally and logged, and those that contradicted the unit's
    # sticky arm (empty: none logged yet).
    local: tuple[int, ...] = ()
    contradicted: tuple[int, ...] = ()


class SegmentData(msgspec.Struct, frozen=True, kw_only=True):
    """The counters of each value of one decision attribute, and the weights history."""

    attribute: str
    segments: dict[str, PeriodCounters]  # attribute value as text -> its counters
    history: tuple[WeightsRecord, ...]


def period_counters(
    k: int,
    rows: Iterable[CounterRow],
    metric_rows: Iterable[MetricRow] = (),
    sketches: Mapping[str, tuple[QuantileSketch, ...]] | None = None,
) -> PeriodCounters:
    """Arrange counter rows by (version, arm); versions without any row are left out; rows for one cell add up."""
    rows = list(rows)
    metric_rows = list(metric_rows)
    versions = sorted({int(r[0]) for r in rows} | {int(r[0]) for r in metric_rows})
    where = {v: i for i, v in enumerate(versions)}
    shape = (len(versions), k)
    cells = np.zeros((9, *shape))
    exposures_known = True
    for version, arm, units, trials, exposures, *values in rows:
        exposures_known = exposures_known and exposures is not None
        cell = (units, trials, 0.0 if exposures is None else exposures, *values)
        cells[:, where[int(version)], int(arm)] += np.asarray(cell, dtype=np.float64)
    metrics: dict[str, FloatArray] = {}
    for version, arm, name, *sums in metric_rows:
        cell_sums = metrics.setdefault(name, np.zeros((3, *shape)))
        cell_sums[:, where[int(version)], int(arm)] += np.asarray(sums, dtype=np.float64)
    return PeriodCounters(
        versions=tuple(versions),
        units=cells[0],
        trials=cells[1],
        exposures=cells[2] if exposures_known else None,
        rewarded=cells[3],
        expired=cells[4],
        excluded=cells[5],
        reward=StatsArray(cells[6], cells[7], cells[8]),
        metrics={name: StatsArray(*cell) for name, cell in sorted(metrics.items())},
        sketches=dict(sketches or {}),
    )
