"""SQL for features, and the change feed the caches poll (experiment and feature changes in one snapshot).

Lock order: a job that reads a feature (an experiment naming it, a replace, a delete) locks the
feature's row first, then takes the change counter (`SqlTransaction._next_change`), then writes,
so two such jobs never wait for each other in a cycle. (Two group-commit batches still can, when
an earlier job of a batch took the counter; PostgreSQL detects it and the batch runs again.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, Integer, String, insert, literal, null, select, union_all, update
from sqlalchemy.engine import Connection

from bandit_service.core.model import ExperimentChanges, Feature
from bandit_service.storage.tables import EXPERIMENTS, FEATURES

__all__ = ["change_feed", "delete_feature", "load_feature", "load_features", "save_feature", "serves_feature"]


def _feature(row: Any) -> Feature:
    return Feature(
        key=row.key,
        description=row.description,
        default_payload=row.default_payload,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def serves_feature(key: str) -> ColumnElement[bool]:
    """The experiments whose config names feature `key` (a scan: read on a cache miss or by an operator)."""
    return EXPERIMENTS.c.config["feature"].as_string() == key


def load_feature(conn: Connection, key: str, *, share_lock: bool = False) -> Feature | None:
    """The feature with this key, None if there is none or it was deleted; optionally under a share lock
    (FOR SHARE on PostgreSQL; SQLite's writer already holds the database's write lock)."""
    query = select(FEATURES).where(FEATURES.c.key == key, FEATURES.c.deleted_at.is_(None))
    if share_lock:
        query = query.with_for_update(read=True)
    row = conn.execute(query).first()
    return None if row is None else _feature(row)


def load_features(conn: Connection) -> list[Feature]:
    """Every feature that is not deleted, by key."""
    rows = conn.execute(select(FEATURES).where(FEATURES.c.deleted_at.is_(None)).order_by(FEATURES.c.key))
    return [_feature(r) for r in rows]


def save_feature(conn: Connection, feature: Feature, next_change: Callable[[], int]) -> tuple[Feature, bool]:
    """Create or replace a feature; the stored feature and whether it was created (a tombstone counts as none)."""
    row = conn.execute(select(FEATURES).where(FEATURES.c.key == feature.key).with_for_update()).first()
    values = {
        "description": feature.description,
        "default_payload": feature.default_payload,
        "updated_at": feature.updated_at,
        "deleted_at": None,
        "change_seq": next_change(),  # after the row lock (see the module docstring)
    }
    if row is None:
        conn.execute(insert(FEATURES).values(key=feature.key, created_at=feature.created_at, **values))
        return feature, True
    created = row.deleted_at is not None
    created_at = feature.created_at if created else row.created_at
    conn.execute(update(FEATURES).where(FEATURES.c.key == feature.key).values(created_at=created_at, **values))
    return Feature(
        key=feature.key,
        description=feature.description,
        default_payload=feature.default_payload,
        created_at=created_at,
        updated_at=feature.updated_at,
    ), created


def delete_feature(conn: Connection, key: str, now: float, next_change: Callable[[], int]) -> Feature | None:
    """Leave a tombstone with the next change number; the deleted feature, or None if there was none."""
    query = select(FEATURES).where(FEATURES.c.key == key, FEATURES.c.deleted_at.is_(None)).with_for_update()
    row = conn.execute(query).first()
    if row is None:
        return None
    conn.execute(
        update(FEATURES).where(FEATURES.c.key == key).values(deleted_at=now, updated_at=now, change_seq=next_change())
    )
    return _feature(row)


def change_feed(conn: Connection, since: int) -> ExperimentChanges:
    """Experiments and features changed after change number `since`, read by one statement (one snapshot).

    Numbers follow commit order, so seeing n means seeing every change up to n, and the largest
    number returned is where the next poll starts; two statements could each see a different set.
    """
    experiments = select(
        literal("experiment", String).label("kind"),
        EXPERIMENTS.c.key,
        EXPERIMENTS.c.revision,
        EXPERIMENTS.c.change_seq,
        EXPERIMENTS.c.config["feature"].as_string().label("feature"),
    ).where(EXPERIMENTS.c.change_seq > since)
    features = select(
        literal("feature", String).label("kind"),
        FEATURES.c.key,
        literal(0, Integer).label("revision"),
        FEATURES.c.change_seq,
        null().cast(String).label("feature"),
    ).where(FEATURES.c.change_seq > since)
    rows = conn.execute(union_all(experiments, features)).all()
    revisions, feature_changes, experiment_features = {}, {}, {}
    for r in rows:
        if r.kind == "feature":
            feature_changes[r.key] = r.change_seq
            continue
        revisions[r.key] = r.revision
        if r.feature is not None:
            experiment_features[r.key] = r.feature
    return ExperimentChanges(
        seq=max([since, *(r.change_seq for r in rows)]),
        revisions=revisions,
        features=feature_changes,
        experiment_features=experiment_features,
    )
