"""The reads behind a report: incremental counters for the whole experiment, a GROUP BY for segments.

Whole experiment: the per-period counters and metric statistics, the quantile sketches and the
weights history, all read in one read transaction (one snapshot), so the counts agree with
each other.

Segments (`?segment=language`): aggregated at report time, in SQL, by the JSON value of the
attribute on the experiment's decisions joined with their rewards: GROUP BY (value, weights
version, arm). Incremental counters per attribute value would put a write per attribute (up
to 64 per decision) on the decision path, explode on high-cardinality attributes (a user id),
and need the attribute chosen in advance; a report is a rare read, and the GROUP BY gives
exact counts for any attribute with the same SQL on SQLite and PostgreSQL (SQLAlchemy renders
the JSON access for each). Segment quantiles are the one figure SQL cannot aggregate portably,
so the latency values of the segmented metrics are streamed once and sketched in Python.

Time windows (`?from=&to=`, UTC days, inclusive) count the trials opened in the window: the
counters are read for the window's days (each row is dated by its trial's opening decision),
segments filter the decisions on `created_at`. The stored quantile sketches and the per-arm
local-decision counters are not dated, so a window's sketches are made from the rewards of its
trials, as a segment's are, and its report shows no local-decision counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import msgspec
import numpy as np
from sqlalchemy import Integer, Text, and_, case, cast, exists, func, null, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from bandit_service.core.errors import InvalidFieldError
from bandit_service.core.model import Experiment, WeightsRecord
from bandit_service.core.report_data import (
    SECONDS_PER_DAY,
    CounterRow,
    DailyCounters,
    MetricRow,
    PeriodCounters,
    ReportData,
    SegmentData,
    day_counters,
    period_counters,
)
from bandit_service.storage.convert import weights_from_row
from bandit_service.storage.database import Database
from bandit_service.storage.sketches import SKETCH_ACCURACY, is_sketched, read_sketches
from bandit_service.storage.tables import (
    ARM_COUNTERS,
    ARM_METRICS,
    DECISIONS,
    PERIOD_METRICS,
    PERIODS,
    REWARDS,
    WEIGHTS,
)
from policies.sketch import QuantileSketch

__all__ = ["MISSING", "ReportStore", "SqlReportStore", "segment_label"]

MISSING = "(none)"  # the segment of decisions without the attribute
METRICS_PER_QUERY = 32  # three aggregate columns each


class ReportStore(Protocol):
    """What a report reads from storage."""

    def report_data(
        self, experiment: Experiment, *, since_day: int | None = None, until_day: int | None = None
    ) -> ReportData:
        """Counters per weights period and arm, metric statistics, sketches and the weights history (of the
        trials opened from `since_day` to `until_day`, inclusive, when given)."""
        ...

    def segment_data(
        self,
        experiment: Experiment,
        attribute: str,
        max_segments: int,
        since_day: int | None = None,
        until_day: int | None = None,
    ) -> SegmentData:
        """The same per value of a decision attribute (InvalidFieldError beyond `max_segments` values)."""
        ...

    def daily_counters(
        self, experiment: Experiment, since_day: int | None = None, until_day: int | None = None
    ) -> DailyCounters:
        """Counters per UTC day and arm, summed over weights periods, of the trials opened in the window."""
        ...


def segment_label(json_text: str | None) -> str:
    """The name of a segment from the attribute's JSON text: strings as they are, other values as JSON."""
    if json_text is None:
        return MISSING
    value = msgspec.json.decode(json_text)
    if value is None:
        return MISSING
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


class SqlReportStore:
    """Report reads on the read engine, one snapshot per report."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _connect(self) -> Any:
        conn = self.db.read.connect()
        if self.db.dialect == "postgresql":
            # One snapshot for all the statements of a report (SQLite's read transaction already is one).
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        return conn

    def report_data(
        self, experiment: Experiment, *, since_day: int | None = None, until_day: int | None = None
    ) -> ReportData:
        """Counters per weights period and arm, metric statistics, sketches and the weights history (of the
        trials opened from `since_day` to `until_day`, inclusive, when given)."""
        k = len(experiment.arms)
        window = since_day is not None or until_day is not None
        with self._connect() as conn, conn.begin():
            rows, metric_rows = _counter_rows(conn, experiment.id, since_day, until_day)
            if window:
                names = [n for n in _metric_names(conn, experiment.id) if is_sketched(n)]
                opened = _opened_between(since_day, until_day)
                sketches = _sketches(conn, experiment.id, None, names, k, opened).get(MISSING, {})
            else:
                sketches = read_sketches(conn, experiment.id, k)
            history = _history(conn, experiment.id)
            local, contradicted = ([0] * k, [0] * k) if window else _local_counts(conn, experiment.id, k)
        return ReportData(
            counters=period_counters(k, rows, metric_rows, sketches),
            history=history,
            local=tuple(local) if any(local) else (),
            contradicted=tuple(contradicted) if any(local) else (),
        )

    def segment_data(
        self,
        experiment: Experiment,
        attribute: str,
        max_segments: int,
        since_day: int | None = None,
        until_day: int | None = None,
    ) -> SegmentData:
        """Counters per value of a decision attribute (of the decisions opened in the window, when given),
        aggregated with GROUP BY in one snapshot."""
        k = len(experiment.arms)
        default = experiment.config.missing_reward or 0.0  # excluded trials count nothing
        value = _attribute_json(self.db.dialect, attribute)
        opened = _opened_between(since_day, until_day)
        day = _day(self.db.dialect, DECISIONS.c.created_at)
        with self._connect() as conn, conn.begin():
            values = conn.execute(
                select(value)
                .distinct()
                .where(DECISIONS.c.experiment_id == experiment.id, *opened)
                .limit(max_segments + 1)
            ).all()
            if len(values) > max_segments:
                raise InvalidFieldError(
                    f"attribute {attribute!r} has more than {max_segments} values; segment by an attribute "
                    "with fewer values",
                    field="segment",
                )
            rows = _traffic(conn, experiment.id, value, day, opened, default)
            names = _metric_names(conn, experiment.id)
            metric_rows: dict[str, list[MetricRow]] = {}
            for start in range(0, len(names), METRICS_PER_QUERY):
                chunk = names[start : start + METRICS_PER_QUERY]
                for label, row in _metrics(conn, experiment.id, value, day, opened, chunk):
                    metric_rows.setdefault(label, []).append(row)
            sketches = _sketches(conn, experiment.id, value, [n for n in names if is_sketched(n)], k, opened)
            history = _history(conn, experiment.id)
        segments: dict[str, PeriodCounters] = {}
        for label in sorted(set(rows) | set(metric_rows)):
            segments[label] = period_counters(k, rows.get(label, []), metric_rows.get(label, []), sketches.get(label))
        return SegmentData(attribute=attribute, segments=segments, history=history)

    def daily_counters(
        self, experiment: Experiment, since_day: int | None = None, until_day: int | None = None
    ) -> DailyCounters:
        """Counters per UTC day and arm, summed over weights periods, of the trials opened in the window."""
        with self._connect() as conn, conn.begin():
            rows, metric_rows = _counter_rows(conn, experiment.id, since_day, until_day)
        return day_counters(len(experiment.arms), rows, metric_rows)


def _counter_rows(
    conn: Connection, experiment_id: int, since_day: int | None, until_day: int | None
) -> tuple[list[CounterRow], list[MetricRow]]:
    """The per-period counter and metric rows of the days in [since_day, until_day] (None: unbounded)."""
    days: list[ColumnElement[bool]] = []
    metric_days: list[ColumnElement[bool]] = []
    if since_day is not None:
        days.append(PERIODS.c.day >= since_day)
        metric_days.append(PERIOD_METRICS.c.day >= since_day)
    if until_day is not None:
        days.append(PERIODS.c.day <= until_day)
        metric_days.append(PERIOD_METRICS.c.day <= until_day)
    rows: list[CounterRow] = [
        (
            r.weights_version,
            r.day,
            r.arm,
            r.units,
            r.trials,
            r.exposures,
            r.rewarded,
            r.expired,
            r.excluded,
            r.n,
            r.total,
            r.total_sq,
        )
        for r in conn.execute(select(PERIODS).where(PERIODS.c.experiment_id == experiment_id, *days))
    ]
    metric_rows: list[MetricRow] = [
        (r.weights_version, r.day, r.arm, r.metric, r.n, r.total, r.total_sq)
        for r in conn.execute(
            select(PERIOD_METRICS).where(PERIOD_METRICS.c.experiment_id == experiment_id, *metric_days)
        )
    ]
    return rows, metric_rows


def _local_counts(conn: Connection, experiment_id: int, k: int) -> tuple[list[int], list[int]]:
    """Per arm, the decisions SDKs logged and those that contradicted the sticky arm (not dated: whole experiment)."""
    local, contradicted = [0] * k, [0] * k
    for arm, n_local, n_contradicted in conn.execute(
        select(ARM_COUNTERS.c.arm, ARM_COUNTERS.c.local, ARM_COUNTERS.c.contradicted).where(
            ARM_COUNTERS.c.experiment_id == experiment_id, ARM_COUNTERS.c.local > 0
        )
    ):
        if 0 <= arm < k:
            local[arm], contradicted[arm] = int(n_local), int(n_contradicted)
    return local, contradicted


def _metric_names(conn: Connection, experiment_id: int) -> list[str]:
    """The names of the experiment's extra metrics, sorted."""
    query = (
        select(ARM_METRICS.c.metric)
        .distinct()
        .where(ARM_METRICS.c.experiment_id == experiment_id)
        .order_by(ARM_METRICS.c.metric)
    )
    return [r.metric for r in conn.execute(query)]


def _opened_between(since_day: int | None, until_day: int | None) -> list[ColumnElement[bool]]:
    """Conditions on a decision's `created_at`: made on a UTC day in [since_day, until_day] (None: unbounded)."""
    out: list[ColumnElement[bool]] = []
    if since_day is not None:
        out.append(DECISIONS.c.created_at >= since_day * SECONDS_PER_DAY)
    if until_day is not None:
        out.append(DECISIONS.c.created_at < (until_day + 1) * SECONDS_PER_DAY)
    return out


def _day(dialect: str, timestamp: ColumnElement[Any]) -> ColumnElement[Any]:
    """The UTC day of a Unix time, in SQL (`core.report_data.day_of`)."""
    if dialect == "sqlite":
        return cast(timestamp / float(SECONDS_PER_DAY), Integer)  # truncation: the floor of a positive time
    return cast(func.floor(timestamp / float(SECONDS_PER_DAY)), Integer)  # PostgreSQL's cast rounds


def _attribute_json(dialect: str, attribute: str) -> ColumnElement[Any]:
    """The JSON text of a decision attribute (NULL or 'null' when absent), in SQL."""
    if dialect == "sqlite":
        # SQLite's json_extract turns true into 1, so a true and a 1 would share a segment; json_type
        # tells them apart. Attribute names cannot hold a double quote, so the quoted path is safe.
        path = f'$."{attribute}"'
        kind = func.json_type(DECISIONS.c.attributes, path)
        return case(
            (kind == "true", "true"),
            (kind == "false", "false"),
            else_=func.json_quote(func.json_extract(DECISIONS.c.attributes, path)),
        )
    return cast(DECISIONS.c.attributes[attribute], Text)  # PostgreSQL: (attributes -> 'name')::text


def _history(conn: Connection, experiment_id: int) -> tuple[WeightsRecord, ...]:
    rows = conn.execute(select(WEIGHTS).where(WEIGHTS.c.experiment_id == experiment_id).order_by(WEIGHTS.c.version))
    return tuple(weights_from_row(r._mapping) for r in rows)


def _traffic(
    conn: Connection,
    experiment_id: int,
    value: ColumnElement[Any],
    day: ColumnElement[Any],
    opened: Sequence[ColumnElement[bool]],
    default: float,
) -> dict[str, list[CounterRow]]:
    """Trials, new units, trial status and trial-value sums per (segment, version, day, arm)."""
    # A trial counts with its value after its last reward (the reward with the highest seq).
    later = REWARDS.alias("later")
    last_reward = and_(
        REWARDS.c.decision_id == DECISIONS.c.id,
        ~exists().where(later.c.decision_id == REWARDS.c.decision_id, later.c.seq > REWARDS.c.seq),
    )
    # The grouping key is computed in a subquery and grouped by name: PostgreSQL refuses to match
    # a SELECT expression against a GROUP BY expression whose bound parameters differ.
    sub = (
        select(
            value.label("segment"),
            DECISIONS.c.weights_version,
            day.label("day"),
            DECISIONS.c.arm,
            DECISIONS.c.new_unit,
            DECISIONS.c.status,
            func.coalesce(REWARDS.c.trial_value, REWARDS.c.value).label("value"),
        )
        .select_from(DECISIONS.outerjoin(REWARDS, last_reward))
        .where(DECISIONS.c.experiment_id == experiment_id, *opened)
        .subquery()
    )
    query = select(
        sub.c.segment,
        sub.c.weights_version,
        sub.c.day,
        sub.c.arm,
        func.sum(case((sub.c.new_unit, 1), else_=0)),
        func.count(),
        func.sum(case((sub.c.status == "rewarded", 1), else_=0)),
        func.sum(case((sub.c.status == "expired", 1), else_=0)),
        func.sum(case((sub.c.status == "excluded", 1), else_=0)),
        func.coalesce(func.sum(sub.c.value), 0.0),
        func.coalesce(func.sum(sub.c.value * sub.c.value), 0.0),
    ).group_by(sub.c.segment, sub.c.weights_version, sub.c.day, sub.c.arm)
    out: dict[str, list[CounterRow]] = {}
    for segment, version, day_, arm, units, trials, rewarded, expired, excluded, total, total_sq in conn.execute(query):
        # An expired trial counts with the missing value, as in the incremental counters.
        row: CounterRow = (
            version,
            day_,
            arm,
            units,
            trials,
            None,  # exposures of unit trials are counted per arm, not logged per decision
            rewarded,
            expired,
            excluded,
            rewarded + expired,
            total + expired * default,
            total_sq + expired * default * default,
        )
        out.setdefault(segment_label(segment), []).append(row)
    return out


def _metrics(
    conn: Connection,
    experiment_id: int,
    value: ColumnElement[Any],
    day: ColumnElement[Any],
    opened: Sequence[ColumnElement[bool]],
    names: Sequence[str],
) -> list[tuple[str, MetricRow]]:
    """Count, sum and sum of squares of each metric per (segment, version, day, arm)."""
    if not names:
        return []
    columns = [REWARDS.c.metrics[name].as_float().label(f"m{i}") for i, name in enumerate(names)]
    sub = (
        select(value.label("segment"), REWARDS.c.weights_version, day.label("day"), REWARDS.c.arm, *columns)
        .select_from(REWARDS.join(DECISIONS, DECISIONS.c.id == REWARDS.c.decision_id))
        .where(REWARDS.c.experiment_id == experiment_id, *opened)
        .subquery()
    )
    aggregates = []
    for i in range(len(names)):
        x = sub.c[f"m{i}"]
        aggregates += [func.count(x), func.coalesce(func.sum(x), 0.0), func.coalesce(func.sum(x * x), 0.0)]
    query = select(sub.c.segment, sub.c.weights_version, sub.c.day, sub.c.arm, *aggregates).group_by(
        sub.c.segment, sub.c.weights_version, sub.c.day, sub.c.arm
    )
    out: list[tuple[str, MetricRow]] = []
    for segment, version, day_, arm, *sums in conn.execute(query):
        label = segment_label(segment)
        for i, name in enumerate(names):
            n, total, total_sq = sums[3 * i : 3 * i + 3]
            if n:
                out.append((label, (version, day_, arm, name, n, total, total_sq)))
    return out


def _sketches(
    conn: Connection,
    experiment_id: int,
    value: ColumnElement[Any] | None,
    names: Sequence[str],
    k: int,
    opened: Sequence[ColumnElement[bool]] = (),
) -> dict[str, dict[str, tuple[QuantileSketch, ...]]]:
    """Per segment (all under MISSING when `value` is None), metric and arm, a sketch of the latency-like values
    of the rewards of the decisions opened in the window (negative ones left out, as stored)."""
    out: dict[str, dict[str, tuple[QuantileSketch, ...]]] = {}
    empty = QuantileSketch(relative_accuracy=SKETCH_ACCURACY)
    segment = value if value is not None else cast(null(), Text)
    for name in names:
        x = REWARDS.c.metrics[name].as_float()
        query = (
            select(segment, REWARDS.c.arm, x)
            .select_from(REWARDS.join(DECISIONS, DECISIONS.c.id == REWARDS.c.decision_id))
            .where(REWARDS.c.experiment_id == experiment_id, x >= 0, *opened)
        )
        values: dict[tuple[str, int], list[float]] = {}
        for segment, arm, v in conn.execute(query):
            values.setdefault((segment_label(segment), arm), []).append(v)
        for label in {label for label, _ in values}:
            out.setdefault(label, {})[name] = tuple(
                empty.add(np.asarray(values[(label, i)])) if (label, i) in values else empty for i in range(k)
            )
    return out
