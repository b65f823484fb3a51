"""API keys: create, list, revoke, and find the caller of a request by its key.

A key is shown once, when it is made; the database keeps its SHA-256 digest. Each process keeps
the keys it has recently looked up for `bound_s` seconds (the same staleness bound as the
experiment cache), so a request costs a hash and a dict lookup; a key revoked by another process
stops working within that bound, one revoked by this process at once.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Sequence
from typing import Any

import msgspec

from bandit_service.core.commands import KeyIn
from bandit_service.core.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidFieldError,
    NotFoundError,
    UnavailableError,
)
from bandit_service.core.events import ACTOR, SCHEDULER
from bandit_service.core.roles import ApiKey, Principal, digest
from bandit_service.ports import Clock, Storage, WriteTx

__all__ = ["ADMIN", "KeyService", "NewKey", "new_token"]

log = logging.getLogger(__name__)

ADMIN = "admin"
"""The name of the key the first start creates."""
TOKEN_PREFIX = "bsk_"
"""Marks a bandit-service key, so secret scanners and people can tell what a leaked string is."""
MAX_TOKEN_CHARS = 200
TOUCH_EVERY_S = 60.0
"""How often a process records a key's last use (not on every request: that would be a write each)."""
RESERVED = frozenset({ACTOR, SCHEDULER})
"""Actors the audit log already uses for something else."""


def new_token() -> str:
    """A new key: 256 random bits from the operating system's CSPRNG.

    Not a seeded numpy generator, on purpose: a key must be unpredictable, not reproducible.
    """
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class NewKey(msgspec.Struct, frozen=True):
    """A key just made: the stored record and the key itself (shown this once)."""

    key: ApiKey
    token: str


def insert_keys(tx: WriteTx, items: Sequence[ApiKey]) -> list[Any]:
    """Write job: store new keys (AlreadyExistsError for a taken name)."""
    return [
        key if tx.insert_api_key(key) else AlreadyExistsError(f"a key named {key.name!r} exists", field="name")
        for key in items
    ]


def insert_first_key(tx: WriteTx, items: Sequence[ApiKey]) -> list[Any]:
    """Write job: store the key only if there is no key at all (the first start); None otherwise."""
    return [key if not tx.api_keys() and tx.insert_api_key(key) else None for key in items]


def delete_keys(tx: WriteTx, names: Sequence[str]) -> list[Any]:
    """Write job: revoke keys by name; never the last admin key, which would lock every operator out."""
    out: list[Any] = []
    for name in names:
        keys = tx.api_keys()
        found = next((k for k in keys if k.name == name), None)
        if found is None:
            out.append(NotFoundError(f"no key named {name!r}", field="name"))
        elif found.role == "admin" and sum(k.role == "admin" for k in keys) == 1:
            out.append(ConflictError(f"{name!r} is the last admin key; create another admin key first", field="name"))
        else:
            out.append(tx.delete_api_key(name))
    return out


def touch_keys(tx: WriteTx, items: Sequence[tuple[str, float]]) -> list[Any]:
    """Write job: record keys' last use."""
    for name, now in items:
        tx.touch_api_key(name, now)
    return [None] * len(items)


class KeyService:
    """Keys of one process: the use cases, and the lookup every authenticated request makes."""

    def __init__(self, storage: Storage, clock: Clock, bound_s: float, max_entries: int = 10_000) -> None:
        self._storage = storage
        self._clock = clock
        self._bound_s = bound_s
        self._max_entries = max_entries
        # digest -> (the caller, or None for an unknown key; when the entry stops being trusted)
        self._seen: dict[str, tuple[Principal | None, float]] = {}
        self._touched: dict[str, float] = {}

    async def authenticate(self, token: str) -> Principal | None:
        """The caller holding this key, or None for a key that does not exist (or no longer)."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        wanted = digest(token)
        now = self._clock.monotonic()
        cached = self._seen.get(wanted)
        if cached is not None and cached[1] > now:
            principal = cached[0]
        else:
            found = await self._storage.api_key(wanted)
            # The index found the row by digest; compare in constant time anyway, so that no code
            # path ever compares key material with an early-exit `==`.
            if found is None or not hmac.compare_digest(found.digest, wanted):
                principal = None
            else:
                principal = Principal(name=found.name, role=found.role)
            if len(self._seen) >= self._max_entries:
                self._seen.clear()
            self._seen[wanted] = (principal, now + self._bound_s)
        if principal is not None:
            await self._touch(principal.name, now)
        return principal

    async def create(self, data: KeyIn) -> NewKey:
        """Make a key; the only time its plain text exists outside the caller."""
        if data.name in RESERVED:
            raise InvalidFieldError(f"name: {data.name!r} is reserved for the audit log", field="name")
        token = new_token()
        key = ApiKey(name=data.name, role=data.role, digest=digest(token), created_at=self._clock.time())
        stored: ApiKey = await self._storage.write(insert_keys, key)
        return NewKey(key=stored, token=token)

    async def list(self) -> list[ApiKey]:
        """Every key, by name (names, roles, creation and last use; never a key)."""
        return await self._storage.api_keys()

    async def revoke(self, name: str) -> ApiKey:
        """Revoke a key: this process refuses it at once, others within the staleness bound."""
        removed: ApiKey = await self._storage.write(delete_keys, name)
        self._seen.pop(removed.digest, None)
        return removed

    async def bootstrap(self, token: str | None) -> str | None:
        """On a database without keys, create the admin key (`token`, or a new one); the new one to print.

        Several processes may start at once on an empty database: one transaction stores its key,
        the others find a key and store nothing, so exactly one admin key is made and printed.
        """
        if await self._storage.api_keys():
            return None
        made = token if token is not None else new_token()
        key = ApiKey(name=ADMIN, role="admin", digest=digest(made), created_at=self._clock.time())
        try:
            stored = await self._storage.write(insert_first_key, key)
        except ConflictError:  # another process inserted its admin key at the same moment
            return None
        return made if stored is not None and token is None else None

    async def _touch(self, name: str, now: float) -> None:
        if now - self._touched.get(name, -float("inf")) < TOUCH_EVERY_S:
            return
        self._touched[name] = now
        try:
            await self._storage.write(touch_keys, (name, self._clock.time()))
        except UnavailableError:  # the last-use time is informative; the request itself goes on
            log.info("could not record the last use of key %r now", name)
