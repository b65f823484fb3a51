"""A bounded, thread-safe queue of items waiting to be sent, with what is in flight and what was dropped.

Policy when full: the oldest queued item is dropped, counted (`dropped`) and logged (at the 1st,
2nd, 4th, 8th... drop, so a long outage does not flood the log). The newest items are kept
because they are the ones the service can still take: an old reward may already be past its
decision's reward window.

Every item gets a sequence number from a counter the outboxes of one client share, so the sender
can tell "everything put before this moment has been delivered" (`flush`) and send a reward only
once the decision log it refers to is delivered (see `watermark`).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Generic, NamedTuple, TypeVar

__all__ = ["Entry", "Outbox"]

log = logging.getLogger("bandit_service.client")

T = TypeVar("T")


class Entry(NamedTuple, Generic[T]):
    """An item and its place in the order of everything put into the client's outboxes."""

    seq: int
    item: T


class Outbox(Generic[T]):
    """FIFO of at most `max_items` items (queued plus in flight); `take` moves items in flight, `settle` ends them."""

    def __init__(self, name: str, max_items: int, sequence: Callable[[], int]) -> None:
        if max_items < 1:
            raise ValueError(f"max_queue: must be at least 1, got {max_items}")
        self.name = name
        self.max_items = max_items
        self._next_seq = sequence
        self._queue: deque[Entry[T]] = deque()
        self._flight: dict[int, Entry[T]] = {}
        self._lock = threading.Lock()
        self.dropped = 0

    def __len__(self) -> int:
        """Items not yet delivered: queued and in flight."""
        return len(self._queue) + len(self._flight)

    @property
    def queued(self) -> int:
        """Items waiting to be taken."""
        return len(self._queue)

    def put(self, item: T) -> int:
        """Queue `item`; when full, drop the oldest queued item first. Returns how many are queued now."""
        with self._lock:
            seq = self._next_seq()  # under the lock: `watermark` sees the item or a later number
            self._queue.append(Entry(seq, item))
            if len(self._queue) + len(self._flight) > self.max_items:
                self._queue.popleft()
                self.dropped += 1
                dropped = self.dropped
            else:
                dropped = 0
            queued = len(self._queue)
        if dropped and dropped & (dropped - 1) == 0:  # a power of two
            log.warning(
                "bandit client: %s queue full (%d): dropped the oldest; %d dropped so far",
                self.name,
                self.max_items,
                dropped,
            )
        return queued

    def take(self, n: int, below: int | None = None) -> list[Entry[T]]:
        """Up to `n` of the oldest queued items (only those numbered below `below`), now in flight."""
        with self._lock:
            taken: list[Entry[T]] = []
            while self._queue and len(taken) < n and (below is None or self._queue[0].seq < below):
                entry = self._queue.popleft()
                self._flight[entry.seq] = entry
                taken.append(entry)
            return taken

    def settle(self, taken: Iterable[Entry[T]], retry: Iterable[Entry[T]] = ()) -> None:
        """End the flight of `taken`; the `retry` ones go back to the front of the queue, in order."""
        with self._lock:
            for entry in taken:
                self._flight.pop(entry.seq, None)
            again = sorted(retry, key=lambda e: e.seq, reverse=True)
            self._queue.extendleft(again)  # extendleft reverses: the oldest ends up first

    def oldest(self) -> int | None:
        """The sequence number of the oldest undelivered item (queued or in flight), None when there is none."""
        with self._lock:
            return self._oldest()

    def watermark(self) -> int:
        """A number such that every item numbered below it that was ever put here is delivered."""
        with self._lock:
            oldest = self._oldest()
            return self._next_seq() if oldest is None else oldest

    def _oldest(self) -> int | None:
        candidates = [self._queue[0].seq] if self._queue else []
        if self._flight:
            candidates.append(min(self._flight))
        return min(candidates) if candidates else None
