"""Quantile sketches of latency-like metrics per arm, kept in the same transaction as the rewards.

Which metrics: those whose name says they are a duration or a size that operators read as
quantiles, by the usual naming convention: ending in `_ms`, `_us`, `_ns`, `_s`, `_seconds` or
`_bytes`, or containing `latency` or `duration` (`latency_ms`, `ttft_ms`, `duration_s`). Means
and sums of every metric are counted anyway; a sketch is only worth its rows where p95 and p99
mean something, and 0/1 metrics such as `error` would only give quantiles of 0 and 1. Negative
values (not a duration) are left out of the sketch, never refused: the reward is still counted.

Storage: a sketch is a histogram (policies.sketch.QuantileSketch, DDSketch buckets), so it is
kept as rows that only ever grow by addition: one summary row per (experiment, arm, metric)
with count, zero count, sum, minimum and maximum, and one row per non-empty bucket. A batch of
rewards adds to them with one upsert per table (`count = count + excluded.count`), exactly like
the counters, so concurrent replicas never lose an update and nothing is rescanned.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
from sqlalchemy import case, select
from sqlalchemy.engine import Connection

from bandit_service.storage.database import Database
from bandit_service.storage.statements import Execution
from bandit_service.storage.tables import BUCKETS, SKETCHES
from policies.sketch import QuantileSketch

__all__ = ["SKETCH_ACCURACY", "SketchDeltas", "SketchStatements", "is_sketched", "read_sketches"]

SKETCH_ACCURACY = 0.01  # every quantile within 1% of the exact order statistic

_SKETCHED = re.compile(r"(_ms|_us|_ns|_s|_seconds|_bytes)$|latency|duration")


def is_sketched(metric: str) -> bool:
    """Whether a metric's quantiles are kept (latency-like by name; see the module docstring)."""
    return _SKETCHED.search(metric.lower()) is not None


class SketchDeltas:
    """The sketched metric values of one transaction, per (experiment, arm, metric)."""

    def __init__(self) -> None:
        self.values: dict[tuple[int, int, str], list[float]] = {}

    def reward(self, experiment_id: int, arm: int, metrics: Mapping[str, float]) -> None:
        """Add a reward's latency-like metric values."""
        for name, x in metrics.items():
            if x >= 0 and is_sketched(name):
                self.values.setdefault((experiment_id, arm, name), []).append(float(x))

    def merge(self, other: SketchDeltas) -> None:
        """Add another transaction part's values to these."""
        for key, values in other.values.items():
            self.values.setdefault(key, []).extend(values)

    def flush(self, conn: Connection, statements: SketchStatements) -> None:
        """Add the values to the stored sketches (one upsert per table) and forget them."""
        if not self.values:
            return
        # The rows of `QuantileSketch().add(values)` per sketch, with the same bucket formula and
        # the same numpy log, but one numpy pass for the whole transaction: per-sketch numpy
        # calls and validated sketch objects were a measurable share of the writer thread's time.
        groups = sorted(self.values.items())  # sorted: replicas lock shared rows in one order
        flat = np.fromiter((x for _, values in groups for x in values), dtype=np.float64)
        if not np.all(np.isfinite(flat)):
            raise ValueError("values: must be finite (no NaN or infinity)")
        log_gamma = math.log(QuantileSketch(relative_accuracy=SKETCH_ACCURACY).gamma)
        positive = flat > 0
        keys = np.zeros(flat.size, dtype=np.int64)
        keys[positive] = np.ceil(np.log(flat[positive]) / log_gamma).astype(np.int64)
        summaries: list[dict[str, Any]] = []
        buckets: list[dict[str, Any]] = []
        start = 0
        for (experiment_id, arm, metric), values in groups:
            end = start + len(values)
            key = {"experiment_id": experiment_id, "arm": arm, "metric": metric}
            in_sketch = zip(keys[start:end].tolist(), positive[start:end].tolist(), strict=True)
            counts = Counter(k for k, is_positive in in_sketch if is_positive)
            summaries.append(
                {
                    **key,
                    "count": len(values),
                    "zero_count": len(values) - sum(counts.values()),
                    "total": math.fsum(values),
                    "minimum": min(values),
                    "maximum": max(values),
                }
            )
            buckets.extend({**key, "bucket": b, "count": c} for b, c in sorted(counts.items()))
            start = end
        statements.summary.execute(conn, summaries)
        statements.buckets.execute(conn, buckets)
        self.values.clear()


class SketchStatements:
    """The two sketch upserts, built once per database."""

    def __init__(self, db: Database, execution: Execution) -> None:
        insert = db.upsert(SKETCHES)
        new = insert.excluded
        # CASE rather than LEAST/GREATEST or two-argument MIN/MAX: the same SQL on SQLite and PostgreSQL.
        summary = insert.on_conflict_do_update(
            index_elements=["experiment_id", "arm", "metric"],
            set_={
                "count": SKETCHES.c.count + new.count,
                "zero_count": SKETCHES.c.zero_count + new.zero_count,
                "total": SKETCHES.c.total + new.total,
                "minimum": case((new.minimum < SKETCHES.c.minimum, new.minimum), else_=SKETCHES.c.minimum),
                "maximum": case((new.maximum > SKETCHES.c.maximum, new.maximum), else_=SKETCHES.c.maximum),
            },
        )
        bucket_insert = db.upsert(BUCKETS)
        buckets = bucket_insert.on_conflict_do_update(
            index_elements=["experiment_id", "arm", "metric", "bucket"],
            set_={"count": BUCKETS.c.count + bucket_insert.excluded.count},
        )
        key = ("experiment_id", "arm", "metric")
        self.summary = execution.statement(summary, (*key, "count", "zero_count", "total", "minimum", "maximum"))
        self.buckets = execution.statement(buckets, (*key, "bucket", "count"))


def read_sketches(conn: Connection, experiment_id: int, k: int) -> dict[str, tuple[QuantileSketch, ...]]:
    """The stored sketches of an experiment: metric -> one sketch per arm (empty for an arm without values)."""
    parts: dict[str, dict[int, dict[str, Any]]] = {}
    for r in conn.execute(select(SKETCHES).where(SKETCHES.c.experiment_id == experiment_id)):
        parts.setdefault(r.metric, {})[r.arm] = {
            "count": r.count,
            "zero_count": r.zero_count,
            "total": r.total,
            "minimum": r.minimum,
            "maximum": r.maximum,
            "keys": [],
            "counts": [],
        }
    for r in conn.execute(
        select(BUCKETS.c.arm, BUCKETS.c.metric, BUCKETS.c.bucket, BUCKETS.c.count)
        .where(BUCKETS.c.experiment_id == experiment_id)
        .order_by(BUCKETS.c.metric, BUCKETS.c.arm, BUCKETS.c.bucket)
    ):
        summary = parts.get(r.metric, {}).get(r.arm)
        if summary is not None:
            summary["keys"].append(r.bucket)
            summary["counts"].append(r.count)
    empty = QuantileSketch(relative_accuracy=SKETCH_ACCURACY)
    return {
        metric: tuple(
            QuantileSketch.from_dict({"relative_accuracy": SKETCH_ACCURACY, **by_arm[i]}) if i in by_arm else empty
            for i in range(k)
        )
        for metric, by_arm in sorted(parts.items())
    }
