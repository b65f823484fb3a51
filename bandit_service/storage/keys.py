"""SQL for API keys (called by `storage.sql`): stored as name, role and digest, never the key."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from bandit_service.core.roles import ApiKey
from bandit_service.storage.tables import API_KEYS

__all__ = ["delete_key", "insert_key", "key_by_digest", "load_keys", "touch_key"]


def _key(r: Any) -> ApiKey:
    return ApiKey(name=r.name, role=r.role, digest=r.digest, created_at=r.created_at, last_used_at=r.last_used_at)


def load_keys(conn: Connection) -> list[ApiKey]:
    """Every key, by name."""
    return [_key(r) for r in conn.execute(select(API_KEYS).order_by(API_KEYS.c.name))]


def key_by_digest(conn: Connection, digest: str) -> ApiKey | None:
    """The key with this digest (the unique index answers it)."""
    row = conn.execute(select(API_KEYS).where(API_KEYS.c.digest == digest)).first()
    return None if row is None else _key(row)


def insert_key(conn: Connection, key: ApiKey) -> bool:
    """Store a new key; False if its name is taken (a race with another process fails the insert instead)."""
    if conn.execute(select(API_KEYS.c.name).where(API_KEYS.c.name == key.name)).first() is not None:
        return False
    conn.execute(
        insert(API_KEYS).values(
            name=key.name, role=key.role, digest=key.digest, created_at=key.created_at, last_used_at=None
        )
    )
    return True


def delete_key(conn: Connection, name: str) -> ApiKey | None:
    """Remove the key of this name; the removed key or None."""
    row = conn.execute(select(API_KEYS).where(API_KEYS.c.name == name)).first()
    if row is None:
        return None
    conn.execute(delete(API_KEYS).where(API_KEYS.c.name == name))
    return _key(row)


def touch_key(conn: Connection, name: str, now: float) -> None:
    """Record the key's last use (never moves it back)."""
    conn.execute(
        update(API_KEYS)
        .where(API_KEYS.c.name == name, (API_KEYS.c.last_used_at.is_(None)) | (API_KEYS.c.last_used_at < now))
        .values(last_used_at=now)
    )
