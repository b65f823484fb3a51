"""Versioned schema migrations (Alembic), safe when several replicas start at once.

The revisions live in `storage/migrations/versions/`, one file each, with readable ids ("0001",
"0002", ...). To write the next one, autogenerate it from the changed `tables.py` against a
database at head::

    with db.write.begin() as conn:
        command.revision(alembic_config(conn), "what changed", autogenerate=True, rev_id="0002")
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from bandit_service.storage.database import Database

__all__ = ["BASELINE", "MIGRATIONS", "alembic_config", "current_revision", "upgrade_schema"]

MIGRATIONS = Path(__file__).with_name("migrations")
"""Alembic's script directory, inside the installed package (no alembic.ini)."""

BASELINE = "0001"
"""The revision of the schema that `metadata.create_all` made before migrations existed."""

VERSION_TABLE = "alembic_version"
BASELINE_TABLE = "experiments"
"""A table every database made by `create_all` has: its presence tells such a database from an empty one."""


def alembic_config(conn: Connection) -> Config:
    """An Alembic configuration that runs this package's revisions on `conn`, inside its transaction."""
    config = Config(attributes={"connection": conn})
    # Options are interpolated like configparser values: a literal % in the path is written %%.
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    return config


def upgrade_schema(db: Database) -> None:
    """Bring the database to the newest revision, in one transaction that holds the schema lock.

    A replica that starts while another one migrates waits on the lock, then finds the database at
    head and does nothing. A database made by `metadata.create_all` before migrations existed has
    the baseline's tables but no version table: it is stamped with the baseline, then upgraded.
    """
    with db.write.begin() as conn:
        db.lock_schema(conn)
        config = alembic_config(conn)
        inspector = inspect(conn)
        if inspector.has_table(BASELINE_TABLE) and not inspector.has_table(VERSION_TABLE):
            command.stamp(config, BASELINE)
        command.upgrade(config, "head")


def current_revision(db: Database) -> str | None:
    """The database's schema revision; None when it has none (empty, or made before migrations)."""
    with db.read.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
