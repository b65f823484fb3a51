"""A daily series of each arm's traffic and means: the dashboard's charts and "metrics by date range and variant".

Pure: the service reads `DailyCounters` and calls `build_timeseries`. A day is a UTC day and
counts the trials *opened* that day (their exposures, rewards and expiry included), so a recent
day's mean still moves while its trials' reward windows are open. Days without any trial are
left out (no row), not shown as zeros. The interval of each mean is the report's
(`metrics.mean_interval`: Wilson for 0/1 values, Student t otherwise) at the experiment's level;
a day's means are not adjusted for the weights changing within it (the report's are).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from bandit_service.core.reporting.inputs import PRIMARY
from bandit_service.core.reporting.metrics import mean_interval, metric_kind
from policies.stats import FloatArray, StatsArray

if TYPE_CHECKING:  # the type only: the service reads the counters and passes them in
    from bandit_service.core.report_data import DailyCounters

__all__ = ["CSV_COLUMNS", "DayArm", "DayMetric", "Timeseries", "build_timeseries", "iso_day", "timeseries_csv"]

CSV_COLUMNS = (
    "day",
    "arm",
    "metric",
    "units",
    "trials",
    "exposures",
    "rewarded",
    "n",
    "mean",
    "std_error",
    "lower",
    "upper",
)
_EPOCH = dt.date(1970, 1, 1)


class DayMetric(msgspec.Struct, frozen=True, kw_only=True):
    """One metric of one arm on one day: observations, mean, standard error and confidence interval (None: not
    defined, as without observations)."""

    day: str  # ISO date (UTC)
    arm: str
    metric: str
    n: int
    mean: float | None
    std_error: float | None  # s / sqrt(n); None below 2 observations
    lower: float | None
    upper: float | None


class DayArm(DayMetric, frozen=True, kw_only=True):
    """One arm on one day: its traffic and the primary reward's figures (`metric` is "reward")."""

    units: int  # units first assigned that day
    trials: int
    exposures: int
    rewarded: int


class Timeseries(msgspec.Struct, frozen=True, kw_only=True):
    """Per day and arm, the traffic and the mean of the primary reward and of each extra metric."""

    arms: tuple[str, ...]
    level: float  # of the intervals
    window: tuple[str, str] | None  # ISO dates asked for (from, to); None: the whole experiment
    days: tuple[str, ...]  # days with traffic, ascending
    primary: tuple[DayArm, ...]  # by day, then arm
    metrics: tuple[DayMetric, ...]  # by metric name, day, then arm


def iso_day(day: int) -> str:
    """The ISO date of a UTC day number (days since 1970-01-01)."""
    return (_EPOCH + dt.timedelta(days=day)).isoformat()


def _figures(stats: StatsArray, level: float) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Mean, standard error and interval per (day, arm); the kind (0/1 or not) from all days together."""
    total = stats.pooled()
    lower, upper = mean_interval(stats, metric_kind(total), level)
    with np.errstate(divide="ignore", invalid="ignore"):
        std_error = np.sqrt(stats.variance / stats.n)
    return stats.mean, std_error, lower, upper


def build_timeseries(
    arms: tuple[str, ...], daily: DailyCounters, level: float, window: tuple[str, str] | None = None
) -> Timeseries:
    """Each day's per-arm traffic and means, from the counters of the trials opened that day."""
    days = tuple(iso_day(d) for d in daily.days)
    mean, se, lo, hi = _figures(daily.reward, level)
    primary = tuple(
        DayArm(
            day=day,
            arm=arm,
            metric=PRIMARY,
            units=round(float(daily.units[i, a])),
            trials=round(float(daily.trials[i, a])),
            exposures=round(float(daily.exposures[i, a])),
            rewarded=round(float(daily.rewarded[i, a])),
            n=round(float(daily.reward.n[i, a])),
            mean=_value(mean[i, a]),
            std_error=_value(se[i, a]),
            lower=_value(lo[i, a]),
            upper=_value(hi[i, a]),
        )
        for i, day in enumerate(days)
        for a, arm in enumerate(arms)
    )
    metrics: list[DayMetric] = []
    for name, stats in daily.metrics.items():
        if name == PRIMARY:  # as in the report: that name is the primary reward's
            continue
        m_mean, m_se, m_lo, m_hi = _figures(stats, level)
        metrics += [
            DayMetric(
                day=day,
                arm=arm,
                metric=name,
                n=round(float(stats.n[i, a])),
                mean=_value(m_mean[i, a]),
                std_error=_value(m_se[i, a]),
                lower=_value(m_lo[i, a]),
                upper=_value(m_hi[i, a]),
            )
            for i, day in enumerate(days)
            for a, arm in enumerate(arms)
        ]
    return Timeseries(arms=arms, level=level, window=window, days=days, primary=primary, metrics=tuple(metrics))


def _value(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _cell(x: float | None) -> str:
    return "" if x is None else repr(x)


def timeseries_csv(series: Timeseries) -> str:
    """One row per (day, arm, metric), primary reward ("reward") first; empty cells where a figure is undefined."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for p in series.primary:
        figures = (_cell(x) for x in (p.mean, p.std_error, p.lower, p.upper))
        writer.writerow((p.day, p.arm, p.metric, p.units, p.trials, p.exposures, p.rewarded, p.n, *figures))
    for m in series.metrics:
        figures = (_cell(x) for x in (m.mean, m.std_error, m.lower, m.upper))
        writer.writerow((m.day, m.arm, m.metric, "", "", "", "", m.n, *figures))
    return out.getvalue()
