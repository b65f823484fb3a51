"""`bandit-service keys create|list|revoke`: API keys managed on the database itself.

They work without a running service and without a key (whoever can reach the database is in
charge anyway), so an operator who lost every admin key can make a new one.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from typing import TextIO

import msgspec

from bandit_service.clock import SystemClock
from bandit_service.core.commands import KeyIn
from bandit_service.core.errors import DomainError
from bandit_service.core.timestamps import to_datetime
from bandit_service.services.keys import KeyService
from bandit_service.settings import Settings
from bandit_service.storage.database import open_database
from bandit_service.storage.sql_storage import SqlStorage

__all__ = ["KeyCommandError", "run_key_command"]


class KeyCommandError(Exception):
    """The command was refused (bad name or role, unknown key, the last admin key)."""


async def _run(settings: Settings, command: str, name: str | None, role: str | None, out: TextIO) -> None:
    storage = SqlStorage(open_database(settings), sqlite_speedups=settings.sqlite_speedups)
    await storage.open()
    try:
        keys = KeyService(storage, SystemClock(), bound_s=0.0)
        match command:
            case "create":
                try:
                    data = msgspec.convert({"name": name, "role": role}, KeyIn)
                except msgspec.ValidationError as exc:
                    raise KeyCommandError(
                        f"--name {name!r}: 1-64 letters, digits, _ . @ or -, starting with a letter or digit ({exc})"
                    ) from exc
                made = await keys.create(data)
                key = made.key
                print(f"created key {key.name!r} with role {key.role!r}; it will not be shown again:", file=out)
                print(made.token, file=out)
            case "list":
                for key in await keys.list():
                    used = "never" if key.last_used_at is None else to_datetime(key.last_used_at).isoformat()
                    made_at = to_datetime(key.created_at).isoformat()
                    print(f"{key.name}\t{key.role}\tcreated {made_at}\tlast used {used}", file=out)
            case "revoke":
                if name is None:
                    raise KeyCommandError("revoke needs the name of the key")
                removed = await keys.revoke(name)
                print(f"revoked key {removed.name!r} (role {removed.role!r})", file=out)
            case _:
                raise KeyCommandError(f"unknown keys command {command!r}")
    except DomainError as exc:
        raise KeyCommandError(exc.detail) from exc
    finally:
        await storage.close()


def run_key_command(
    command: str, name: str | None, role: str | None, env: Mapping[str, str], out: TextIO | None = None
) -> None:
    """Run `keys <command>` on the database of BANDIT_DATABASE_URL in `env`."""
    try:
        settings = Settings.from_env(env)
    except ValueError as exc:
        raise KeyCommandError(str(exc)) from exc
    asyncio.run(_run(settings, command, name, role, out if out is not None else sys.stdout))
