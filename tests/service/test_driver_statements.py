"""Hot-path statements read and write what SQLAlchemy would, and raise its errors: the SQLite
speed-ups (raw driver cursor) and the plain versions, through the same interface."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import bindparam, create_mock_engine, insert, literal_column, select, update
from sqlalchemy.exc import IntegrityError

from bandit_service.settings import Settings
from bandit_service.storage.database import Database, open_database
from bandit_service.storage.sql import DECISION_COLUMNS, DECISIONS, EXPERIMENTS, SqlRepository
from bandit_service.storage.sqlite_speedups import DriverQuery, DriverStatement, SqliteExecution, choose_execution
from bandit_service.storage.statements import Execution, PlainExecution, PlainKeyQuery, PlainStatement


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


# SQLite only: the speed-ups exist for SQLite alone, and the plain versions are their oracle on the same file
# (PostgreSQL runs the plain versions in every API test on it and in the storage contract suite).
pytestmark = pytest.mark.sqlite


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A SQLite file with the schema."""
    database = open_database(Settings(database_url=database_url))
    SqlRepository(database).create_schema()
    yield database
    database.dispose()


@pytest.fixture(params=[True, False], ids=["sqlite_speedups", "plain"])
def execution(request: pytest.FixtureRequest, db: Database) -> Execution:
    """The statement builders under test: the SQLite speed-ups, or the plain versions forced on SQLite."""
    return choose_execution(db, speedups=request.param)


def test_the_factory_picks_the_speedups_for_sqlite_unless_forced_plain(db):
    fast, plain = choose_execution(db), choose_execution(db, speedups=False)
    assert isinstance(fast, SqliteExecution) and isinstance(plain, PlainExecution)
    assert isinstance(fast.statement(insert(DECISIONS), DECISION_COLUMNS), DriverStatement)
    assert isinstance(plain.statement(insert(DECISIONS), DECISION_COLUMNS), PlainStatement)
    query = select(DECISIONS.c.id).where(DECISIONS.c.id.in_(bindparam("ids", expanding=True)))
    assert isinstance(fast.key_query(query, "ids"), DriverQuery)
    assert isinstance(plain.key_query(query, "ids"), PlainKeyQuery)


def test_other_databases_get_the_plain_versions():
    engine = create_mock_engine("postgresql://", executor=lambda *args, **kwargs: None)  # no driver needed
    assert isinstance(choose_execution(Database(engine, engine)), PlainExecution)  # type: ignore[arg-type]


def test_insert_matches_sqlalchemy_and_raises_its_errors(db, execution):
    statement = execution.statement(insert(DECISIONS), DECISION_COLUMNS)
    with db.write.begin() as conn:
        statement.execute(conn, [_row("tested")])
        conn.execute(insert(DECISIONS), [_row("core")])  # the oracle: SQLAlchemy's own execution
    with db.read.connect() as conn:
        rows = {r.id: r._mapping for r in conn.execute(select(DECISIONS))}
    assert {k: v for k, v in rows["tested"].items() if k != "id"} == {
        k: v for k, v in rows["core"].items() if k != "id"
    }
    assert rows["tested"]["attributes"] == {"country": "NZ", "tier": [1, 2]}
    with pytest.raises(IntegrityError), db.write.begin() as conn:
        statement.execute(conn, [_row("tested")])  # duplicate primary key: the error SQLAlchemy raises


def test_driver_statement_refuses_a_column_list_that_misses_parameters(db):
    with pytest.raises(ValueError, match="differ from the columns"):
        DriverStatement(db.write.dialect, insert(DECISIONS), (*DECISION_COLUMNS[:-1], "nonexistent"))


def test_update_counts_the_rows_it_changed(db, execution):
    mark = execution.statement(
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


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 13, 40])
def test_key_query_reads_what_sqlalchemy_reads_for_any_list_length(db, execution, count):
    statement = (
        select(
            DECISIONS.c.id, DECISIONS.c.attributes, DECISIONS.c.propensity, EXPERIMENTS.c.config["reward"].as_string()
        )
        .outerjoin(EXPERIMENTS, EXPERIMENTS.c.id == DECISIONS.c.experiment_id)
        .where(DECISIONS.c.id.in_(bindparam("ids", expanding=True)))
        .order_by(DECISIONS.c.id)
    )
    query = execution.key_query(statement, "ids")
    with db.write.begin() as conn:
        conn.execute(insert(DECISIONS), [_row(f"d{i:02d}") for i in range(50)])
        ids = [f"d{i:02d}" for i in range(0, 2 * count, 2)] + ["nowhere"]  # 25 stored at most
        tested = query.rows(conn, ids)
        oracle = [tuple(r) for r in conn.execute(statement, {"ids": ids})]  # SQLAlchemy's own execution
        assert query.rows(conn, []) == []
    assert tested == oracle
    assert len(tested) == min(count, 25)
    assert tested[0][1] == {"country": "NZ", "tier": [1, 2]}  # JSON decoded as SQLAlchemy would


def test_insert_of_many_rows_counts_what_it_inserted(db, execution):
    # The driver version runs 13 rows as 8 + 4 + 1 multi-row statements; an upsert that skips
    # duplicates counts only new rows.
    plain = execution.statement(insert(DECISIONS), DECISION_COLUMNS)
    skip_known = execution.statement(db.upsert(DECISIONS).on_conflict_do_nothing(), DECISION_COLUMNS)
    with db.write.begin() as conn:
        assert plain.execute(conn, [_row(f"d{i:02d}") for i in range(13)]) == 13
        assert skip_known.execute(conn, [_row(f"d{i:02d}") for i in range(10, 20)]) == 7  # d10-d12 exist
    with db.read.connect() as conn:
        ids = [r.id for r in conn.execute(select(DECISIONS.c.id).order_by(DECISIONS.c.id))]
        attributes = {r.attributes["country"] for r in conn.execute(select(DECISIONS.c.attributes))}
    assert ids == [f"d{i:02d}" for i in range(20)]
    assert attributes == {"NZ"}
