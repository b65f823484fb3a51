"""Identifier factories for decision ids and experiment salts (a seam, so tests are repeatable)."""

from __future__ import annotations

import hashlib
import itertools
import secrets

from bandit_service.ports import IdFactory

__all__ = ["process_ids", "random_id", "sequential_ids"]


def random_id() -> str:
    """128 random bits as 32 lowercase hex characters."""
    return secrets.token_hex(16)


def process_ids() -> IdFactory:
    """Ids unique across processes and restarts: 64 random bits drawn once, then a 64-bit counter.

    The decision path makes one id per request: a getrandom() system call per id was a
    measurable share of a worker's time under load (the README's HTTP load benchmark), while a
    counter is one Python increment.
    """
    prefix = secrets.token_hex(8)
    counter = itertools.count()

    def next_id() -> str:
        return f"{prefix}{next(counter):016x}"

    return next_id


def sequential_ids(seed: str = "test") -> IdFactory:
    """A repeatable factory: blake2b of (seed, counter), 32 hex characters, distinct per call."""
    counter = itertools.count()

    def next_id() -> str:
        return hashlib.blake2b(f"{seed}:{next(counter)}".encode(), digest_size=16).hexdigest()

    return next_id
