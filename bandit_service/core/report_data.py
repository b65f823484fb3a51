"""What storage reads for a report: counters per weights period and arm, metric statistics and sketches.

One `PeriodCounters` describes the whole experiment (read from the incremental counters) or one
segment of it (aggregated from the decisions at report time); the report builder input is made
from it in `domain.reports`.

Every counter row carries a UTC day: the day its trial's opening decision was made
(`day_of(created_at)`), so a trial's exposures, rewards and expiry count on the day it opened.
A report over a range of days sums the days of each weights period in the range (it stays
stratified by weights period); `DailyCounters` sums the periods of each day instead, for charts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import msgspec
import numpy as np

from bandit_service.core.model import WeightsRecord
from policies.sketch import QuantileSketch
from policies.stats import FloatArray, StatsArray

__all__ = [
    "SECONDS_PER_DAY",
    "CounterRow",
    "DailyCounters",
    "MetricRow",
    "PeriodCounters",
    "ReportData",
    "SegmentData",
    "day_counters",
    "day_of",
    "period_counters",
]

SECONDS_PER_DAY = 86_400

CounterRow = tuple[int, int, int, float, float, float | None, float, float, float, float, float, float]
"""(weights_version, day, arm, units, trials, exposures, rewarded, expired, excluded, n, total, total_sq) of the
primary reward; exposures are None where they are not known (segments: exposures are counted, not logged)."""

MetricRow = tuple[int, int, int, str, float, float, float]
"""(weights_version, day, arm, metric, n, total, total_sq) of one extra metric."""


def day_of(timestamp: float) -> int:
    """The UTC day of a Unix time: whole days since 1970-01-01 (what the counters are dated by)."""
    return int(timestamp // SECONDS_PER_DAY)


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


class DailyCounters(msgspec.Struct, frozen=True, kw_only=True):
    """Counters per UTC day (rows, by day) and arm (columns), summed over weights periods; arrays of shape (D, k).

    A day counts the trials opened that day; days without any counter row are left out.
    """

    days: tuple[int, ...]  # day_of(created_at) of the trials' opening decisions, ascending
    units: FloatArray
    trials: FloatArray
    exposures: FloatArray  # always known here: the incremental counters count them
    rewarded: FloatArray
    reward: StatsArray
    metrics: dict[str, StatsArray]


def _within(day: int, since_day: int | None, until_day: int | None) -> bool:
    return (since_day is None or day >= since_day) and (until_day is None or day <= until_day)


def period_counters(
    k: int,
    rows: Iterable[CounterRow],
    metric_rows: Iterable[MetricRow] = (),
    sketches: Mapping[str, tuple[QuantileSketch, ...]] | None = None,
    *,
    since_day: int | None = None,
    until_day: int | None = None,
) -> PeriodCounters:
    """Arrange counter rows by (version, arm), summing their days (only those in [since_day, until_day], inclusive,
    when given); versions without any row are left out; rows for one cell add up."""
    rows = [r for r in rows if _within(int(r[1]), since_day, until_day)]
    metric_rows = [r for r in metric_rows if _within(int(r[1]), since_day, until_day)]
    versions = sorted({int(r[0]) for r in rows} | {int(r[0]) for r in metric_rows})
    where = {v: i for i, v in enumerate(versions)}
    shape = (len(versions), k)
    cells = np.zeros((9, *shape))
    exposures_known = True
    for version, _, arm, units, trials, exposures, *values in rows:
        exposures_known = exposures_known and exposures is not None
        cell = (units, trials, 0.0 if exposures is None else exposures, *values)
        cells[:, where[int(version)], int(arm)] += np.asarray(cell, dtype=np.float64)
    metrics: dict[str, FloatArray] = {}
    for version, _, arm, name, *sums in metric_rows:
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


def day_counters(k: int, rows: Iterable[CounterRow], metric_rows: Iterable[MetricRow] = ()) -> DailyCounters:
    """Arrange counter rows by (day, arm), summing their weights periods; days without any row are left out."""
    rows = list(rows)
    metric_rows = list(metric_rows)
    days = sorted({int(r[1]) for r in rows} | {int(r[1]) for r in metric_rows})
    where = {d: i for i, d in enumerate(days)}
    shape = (len(days), k)
    cells = np.zeros((7, *shape))
    for _, day, arm, units, trials, exposures, rewarded, _expired, _excluded, n, total, total_sq in rows:
        cell = (units, trials, exposures or 0.0, rewarded, n, total, total_sq)
        cells[:, where[int(day)], int(arm)] += np.asarray(cell, dtype=np.float64)
    metrics: dict[str, FloatArray] = {}
    for _, day, arm, name, *sums in metric_rows:
        cell_sums = metrics.setdefault(name, np.zeros((3, *shape)))
        cell_sums[:, where[int(day)], int(arm)] += np.asarray(sums, dtype=np.float64)
    return DailyCounters(
        days=tuple(days),
        units=cells[0],
        trials=cells[1],
        exposures=cells[2],
        rewarded=cells[3],
        reward=StatsArray(cells[4], cells[5], cells[6]),
        metrics={name: StatsArray(*cell) for name, cell in sorted(metrics.items())},
    )
