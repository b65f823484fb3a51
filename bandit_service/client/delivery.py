"""Getting rewards and decision logs to the service: when to send, what to send, and what each answer means.

Sans-I/O: `cycle()` is a generator that yields the `HttpCall`s to make and is sent their
`Outcome`s; the sync client's thread and the async client's task only make the calls and sleep
for `sleep_s()`. A cycle sends the decision logs first, then the rewards (only those whose
decision logs are delivered: a reward for a decision the service has not logged yet would be
refused), and stops at the first failure; the next cycle waits for the backoff.

A cycle is due when a queue holds a full batch, when `interval_s` has passed since the last one,
when a flush asks for it, or when a backoff after a failure has run out.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Callable, Generator
from typing import Any, Generic, Literal, TypeVar

import httpx

from bandit_service.client.outbox import Entry, Outbox
from bandit_service.client.retry import Backoff, parse_retry_after
from bandit_service.client.stats import Counters
from bandit_service.client.wire import (
    DECISION_LOG_PATH,
    REWARDS_PATH,
    Answer,
    HttpCall,
    ItemOutcome,
    Outcome,
    RewardItem,
    batch_verdict,
    log_body,
    read_items,
    retryable,
    reward_body,
)
from bandit_service.core.definitions import MAX_DECISION_LOG, LoggedDecisionIn

__all__ = ["MAX_BATCH", "Delivery"]

log = logging.getLogger("bandit_service.client")

MAX_BATCH = MAX_DECISION_LOG
"""The most items the service takes in one batch (rewards and decision logs alike)."""

T = TypeVar("T")
Kind = Literal["reward", "decision log"]


class _Lane(Generic[T]):
    """One outbox, its endpoint, and the batch size it is held to while a refused batch is split."""

    def __init__(self, kind: Kind, outbox: Outbox[T], path: str, encode: Callable[[list[T]], bytes]) -> None:
        self.kind = kind
        self.outbox = outbox
        self.path = path
        self.encode = encode
        self.split_limit = 0  # > 0 while the items up to `split_until` are sent in batches this small
        self.split_until = -1

    def limit(self, batch_size: int) -> int:
        oldest = self.outbox.oldest()
        if self.split_limit and oldest is not None and oldest <= self.split_until:
            return self.split_limit
        self.split_limit = 0
        return batch_size


class Delivery:
    """The outboxes of rewards and decision logs and the rules for sending them, shared by both clients."""

    def __init__(
        self,
        *,
        batch_size: int,
        max_queue: int,
        interval_s: float,
        send_timeout_s: float,
        backoff: Backoff,
        counters: Counters,
        clock: Callable[[], float],
        rng: random.Random,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size: must be 1 to {MAX_BATCH}, got {batch_size}")
        if max_queue < batch_size:
            raise ValueError(f"max_queue: must be at least batch_size ({batch_size}), got {max_queue}")
        if not interval_s > 0.0:
            raise ValueError(f"flush_interval_s: must be > 0, got {interval_s}")
        self._sequence = itertools.count().__next__  # one order across both outboxes
        self.logs: Outbox[LoggedDecisionIn] = Outbox("decision log", max_queue, self._sequence)
        self.rewards: Outbox[RewardItem] = Outbox("reward", max_queue, self._sequence)
        self._lanes: tuple[_Lane[Any], ...] = (
            _Lane("decision log", self.logs, DECISION_LOG_PATH, log_body),
            _Lane("reward", self.rewards, REWARDS_PATH, reward_body),
        )
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._send_timeout_s = send_timeout_s
        self._backoff = backoff
        self._counters = counters
        self._clock = clock
        self._rng = rng
        self._attempt = 0  # failures in a row
        self._retry_at = 0.0  # the backoff's end (a flush does not wait for it)
        self._hold_until = 0.0  # the service's Retry-After (a flush waits for it)
        self._retry_due = False
        self._flush_wanted = False
        self._last_cycle = clock()
        self.wake: Callable[[], None] = lambda: None
        """Set by the client: wakes its sender (a thread's event, a task's event)."""

    def put_reward(self, item: RewardItem) -> None:
        """Queue a reward (see `_put`)."""
        self._put(self.rewards, item)

    def put_log(self, item: LoggedDecisionIn) -> None:
        """Queue a local decision's log (see `_put`)."""
        self._put(self.logs, item)

    def _put(self, outbox: Outbox[T], item: T) -> None:
        """Queue an item; wake the sender when the queue starts (its interval begins) and when a batch is full.

        Only at those two counts, not on every put: waking a thread costs more than a local decision.
        """
        queued = outbox.put(item)
        if queued == 1 or queued == self._batch_size:
            self.wake()

    def mark(self) -> int:
        """A number above every item queued so far (see `delivered`)."""
        return self._sequence()

    def delivered(self, mark: int) -> bool:
        """Whether every item queued before `mark` was taken has been delivered (recorded or refused)."""
        return all(oldest is None or oldest >= mark for oldest in (self.logs.oldest(), self.rewards.oldest()))

    def request_flush(self) -> None:
        """Send now: skip the interval and the backoff (not the service's Retry-After)."""
        self._flush_wanted = True
        self._retry_at = 0.0
        self.wake()

    def due(self) -> bool:
        """Whether a cycle should run now."""
        if not (self.logs.queued or self.rewards.queued):
            return False
        now = self._clock()
        if now < self._retry_at or now < self._hold_until:
            return False
        full = self.logs.queued >= self._batch_size or self.rewards.queued >= self._batch_size
        return full or self._flush_wanted or self._retry_due or now - self._last_cycle >= self._interval_s

    def sleep_s(self) -> float | None:
        """How long the sender may sleep before the next cycle could be due (None: until woken)."""
        if not (self.logs.queued or self.rewards.queued):
            return None
        now = self._clock()
        full = self.logs.queued >= self._batch_size or self.rewards.queued >= self._batch_size
        if full or self._flush_wanted or self._retry_due:
            start = max(self._retry_at, self._hold_until)
        else:
            start = max(self._last_cycle + self._interval_s, self._retry_at, self._hold_until)
        return max(0.0, start - now)

    def cycle(self) -> Generator[HttpCall, Outcome, None]:
        """Send the queued decision logs, then the rewards whose logs are delivered; stop at the first failure.

        Only what was queued when the cycle began is sent, and only in full batches unless the
        cycle is due to the interval, a flush or a retry: under steady traffic the sender would
        otherwise chase the newest items with a request for every few of them.
        """
        now = self._clock()
        drain = self._flush_wanted or self._retry_due or now - self._last_cycle >= self._interval_s
        self._last_cycle = now
        self._flush_wanted = False
        mark = self._sequence()
        for lane in self._lanes:
            while True:
                below = min(mark, self.logs.watermark()) if lane.outbox is self.rewards else mark
                limit = lane.limit(self._batch_size)
                if not drain and lane.outbox.queued < limit:
                    break
                taken = lane.outbox.take(limit, below)
                if not taken:
                    break
                outcome = yield HttpCall(lane.path, lane.encode([e.item for e in taken]), self._send_timeout_s)
                if not self._settle(lane, taken, outcome):
                    return
        self._retry_due = False

    def _settle(self, lane: _Lane[T], taken: list[Entry[T]], outcome: Outcome) -> bool:
        """Settle a batch by its answer; False if it failed (what is left is retried after a backoff)."""
        if isinstance(outcome, httpx.HTTPError):
            return self._failed(lane, taken, taken, f"{type(outcome).__name__}: {outcome}", None)
        match batch_verdict(outcome.status):
            case "retry":
                retry_after = parse_retry_after(outcome.headers.get("retry-after"))
                return self._failed(lane, taken, taken, f"answered {outcome.status}", retry_after)
            case "split" if len(taken) > 1:
                # The body was refused whole: send it in halves until the item at fault stands alone.
                lane.split_limit = max(1, len(taken) // 2)
                lane.split_until = taken[-1].seq
                lane.outbox.settle(taken, taken)
                return True
            case "split":
                self._refused(lane.kind, outcome.status, _problem_text(outcome))
                lane.outbox.settle(taken)
                return True
            case "items":
                return self._read(lane, taken, outcome)

    def _read(self, lane: _Lane[T], taken: list[Entry[T]], answer: Answer) -> bool:
        items = read_items(answer, len(taken))
        if items is None:
            return self._failed(lane, taken, taken, f"answered {answer.status} without per-item results", None)
        retry = [entry for entry, item in zip(taken, items, strict=True) if retryable(item.status)]
        for item in items:
            if not retryable(item.status):
                self._count(lane.kind, item)
        if retry:
            status = next(item.status for item in items if retryable(item.status))
            return self._failed(lane, taken, retry, f"{len(retry)} items answered {status}", None)
        lane.outbox.settle(taken)
        self._attempt = 0
        return True

    def _count(self, kind: Kind, item: ItemOutcome) -> None:
        if item.contradicts:
            self._counters.add("contradictions")
        if 200 <= item.status < 300:
            if kind == "reward":
                self._counters.add("sent")
            else:
                self._counters.add("logged_decisions" if item.status == 201 else "duplicates")
            return
        detail = (item.problem or {}).get("detail", "")
        self._refused(kind, item.status, str(detail))

    def _refused(self, kind: Kind, status: int, detail: str) -> None:
        self._counters.add("refused" if kind == "reward" else "refused_logs")
        message = f"the service refused a {kind} ({status}): {detail}"
        self._counters.error(message)
        log.error("bandit client: %s", message)

    def _failed(
        self, lane: _Lane[T], taken: list[Entry[T]], retry: list[Entry[T]], reason: str, retry_after: float | None
    ) -> bool:
        lane.outbox.settle(taken, retry)
        now = self._clock()
        delay = self._backoff.delay(self._attempt, self._rng, retry_after)
        self._attempt += 1
        self._retry_at = now + delay
        if retry_after is not None:
            self._hold_until = now + delay
        self._retry_due = True
        self._counters.add("retried", len(retry))
        message = f"sending {len(retry)} {lane.kind}s failed ({reason}); retrying in {delay:.2f} s"
        self._counters.error(message)
        log.warning("bandit client: %s (%d queued)", message, len(lane.outbox))
        return False


def _problem_text(answer: Answer) -> str:
    return answer.content[:300].decode(errors="replace")
