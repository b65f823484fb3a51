"""Identifier factories for decision ids and experiment salts (a seam, so tests are repeatable)."""

from __future__ import annotations

import hashlib
import itertools
import secrets
from collections.abc import Callable

__all__ = ["IdFactory", "random_id", "sequential_ids"]

IdFactory = Callable[[], str]


def random_id() -> str:
    """128 random bits as 32 lowercase hex characters."""
    return secrets.token_hex(16)


def sequential_ids(seed: str = "test") -> IdFactory:
    """A repeatable factory: blake2b of (seed, counter), 32 hex characters, distinct per call."""
    counter = itertools.count()

    def next_id() -> str:
        return hashlib.blake2b(f"{seed}:{next(counter)}".encode(), digest_size=16).hexdigest()

    return next_id
