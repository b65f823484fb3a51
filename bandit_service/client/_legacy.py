"""A small Python client for the bandit service: decisions with a fallback arm, batched rewards."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import httpx
import msgspec

__all__ = ["BanditClient", "RewardReport"]

log = logging.getLogger(__name__)


class _OldDecision(msgspec.Struct, frozen=True):
    """The arm to use. `fallback` is True when the service could not be asked (no decision id)."""

    experiment: str
    arm: str | None
    decision_id: str | None = None
    payload: Any = None
    propensity: float | None = None
    weights_version: int | None = None
    in_experiment: bool = False
    fallback: bool = False


class RewardReport(msgspec.Struct, frozen=True, omit_defaults=True):
    """One queued reward; the idempotency key makes a retried batch count once."""

    decision_id: str
    reward: float
    idempotency_key: str
    metrics: dict[str, float] | None = None


class BanditClient:
    """Ask for arms and report rewards; never let the service's absence break the app.

    `api_key` is a key of role decide (or above), sent as a bearer token. `decide` answers with
    the caller's default arm when the service is unreachable, slow
    (beyond `timeout_s`) or answers 5xx. Rewards are queued and sent in batches of
    `batch_size` (or when `flush_interval_s` has passed since the last send, or on `flush`
    and `close`); a batch that fails on the network stays queued, with the same idempotency
    keys, and is retried on the next flush, up to `max_queue` rewards.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout_s: float = 0.25,
        batch_size: int = 100,
        flush_interval_s: float = 1.0,
        max_queue: int = 100_000,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size: must be at least 1, got {batch_size}")
        if max_queue < batch_size:
            raise ValueError(f"max_queue: must be at least batch_size ({batch_size}), got {max_queue}")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key is not None else {}
        self._http = http if http is not None else httpx.Client(base_url=base_url, timeout=timeout_s, headers=headers)
        self._owns_http = http is None
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._max_queue = max_queue
        self._clock = clock
        self._queue: list[RewardReport] = []
        self._last_flush = clock()
        self.dropped = 0  # rewards dropped because the queue was full or the service refused them

    def decide(
        self,
        experiment: str,
        unit: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        *,
        default_arm: str | None = None,
    ) -> _OldDecision:
        """The arm for this unit, or `default_arm` (marked as a fallback) if the service is unavailable."""
        body: dict[str, Any] = {"experiment": experiment}
        if unit is not None:
            body["unit"] = unit
        if attributes:
            body["attributes"] = dict(attributes)
        try:
            response = self._http.post("/v1/decisions", content=msgspec.json.encode(body), headers=_JSON)
        except httpx.HTTPError as exc:
            log.warning("bandit service unreachable, using default arm: %s", exc)
            return _OldDecision(experiment=experiment, arm=default_arm, fallback=True)
        if response.status_code >= 500:
            log.warning("bandit service answered %s, using default arm", response.status_code)
            return _OldDecision(experiment=experiment, arm=default_arm, fallback=True)
        response.raise_for_status()  # a 4xx is the caller's mistake: say so loudly
        return msgspec.json.decode(response.content, type=_OldDecision)

    def reward(
        self,
        decision_id: str,
        reward: float,
        metrics: Mapping[str, float] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> None:
        """Queue a reward for a decision; sent with the next batch."""
        if len(self._queue) >= self._max_queue:
            self.dropped += 1
            log.warning("reward queue full (%d); dropping the reward of %s", self._max_queue, decision_id)
            return
        key = idempotency_key if idempotency_key is not None else uuid.uuid4().hex
        self._queue.append(RewardReport(decision_id, float(reward), key, dict(metrics) if metrics else None))
        if len(self._queue) >= self._batch_size or self._clock() - self._last_flush >= self._flush_interval_s:
            self.flush()

    @property
    def pending(self) -> int:
        """Rewards queued and not yet acknowledged by the service."""
        return len(self._queue)

    def flush(self) -> bool:
        """Send queued rewards in batches; True when the queue is empty afterwards."""
        self._last_flush = self._clock()
        while self._queue:
            batch = self._queue[: self._batch_size]
            try:
                response = self._http.post("/v1/rewards/batch", content=msgspec.json.encode(batch), headers=_JSON)
            except httpx.HTTPError as exc:
                log.warning("bandit service unreachable, %d rewards stay queued: %s", len(self._queue), exc)
                return False
            if response.status_code >= 500:
                log.warning("bandit service answered %s, %d rewards stay queued", response.status_code, len(batch))
                return False
            del self._queue[: len(batch)]
            if response.status_code >= 400:
                # The service refused the batch as bad input: retrying cannot help.
                self.dropped += len(batch)
                log.error("bandit service refused %d rewards: %s", len(batch), response.text)
                continue
            retry = self._item_outcomes(batch, response.content)
            if retry:
                self._queue[:0] = retry
                log.warning("bandit service could not store %d rewards now; they stay queued", len(retry))
                return False
        return True

    def _item_outcomes(self, batch: list[RewardReport], content: bytes) -> list[RewardReport]:
        """Count the items the service refused (4xx) and return those to retry (5xx)."""
        try:
            results = msgspec.json.decode(content, type=_BatchOut).results
        except msgspec.DecodeError:
            return []  # not a per-item answer: the batch as a whole was accepted
        retry = []
        for report, item in zip(batch, results, strict=False):
            if item.status >= 500:
                retry.append(report)
            elif item.status >= 400:
                self.dropped += 1
                log.error("bandit service refused the reward of %s: %s", report.decision_id, item.problem)
        return retry

    def close(self) -> None:
        """Flush what is queued and close the HTTP client (if this client opened it)."""
        self.flush()
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> BanditClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _ItemOut(msgspec.Struct, frozen=True):
    status: int
    problem: Any = None


class _BatchOut(msgspec.Struct, frozen=True):
    results: list[_ItemOut]


_JSON = {"content-type": "application/json"}
