"""Who may do what: the roles of API keys, each allowing everything the one before it does."""

from __future__ import annotations

import hashlib
from typing import Literal

import msgspec

from bandit_service.core.events import ACTOR

__all__ = ["ANONYMOUS", "ROLES", "ApiKey", "Principal", "Role", "allows", "digest"]

Role = Literal["decide", "read", "operate", "admin"]
ROLES: tuple[Role, ...] = ("decide", "read", "operate", "admin")
"""From the smallest to the largest: decide (decisions and rewards), read (also experiments, reports,
events), operate (also create, change, lifecycle, weights, exposure, ramps, reweights), admin (also keys)."""


class Principal(msgspec.Struct, frozen=True):
    """The caller of a request: the key's name (the audit log's actor) and its role."""

    name: str
    role: Role


ANONYMOUS = Principal(name=ACTOR, role="admin")
"""The caller when authentication is off (local play): may do anything."""


def allows(held: Role, needed: Role) -> bool:
    """Whether a key of role `held` may call an endpoint that needs `needed`."""
    return ROLES.index(held) >= ROLES.index(needed)


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """A stored API key: never the key itself, only its digest."""

    name: str
    role: Role
    digest: str
    created_at: float
    last_used_at: float | None = None


def digest(token: str) -> str:
    """The stored form of a key: SHA-256, hex.

    Keys are 256-bit random tokens, so a fast hash is enough: nobody can guess a preimage, and a
    deliberately slow password hash (bcrypt, argon2) would only add its cost to every request.
    """
    return hashlib.sha256(token.encode()).hexdigest()
