"""Hot-path inserts run on the SQLite driver store the same rows and raise the same errors as SQLAlchemy."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from bandit_service.settings import Settings
from bandit_service.storage.database import open_database
from bandit_service.storage.driver import DriverStatement
from bandit_service.storage.sql import DECISION_COLUMNS, DECISIONS, SqlRepository


def _row(decision_id: str) -> dict[str, object]:
    return {
        "id": decision_id,
        "experiment_id": 1,
        "unit": None,
        "arm": 2,
        "propensity": 0.25,
        "weights_version": 3,
        "attributes": {"country": "NZ", "tier": [1, 2]},
        "created_at": 10.0,
        "expires_at": 20.0,
        "status": "pending",
        "new_unit": True,
    }


def test_driver_insert_matches_sqlalchemy_and_wraps_errors(tmp_path):
    db = open_database(Settings(database_url=f"sqlite:///{tmp_path / 'd.db'}"))
    SqlRepository(db).create_schema()
    statement = DriverStatement(db, insert(DECISIONS), DECISION_COLUMNS)
    with db.write.begin() as conn:
        statement.execute(conn, [_row("fast")])
        conn.execute(insert(DECISIONS), [_row("core")])  # the oracle: SQLAlchemy's own execution
    with db.read.connect() as conn:
        rows = {r.id: r._mapping for r in conn.execute(select(DECISIONS))}
    assert {k: v for k, v in rows["fast"].items() if k != "id"} == {k: v for k, v in rows["core"].items() if k != "id"}
    assert rows["fast"]["attributes"] == {"country": "NZ", "tier": [1, 2]}
    with pytest.raises(IntegrityError), db.write.begin() as conn:
        statement.execute(conn, [_row("fast")])  # duplicate primary key: the error SQLAlchemy would raise
    db.dispose()


def test_driver_statement_refuses_a_column_list_that_misses_parameters(tmp_path):
    db = open_database(Settings(database_url=f"sqlite:///{tmp_path / 'e.db'}"))
    with pytest.raises(ValueError, match="differ from the columns"):
        DriverStatement(db, insert(DECISIONS), (*DECISION_COLUMNS[:-1], "nonexistent"))
    db.dispose()
