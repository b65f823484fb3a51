"""Sticky stores for local evaluation: the arm each unit was first served, by experiment.

The service keeps a unit's first arm (its sticky assignment) so a reweight moves new units, not old
ones. The SDK's local evaluation keeps its own copy in a `StickyStore`: `MemoryStickyStore` (an LRU
in the process, the default) or anything with the same two methods, for instance a Redis hash that
every process of the app shares, so a unit keeps its arm across processes and restarts:

    class RedisStickyStore:
        '''Sticky arms in Redis: one hash per experiment, field = unit, value = arm name.'''

        def __init__(self, redis: "redis.Redis", prefix: str = "bandit:sticky:", ttl_s: int = 30 * 86_400) -> None:
            self._redis, self._prefix, self._ttl_s = redis, prefix, ttl_s

        def get(self, experiment: str, unit: str) -> str | None:
            arm = self._redis.hget(self._prefix + experiment, unit)
            return None if arm is None else arm.decode()

        def set(self, experiment: str, unit: str, arm: str) -> None:
            key = self._prefix + experiment
            self._redis.hset(key, unit, arm)
            self._redis.expire(key, self._ttl_s)

A store is asked on every local decision of a sticky experiment, so it should answer in
microseconds (keep Redis close, or put a `MemoryStickyStore` in front of it). A store that loses an
entry is not wrong, only less sticky: the unit is placed again by the same hash, under the current
weights, and the service flags the logged arm if it contradicts the assignment it stored.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Protocol, runtime_checkable

__all__ = ["DEFAULT_MAX_UNITS", "MemoryStickyStore", "StickyStore"]

DEFAULT_MAX_UNITS = 100_000
"""Assignments (experiment, unit) a `MemoryStickyStore` keeps by default (about 22 MB with 13-character unit ids)."""


@runtime_checkable
class StickyStore(Protocol):
    """Where local evaluation keeps the arm each unit was served first, by experiment key and unit id."""

    def get(self, experiment: str, unit: str) -> str | None:
        """The unit's stored arm name, or None if it has none."""
        ...

    def set(self, experiment: str, unit: str, arm: str) -> None:
        """Store the unit's arm (its first placement)."""
        ...


class MemoryStickyStore:
    """An in-process LRU of assignments, safe to share between threads.

    It keeps the `max_units` most recently used (experiment, unit) assignments; the least recently
    used one goes when a new one comes. A unit that was evicted is placed again by the hash under
    the current weights (the same arm unless the weights moved it).
    """

    __slots__ = ("_entries", "_lock", "_max_units")

    def __init__(self, max_units: int = DEFAULT_MAX_UNITS) -> None:
        if max_units < 1:
            raise ValueError(f"max_units: must be at least 1, got {max_units}")
        self._max_units = max_units
        self._entries: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def max_units(self) -> int:
        """The most assignments kept."""
        return self._max_units

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, experiment: str, unit: str) -> str | None:
        """The unit's stored arm (now the most recently used entry), or None."""
        key = (experiment, unit)
        with self._lock:
            arm = self._entries.get(key)
            if arm is not None:
                self._entries.move_to_end(key)
        return arm

    def set(self, experiment: str, unit: str, arm: str) -> None:
        """Store the unit's arm, evicting the least recently used assignment when full."""
        key = (experiment, unit)
        with self._lock:
            entries = self._entries
            entries[key] = arm
            entries.move_to_end(key)
            if len(entries) > self._max_units:
                entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every assignment."""
        with self._lock:
            self._entries.clear()
