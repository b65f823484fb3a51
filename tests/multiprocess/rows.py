"""What the replicas' database holds, read through SQLAlchemy: experiments, decisions, rewards, counters, recounts.

The per-arm counters (`arm_counters`) are increments kept in the write transactions; the recount
derives the same figures from the decision and reward rows, so the two must agree exactly:
units = distinct units with a decision on the arm, decisions = decision rows, rewarded = reward
rows (by the decision's arm), expired = expired decisions, n = rewarded + expired, total and
total_sq = sums over the reward values (the experiments here have default_reward 0, so an
expired decision adds nothing to them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec
from sqlalchemy import Engine, text

__all__ = [
    "COUNTER_COLUMNS",
    "StoredDecision",
    "StoredExperiment",
    "StoredReward",
    "counter_changes",
    "counter_mismatches",
    "counters",
    "decisions",
    "experiment",
    "recount",
    "rewards",
]

COUNTER_COLUMNS = ("units", "trials", "exposures", "rewarded", "expired", "excluded", "n", "total", "total_sq")
Counts = dict[int, tuple[float, ...]]


class StoredExperiment(msgspec.Struct, frozen=True, kw_only=True):
    """The experiments row's id, status and lifecycle times (Unix seconds)."""

    id: int
    status: str
    started_at: float | None
    updated_at: float
    completed_at: float | None


class StoredDecision(msgspec.Struct, frozen=True, kw_only=True):
    """A decisions row."""

    id: str
    unit: str | None
    arm: int
    created_at: float
    status: str


class StoredReward(msgspec.Struct, frozen=True, kw_only=True):
    """A rewards row."""

    decision_id: str
    arm: int
    value: float


def experiment(engine: Engine, key: str) -> StoredExperiment:
    """The experiment with this key (it must exist)."""
    sql = "SELECT id, status, started_at, updated_at, completed_at FROM experiments WHERE key = :key"
    with engine.connect() as conn:
        row = conn.execute(text(sql), {"key": key}).one()
    return StoredExperiment(
        id=row.id,
        status=row.status,
        started_at=row.started_at,
        updated_at=row.updated_at,
        completed_at=row.completed_at,
    )


def decisions(engine: Engine, experiment_id: int) -> list[StoredDecision]:
    """Every decision row of the experiment."""
    sql = "SELECT id, unit, arm, created_at, status FROM decisions WHERE experiment_id = :id"
    with engine.connect() as conn:
        rows = conn.execute(text(sql), {"id": experiment_id}).all()
    return [StoredDecision(id=r.id, unit=r.unit, arm=r.arm, created_at=r.created_at, status=r.status) for r in rows]


def rewards(engine: Engine, experiment_id: int) -> list[StoredReward]:
    """Every reward row of the experiment."""
    sql = "SELECT decision_id, arm, value FROM rewards WHERE experiment_id = :id"
    with engine.connect() as conn:
        rows = conn.execute(text(sql), {"id": experiment_id}).all()
    return [StoredReward(decision_id=r.decision_id, arm=r.arm, value=r.value) for r in rows]


def counters(engine: Engine, experiment_id: int) -> Counts:
    """The per-arm counters as stored, by arm position, in COUNTER_COLUMNS order."""
    sql = f"SELECT arm, {', '.join(COUNTER_COLUMNS)} FROM arm_counters WHERE experiment_id = :id"
    with engine.connect() as conn:
        rows = conn.execute(text(sql), {"id": experiment_id}).all()
    return {r.arm: tuple(float(x) for x in r[1:]) for r in rows}


def recount(engine: Engine, experiment_id: int) -> Counts:
    """The per-arm counters derived from the decision and reward rows, in COUNTER_COLUMNS order."""
    decided = (
        "SELECT arm, COUNT(DISTINCT unit) AS units, COUNT(*) AS decisions,"
        " SUM(CASE WHEN status = 'expired' THEN 1 ELSE 0 END) AS expired,"
        " SUM(CASE WHEN status = 'excluded' THEN 1 ELSE 0 END) AS excluded"
        " FROM decisions WHERE experiment_id = :id GROUP BY arm"
    )
    rewarded = (
        "SELECT d.arm, COUNT(*) AS rewarded, SUM(r.value) AS total, SUM(r.value * r.value) AS total_sq"
        " FROM rewards r JOIN decisions d ON d.id = r.decision_id WHERE d.experiment_id = :id GROUP BY d.arm"
    )
    with engine.connect() as conn:
        by_decisions = {r.arm: r for r in conn.execute(text(decided), {"id": experiment_id})}
        by_rewards = {r.arm: r for r in conn.execute(text(rewarded), {"id": experiment_id})}
    out: Counts = {}
    for arm in by_decisions.keys() | by_rewards.keys():
        d, r = by_decisions.get(arm), by_rewards.get(arm)
        units, decided_n, expired, excluded = (d.units, d.decisions, d.expired, d.excluded) if d else (0, 0, 0, 0)
        n_rewarded, total, total_sq = (r.rewarded, r.total, r.total_sq) if r is not None else (0, 0.0, 0.0)
        # Decision trials (see traffic.experiment_body): every logged decision is a trial and an exposure.
        counted = (units, decided_n, decided_n, n_rewarded, expired, excluded, n_rewarded + expired, total, total_sq)
        out[arm] = tuple(float(x) for x in counted)
    return out


def counter_mismatches(engine: Engine, experiment_id: int, arm_names: Sequence[str]) -> list[str]:
    """Where the stored per-arm counters differ from the recount, one line per arm and column."""
    return [
        f"arm {arm}: counter {column} = {have:g}, recount from the rows = {want:g}"
        for arm, column, have, want in _differences(
            counters(engine, experiment_id), recount(engine, experiment_id), arm_names
        )
    ]


def counter_changes(before: Counts, after: Counts, arm_names: Sequence[str]) -> list[str]:
    """How the per-arm counters moved between two reads, one item per arm and column."""
    return [
        f"arm {arm} {column} {old:g} -> {new:g}" for arm, column, old, new in _differences(before, after, arm_names)
    ]


def _differences(left: Counts, right: Counts, arm_names: Sequence[str]) -> list[tuple[str, str, float, float]]:
    zero = (0.0,) * len(COUNTER_COLUMNS)
    out = []
    for arm in sorted(left.keys() | right.keys()):
        name = arm_names[arm] if 0 <= arm < len(arm_names) else f"#{arm}"
        for column, a, b in zip(COUNTER_COLUMNS, left.get(arm, zero), right.get(arm, zero), strict=True):
            if not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9):
                out.append((name, column, a, b))
    return out
