"""Schema migrations on a real SQLite file and a real PostgreSQL: empty, pre-migration, concurrent, repeated."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, column, event, inspect, select, table, text
from sqlalchemy.engine import Connection

from bandit_service.cli import main
from bandit_service.settings import Settings
from bandit_service.storage.database import Database, open_database
from bandit_service.storage.schema import BASELINE, MIGRATIONS, alembic_config, current_revision, upgrade_schema
from bandit_service.storage.tables import metadata

HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()

# A replica: import everything (the tables too, which env.py imports), say it is ready, wait for
# the start signal, then migrate: the replicas reach the schema lock together.
REPLICA = """
import sys
import bandit_service.storage.tables
from bandit_service.settings import Settings
from bandit_service.storage.database import open_database
from bandit_service.storage.schema import upgrade_schema
db = open_database(Settings(database_url=sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()
upgrade_schema(db)
db.dispose()
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_schema_url")
        return url
    return f"sqlite:///{tmp_path / 'migrations.db'}"


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = open_database(Settings(database_url=database_url))
    yield database
    database.dispose()


def schema_diff(db: Database) -> list[Any]:
    """What autogenerate would change to make the database match `tables.py` (empty: they agree)."""
    with db.read.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), metadata)


# The baseline's experiments table, as far as the test below writes and reads it.
BASELINE_EXPERIMENTS = table(
    "experiments",
    *(column(name) for name in ("id", "key", "name", "description", "status", "salt")),
    *(column(name, JSON) for name in ("config", "weights")),
    *(column(name) for name in ("weights_version", "revision", "created_at", "updated_at")),
)


def make_pre_migration_database(db: Database) -> None:
    """The baseline's tables without a version table, as `metadata.create_all` left them, with one experiment."""
    with db.write.begin() as conn:
        command.upgrade(alembic_config(conn), BASELINE)
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(
            BASELINE_EXPERIMENTS.insert().values(
                id=1,
                key="checkout",
                name="Checkout",
                description="",
                status="draft",
                salt="s",
                config={"policy": {"type": "fixed_split"}},
                weights=[0.5, 0.5],
                weights_version=0,
                revision=1,
                created_at=1.0,
                updated_at=1.0,
            )
        )


def test_upgrading_an_empty_database_gives_the_tables_of_tables_py(db: Database) -> None:
    assert current_revision(db) is None
    upgrade_schema(db)
    assert current_revision(db) == HEAD
    assert schema_diff(db) == []


def test_a_database_made_before_migrations_is_stamped_and_upgraded_with_its_data(db: Database) -> None:
    make_pre_migration_database(db)
    assert current_revision(db) is None
    upgrade_schema(db)
    assert current_revision(db) == HEAD
    assert schema_diff(db) == []
    with db.read.connect() as conn:
        rows = conn.execute(select(BASELINE_EXPERIMENTS.c.key, BASELINE_EXPERIMENTS.c.weights)).all()
    assert [tuple(row) for row in rows] == [("checkout", [0.5, 0.5])]


def test_upgrading_twice_changes_nothing_the_second_time(db: Database) -> None:
    upgrade_schema(db)
    statements: list[str] = []

    def record(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(db.write, "before_cursor_execute", record)
    upgrade_schema(db)
    event.remove(db.write, "before_cursor_execute", record)
    changes = [s for s in statements if re.match(r"\s*(CREATE|ALTER|DROP|INSERT|UPDATE|DELETE)\b", s, re.IGNORECASE)]
    assert statements and changes == []
    assert current_revision(db) == HEAD


def test_replicas_starting_together_all_succeed_and_leave_the_database_at_head(database_url: str, db: Database) -> None:
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", REPLICA, database_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for replica in replicas:  # a barrier: every replica has imported and opened its engines
        assert replica.stdout is not None and replica.stdout.readline() == "ready\n"
    for replica in replicas:
        assert replica.stdin is not None
        replica.stdin.write("go\n")
        replica.stdin.flush()
    errors = [replica.communicate(timeout=30)[1] for replica in replicas]
    assert [replica.returncode for replica in replicas] == [0, 0, 0, 0], errors
    assert current_revision(db) == HEAD
    assert schema_diff(db) == []


def test_the_migrate_command_upgrades_the_database_of_bandit_database_url(
    database_url: str, db: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {**os.environ, "BANDIT_DATABASE_URL": database_url}
    command_line = [sys.executable, "-m", "bandit_service.cli", "migrate"]
    done = subprocess.run(command_line, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"schema revision: none -> {HEAD}\n", "")
    assert schema_diff(db) == []
    monkeypatch.setenv("BANDIT_DATABASE_URL", database_url)  # again, in this process: nothing to do
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out == f"schema revision: {HEAD} -> {HEAD}\n"


def test_the_migrate_command_refuses_a_database_from_a_newer_release(
    database_url: str, db: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    upgrade_schema(db)
    with db.write.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    monkeypatch.setenv("BANDIT_DATABASE_URL", database_url)
    assert main(["migrate"]) == 1
    assert "Can't locate revision identified by '9999'" in capsys.readouterr().err


def test_trials_keep_the_data_of_a_0003_database_and_downgrade_back(db: Database) -> None:
    """Revision 0004: every stored decision was its own trial and exposure; every reward its trial's first."""
    with db.write.begin() as conn:
        command.upgrade(alembic_config(conn), "0003")
        conn.execute(
            text(
                "INSERT INTO arm_counters (experiment_id, arm, units, decisions, rewarded, expired, n, total, total_sq)"
                " VALUES (1, 0, 3, 5, 2, 1, 3, 2.0, 2.0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO rewards (decision_id, experiment_id, arm, weights_version, value, metrics,"
                " idempotency_key, body_hash, created_at) VALUES ('d1', 1, 0, 1, 1.0, '{}', 'k1', 'h', 2.0)"
            )
        )
    upgrade_schema(db)
    assert schema_diff(db) == []
    with db.read.connect() as conn:
        counters = conn.execute(text("SELECT units, trials, exposures, rewarded, expired, excluded FROM arm_counters"))
        assert [tuple(r) for r in counters] == [(3, 5, 5, 2, 1, 0)]
        rewards = conn.execute(text("SELECT decision_id, seq, value, trial_value, idempotency_key FROM rewards"))
        assert [tuple(r) for r in rewards] == [("d1", 0, 1.0, 1.0, "k1")]
    with db.write.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO rewards (decision_id, seq, experiment_id, arm, weights_version, value, metrics,"
                " idempotency_key, body_hash, created_at, trial_value)"
                " VALUES ('d1', 1, 1, 0, 1, 1.0, '{}', 'k2', 'h2', 3.0, 1.0)"
            )
        )
        command.downgrade(alembic_config(conn), "0003")
    with db.read.connect() as conn:
        assert [tuple(r) for r in conn.execute(text("SELECT decision_id, idempotency_key FROM rewards"))] == [
            ("d1", "k1")
        ]
        assert [tuple(r) for r in conn.execute(text("SELECT decisions FROM arm_counters"))] == [(5,)]


def test_local_decisions_start_at_zero_on_a_0007_database_and_downgrade_back(db: Database) -> None:
    """Revision 0008: the dedupe table of SDK-logged decisions, and per-arm `local` and `contradicted` from 0."""
    with db.write.begin() as conn:
        command.upgrade(alembic_config(conn), "0007")
        conn.execute(
            text(
                "INSERT INTO arm_counters (experiment_id, arm, units, trials, exposures, rewarded, expired, excluded,"
                " n, total, total_sq) VALUES (1, 0, 3, 5, 7, 2, 1, 0, 3, 2.0, 2.0)"
            )
        )
    upgrade_schema(db)
    assert schema_diff(db) == []
    with db.write.begin() as conn:
        counters = conn.execute(text("SELECT trials, exposures, local, contradicted FROM arm_counters"))
        assert [tuple(r) for r in counters] == [(5, 7, 0, 0)]
        conn.execute(text("INSERT INTO logged_decisions (decision_id, experiment_id, logged_at) VALUES ('d1', 1, 2.0)"))
        logged = conn.execute(text("SELECT decision_id, contradicts FROM logged_decisions"))
        assert [(r[0], bool(r[1])) for r in logged] == [("d1", False)]
        command.downgrade(alembic_config(conn), "0007")
    with db.read.connect() as conn:
        schema = inspect(conn)
        assert not schema.has_table("logged_decisions")
        assert {"local", "contradicted"}.isdisjoint(c["name"] for c in schema.get_columns("arm_counters"))
        assert [tuple(r) for r in conn.execute(text("SELECT trials, exposures FROM arm_counters"))] == [(5, 7)]


def test_sequential_looks_start_empty_on_a_0009_database_and_downgrade_back(db: Database) -> None:
    """Revision 0010: the stored always-valid looks, one row per (experiment, metric, arm), none at first."""
    with db.write.begin() as conn:
        command.upgrade(alembic_config(conn), "0009")
        assert not inspect(conn).has_table("sequential_looks")
    upgrade_schema(db)
    assert schema_diff(db) == []
    with db.write.begin() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM sequential_looks")).scalar_one() == 0
        conn.execute(
            text(
                "INSERT INTO sequential_looks (experiment_id, metric, arm, p_value, lower, upper, looks, first_at,"
                " last_at) VALUES (1, 'reward', 'b', NULL, :lower, :upper, 1, 2.0, 2.0)"
            ),
            {"lower": -math.inf, "upper": math.inf},
        )
        stored = conn.execute(text("SELECT p_value, lower, upper FROM sequential_looks")).one()
        assert tuple(stored) == (None, -math.inf, math.inf)
        command.downgrade(alembic_config(conn), "0009")
    with db.read.connect() as conn:
        assert not inspect(conn).has_table("sequential_looks")


def test_day_counters_date_old_counters_to_their_weights_period_and_downgrade_back(db: Database) -> None:
    """Revision 0009: `day` in the keys of the per-period counters; older counters go to their period's first day."""
    day = 20_833  # 2027-01-15
    with db.write.begin() as conn:
        command.upgrade(alembic_config(conn), "0008")
        conn.execute(
            text(
                "INSERT INTO weights_history (experiment_id, version, created_at, weights, stats, reason)"
                f" VALUES (1, 1, {day * 86_400 + 3_600.5}, '[0.5, 0.5]', '[]', 'start')"
            )
        )
        for version, arm in ((1, 0), (1, 1), (2, 0)):  # version 2 has no history row
            conn.execute(
                text(
                    "INSERT INTO period_counters (experiment_id, weights_version, arm, units, trials, exposures,"
                    f" rewarded, expired, excluded, n, total, total_sq) VALUES (1, {version}, {arm}, 3, 5, 7, 2, 1,"
                    " 1, 3, 2.0, 2.0)"
                )
            )
        conn.execute(
            text(
                "INSERT INTO period_metrics (experiment_id, weights_version, arm, metric, n, total, total_sq)"
                " VALUES (1, 1, 0, 'latency_ms', 2, 30.0, 500.0)"
            )
        )
    upgrade_schema(db)
    assert schema_diff(db) == []
    with db.write.begin() as conn:
        counters = conn.execute(
            text("SELECT weights_version, day, arm, trials, exposures, total FROM period_counters ORDER BY 1, 3")
        )
        assert [tuple(r) for r in counters] == [(1, day, 0, 5, 7, 2.0), (1, day, 1, 5, 7, 2.0), (2, 0, 0, 5, 7, 2.0)]
        metrics = conn.execute(text("SELECT weights_version, day, arm, metric, n, total FROM period_metrics"))
        assert [tuple(r) for r in metrics] == [(1, day, 0, "latency_ms", 2.0, 30.0)]
        # The same version and arm on two days are two rows now; the downgrade adds them up.
        conn.execute(
            text(
                "INSERT INTO period_counters (experiment_id, weights_version, day, arm, units, trials, exposures,"
                f" rewarded, expired, excluded, n, total, total_sq) VALUES (1, 1, {day + 1}, 0, 1, 1, 1, 1, 0, 0, 1,"
                " 1.0, 1.0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO period_metrics (experiment_id, weights_version, day, arm, metric, n, total, total_sq)"
                f" VALUES (1, 1, {day + 1}, 0, 'latency_ms', 1, 10.0, 100.0)"
            )
        )
        command.downgrade(alembic_config(conn), "0008")
    with db.read.connect() as conn:
        assert "day" not in {c["name"] for c in inspect(conn).get_columns("period_counters")}
        counters = conn.execute(
            text("SELECT weights_version, arm, units, trials, exposures, total FROM period_counters ORDER BY 1, 2")
        )
        assert [tuple(r) for r in counters] == [(1, 0, 4, 6, 8, 3.0), (1, 1, 3, 5, 7, 2.0), (2, 0, 3, 5, 7, 2.0)]
        metrics = conn.execute(text("SELECT weights_version, arm, metric, n, total, total_sq FROM period_metrics"))
        assert [tuple(r) for r in metrics] == [(1, 0, "latency_ms", 3.0, 40.0, 600.0)]
