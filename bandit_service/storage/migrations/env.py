"""Alembic's environment: runs the revisions on the connection that `storage.schema` passes in.

There is no alembic.ini and no engine here: the caller opened the transaction and holds the schema
lock, so Alembic joins that transaction instead of beginning its own.
"""

from __future__ import annotations

from typing import Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection
from sqlmodel.sql.sqltypes import AutoString

from bandit_service.storage.tables import metadata


def _render_item(kind: str, item: object, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render SQLModel's `AutoString` as the `String` it emits, so new revisions need no sqlmodel import."""
    if kind == "type" and isinstance(item, AutoString):
        return f"sa.String(length={item.length})" if item.length else "sa.String()"
    return False


def run_migrations(connection: Connection) -> None:
    """Run the revisions Alembic chose (upgrade, stamp or autogenerate) on `connection`."""
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most of a table: batch mode copies it into a new one instead.
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations(context.config.attributes["connection"])
