"""Hot-path statements on the SQLite driver read and write what SQLAlchemy would, and raise its errors."""

from __future__ import annotations

import pytest
from sqlalchemy import bindparam, insert, literal_column, select, update
from sqlalchemy.exc import IntegrityError

from bandit_service.settings import Settings
from bandit_service.storage.database import open_database
from bandit_service.storage.driver import DriverQuery, DriverStatement
from bandit_service.storage.sql import DECISION_COLUMNS, DECISIONS, EXPERIMENTS, SqlRepository


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


def test_driver_update_counts_the_rows_it_changed(tmp_path):
    db = open_database(Settings(database_url=f"sqlite:///{tmp_path / 'u.db'}"))
    SqlRepository(db).create_schema()
    mark = DriverStatement(
        db,
        update(DECISIONS)
        .where(DECISIONS.c.id == bindparam("decision_id"), DECISIONS.c.status == literal_column("'pending'"))
        .values(status=literal_column("'rewarded'")),
        ("decision_id",),
    )
    with db.write.begin() as conn:
        conn.execute(insert(DECISIONS), [_row("a"), _row("b")])
        assert mark.execute(conn, [{"decision_id": "a"}, {"decision_id": "b"}, {"decision_id": "missing"}]) == 2
        assert mark.execute(conn, [{"decision_id": "a"}]) == 0  # no longer pending
        assert mark.execute(conn, []) == 0
    db.dispose()


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 13, 40])
def test_driver_query_reads_what_sqlalchemy_reads_for_any_list_length(tmp_path, count):
    db = open_database(Settings(database_url=f"sqlite:///{tmp_path / 'q.db'}"))
    SqlRepository(db).create_schema()
    statement = (
        select(
            DECISIONS.c.id, DECISIONS.c.attributes, DECISIONS.c.propensity, EXPERIMENTS.c.config["reward"].as_string()
        )
        .outerjoin(EXPERIMENTS, EXPERIMENTS.c.id == DECISIONS.c.experiment_id)
        .where(DECISIONS.c.id.in_(bindparam("ids", expanding=True)))
        .order_by(DECISIONS.c.id)
    )
    query = DriverQuery(db, statement, "ids")
    with db.write.begin() as conn:
        conn.execute(insert(DECISIONS), [_row(f"d{i:02d}") for i in range(50)])
        ids = [f"d{i:02d}" for i in range(0, 2 * count, 2)] + ["nowhere"]  # 25 stored at most
        fast = query.rows(conn, ids)
        oracle = [tuple(r) for r in conn.execute(statement, {"ids": ids})]  # SQLAlchemy's own execution
        assert query.rows(conn, []) == []
    assert fast == oracle
    assert len(fast) == min(count, 25)
    assert fast[0][1] == {"country": "NZ", "tier": [1, 2]}  # JSON decoded as SQLAlchemy would
    db.dispose()


def test_driver_insert_of_many_rows_runs_in_chunks_and_counts_what_it_inserted(tmp_path):
    # 13 rows run as 8 + 4 + 1 multi-row statements; an upsert that skips duplicates counts only new rows.
    db = open_database(Settings(database_url=f"sqlite:///{tmp_path / 'm.db'}"))
    SqlRepository(db).create_schema()
    plain = DriverStatement(db, insert(DECISIONS), DECISION_COLUMNS)
    skip_known = DriverStatement(db, db.upsert(DECISIONS).on_conflict_do_nothing(), DECISION_COLUMNS)
    with db.write.begin() as conn:
        assert plain.execute(conn, [_row(f"d{i:02d}") for i in range(13)]) == 13
        assert skip_known.execute(conn, [_row(f"d{i:02d}") for i in range(10, 20)]) == 7  # d10-d12 exist
    with db.read.connect() as conn:
        ids = [r.id for r in conn.execute(select(DECISIONS.c.id).order_by(DECISIONS.c.id))]
        attributes = {r.attributes["country"] for r in conn.execute(select(DECISIONS.c.attributes))}
    assert ids == [f"d{i:02d}" for i in range(20)]
    assert attributes == {"NZ"}
    db.dispose()
