"""What the sync and async clients share: construction, rewards and stats (everything without I/O)."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import Generic, TypeVar

import httpx

from bandit_service.client.delivery import Delivery
from bandit_service.client.engine import Engine, FallbackSpec, OnUnknown
from bandit_service.client.local import LocalEvaluator
from bandit_service.client.retry import Backoff
from bandit_service.client.stats import ClientStats, Counters
from bandit_service.client.sticky import StickyStore
from bandit_service.client.wire import RewardTarget

__all__ = ["SEND_TIMEOUT_S", "ClientBase"]

H = TypeVar("H", httpx.Client, httpx.AsyncClient)

SEND_TIMEOUT_S = 5.0
"""The least time a batch send may take (a batch of 1,000 is more work than one decision)."""


class ClientBase(Generic[H]):
    """Ask for arms and report rewards; never let the service's absence or trouble break the app.

    - `api_key`: a key of role decide (or above), sent as a bearer token.
    - `timeout_s`: the most a remote `decide` waits (then the fallback is used).
    - `local`: decide in this process from the service's definitions (polled in the background,
      the first fetch bounded by `timeout_s`), logging the decisions in batches; a key the
      definitions do not know is asked of the service.
    - `sticky_store`: where local evaluation keeps units' arms (default: an in-memory LRU).
    - `fallbacks`: per experiment or feature key, the `Fallback` (or arm name) used when the
      service cannot decide; `decide(fallback=...)` overrides it for one call.
    - `on_unknown`: "fallback" (default) or "raise" (`BanditError`) for an unknown experiment or feature.
    - `batch_size`, `flush_interval_s`: rewards and decision logs are sent in batches of up to
      `batch_size` by a background sender, at once when a batch is full and otherwise every
      `flush_interval_s` seconds.
    - `max_queue`: the most rewards (and, separately, decision logs) held; beyond it the oldest
      is dropped, counted (`stats.dropped`) and logged.
    - `http`: an httpx client to use (its base URL, transport, proxies); the client's own is
      made otherwise, and only that one is closed by `close()`.
    - `backoff`: the retry waits of failed sends (exponential, full jitter; Retry-After honoured).

    Close it (`close()`, or use it as a context manager): close flushes within a timeout. The
    sender runs as a daemon, so what is still queued when the process exits without `close()` is lost.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout_s: float = 1.0,
        local: bool = False,
        sticky_store: StickyStore | None = None,
        fallbacks: Mapping[str, FallbackSpec] | None = None,
        on_unknown: OnUnknown = "fallback",
        batch_size: int = 100,
        flush_interval_s: float = 1.0,
        max_queue: int = 10_000,
        http: H | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        counters = Counters()
        rng = random.Random()
        backoff = backoff if backoff is not None else Backoff()
        delivery = Delivery(
            batch_size=batch_size,
            max_queue=max_queue,
            interval_s=flush_interval_s,
            send_timeout_s=max(timeout_s, SEND_TIMEOUT_S),
            backoff=backoff,
            counters=counters,
            clock=time.monotonic,
            rng=rng,
        )
        self._engine = Engine(
            timeout_s=timeout_s,
            fallbacks=fallbacks,
            on_unknown=on_unknown,
            evaluator=LocalEvaluator(sticky_store) if local else None,
            delivery=delivery,
            backoff=backoff,
            counters=counters,
            clock=time.monotonic,
            rng=rng,
        )
        headers = {"Authorization": f"Bearer {api_key}"} if api_key is not None else {}
        self._http: H
        if http is None:
            self._http = self._new_http(base_url=base_url, headers=headers, timeout=timeout_s)
            self._owns_http = True
        else:
            http.headers.update(headers)
            self._http = http
            self._owns_http = False
        self._open()

    def _new_http(self, *, base_url: str, headers: dict[str, str], timeout: float) -> H:
        """The HTTP client this client makes for itself."""
        raise NotImplementedError

    def _open(self) -> None:
        """Start what sends in the background (a thread, or a task once a loop runs)."""
        raise NotImplementedError

    def reward(
        self,
        target: RewardTarget,
        value: float,
        metrics: Mapping[str, float] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> None:
        """Queue the reward of a decision; it is sent in the background (retried until the service takes it).

        `target`: the `ClientDecision`, `(experiment, unit)` for a unit's trial, or a decision id.
        A fallback decision's reward (or one outside the experiment) is counted
        (`stats.skipped_rewards`) and not sent. The idempotency key (made here unless given)
        makes a retried send count once. A malformed reward (not a finite number, a bad metric
        name) raises ValueError or TypeError here; never a service fault.
        """
        self._engine.reward(target, value, metrics, idempotency_key)
        self._queued()

    def _queued(self) -> None:
        """After a reward is queued (the async client starts its task if it can)."""

    @property
    def stats(self) -> ClientStats:
        """Counters so far: decisions by source, rewards and decision logs by outcome, queues."""
        return self._engine.stats()
