"""Webhook delivery: the scheduler's job that sends due deliveries, and the delivery log.

Deliveries are queued by the storage in the transaction that logs each audit entry (an outbox),
so no change goes without its event and no event is lost when a process stops. This job sends
them over HTTP (httpx, no redirects, a hard time limit per attempt) and records each outcome
(`core.webhooks` decides what it leads to). A delivery is claimed with a compare-and-set on its
attempt count before it is sent, so two replicas never send it at the same time; a replica that
stops mid-send leaves it due again at its retry time: delivery is at least once, and receivers
dedupe on `X-Bandit-Event-Id`. Receivers are never called on a request's path: a receiver that
is down delays only its own deliveries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import httpx
import msgspec

from bandit_service.core.webhooks import (
    DELIVERY_ID_HEADER,
    EVENT_ID_HEADER,
    MAX_ATTEMPTS,
    SIGNATURE_HEADER,
    Answered,
    Delivery,
    DeliveryEntry,
    DeliveryPage,
    DeliveryStatus,
    NotSent,
    Outcome,
    Unreachable,
    claimed,
    event_body,
    settled,
    sign,
)
from bandit_service.ports import Clock, Storage, WriteTx
from bandit_service.services.lookup import load_experiment

__all__ = ["SEND_TIMEOUT_S", "DeliveryWrite", "WebhookService", "write_deliveries"]

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 5.0
"""The longest one attempt may take, connection to answer; well below the first retry delay (10 s)."""
CONNECT_TIMEOUT_S = 2.0
CONCURRENCY = 8
USER_AGENT = "bandit-service-webhooks"


class DeliveryWrite(msgspec.Struct, frozen=True):
    """A delivery's new state, to be written only if it is still pending after `attempts` attempts."""

    delivery: Delivery
    attempts: int


def write_deliveries(tx: WriteTx, items: Sequence[DeliveryWrite]) -> list[bool]:
    """Write job: compare-and-set each delivery; False where another sender got there first."""
    return [tx.update_delivery(item.delivery, item.attempts) for item in items]


class WebhookService:
    """Sends due webhook deliveries (a scheduler job) and reads the delivery log (GET .../webhooks)."""

    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        secret: str | None,
        *,
        timeout_s: float = SEND_TIMEOUT_S,
        max_attempts: int = MAX_ATTEMPTS,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._secret = secret
        self._timeout_s = timeout_s
        self._max_attempts = max_attempts
        self._slots = asyncio.Semaphore(concurrency)
        self._client: httpx.AsyncClient | None = None  # made at the first send: it loads the CA bundle (~0.1 s)

    @property
    def signed(self) -> bool:
        """Whether the service has a secret to sign events with (without one, no webhook URL is accepted)."""
        return self._secret is not None

    async def close(self) -> None:
        """Release the HTTP connections."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # httpx logs each request's full URL at INFO; a webhook URL may carry a token in its query.
            httpx_log = logging.getLogger("httpx")
            if httpx_log.level == logging.NOTSET:
                httpx_log.setLevel(logging.WARNING)
            # No redirects: a 3xx is the receiver's answer (retried), so an event never goes where it was not sent.
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout_s, connect=min(self._timeout_s, CONNECT_TIMEOUT_S)),
                follow_redirects=False,
                headers={"User-Agent": USER_AGENT},
            )
        return self._client

    async def deliver_due(self, now: float, limit: int = 100) -> int:
        """Send the deliveries due at `now`, several at once; how many attempts were made."""
        due = await self._storage.due_deliveries(now, limit)
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._deliver(entry)) for entry in due]
        return sum(task.result() for task in tasks)

    async def deliveries(
        self, key: str | None, status: DeliveryStatus | None, before: int | None, limit: int
    ) -> DeliveryPage:
        """Deliveries newest first, of experiment `key` (None: of all); `next_before` pages to older ones."""
        experiment_id = None if key is None else (await load_experiment(self._storage, key)).id
        entries = await self._storage.deliveries(experiment_id, status, before, limit)
        next_before = entries[-1].delivery.id if len(entries) == limit else None
        return DeliveryPage(experiment=key, entries=tuple(entries), next_before=next_before)

    async def _deliver(self, entry: DeliveryEntry) -> int:
        """Claim, send and record one delivery; 1 if this process made the attempt, else 0."""
        # The slot before the claim: a claimed delivery is sent at once, well within its retry delay.
        async with self._slots:
            return await self._attempt(entry)

    async def _attempt(self, entry: DeliveryEntry) -> int:
        delivery = entry.delivery
        if delivery.attempts >= self._max_attempts:
            # Its last attempt was claimed by a process that stopped before recording the outcome.
            unknown = Unreachable("no outcome was recorded for the last attempt")
            lost = settled(delivery, unknown, self._clock.time(), self._max_attempts)
            await self._storage.write(write_deliveries, DeliveryWrite(lost, delivery.attempts))
            return 0
        claim = claimed(delivery, self._clock.time())
        if not await self._storage.write(write_deliveries, DeliveryWrite(claim, delivery.attempts)):
            return 0  # another replica claimed it first
        outcome = await self._send(entry, claim)
        result = settled(claim, outcome, self._clock.time(), self._max_attempts)
        await self._storage.write(write_deliveries, DeliveryWrite(result, claim.attempts))
        if result.status == "failed":
            log.warning(
                "webhook delivery %d (%s event %d of %r) failed after %d attempts: %s",
                result.id,
                entry.event.action,
                entry.event.id,
                entry.experiment,
                result.attempts,
                result.last_error,
            )
        return 1

    async def _send(self, entry: DeliveryEntry, delivery: Delivery) -> Outcome:
        """POST the signed event; the receiver's status, or why there was none."""
        if self._secret is None:
            return NotSent("not sent: the service has no webhook signing secret (set BANDIT_WEBHOOK_SECRET)")
        body = event_body(entry.event, entry.experiment)
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: str(entry.event.id),
            DELIVERY_ID_HEADER: str(delivery.id),
            SIGNATURE_HEADER: sign(self._secret, body, int(self._clock.time())),
        }
        try:
            # A hard limit on the whole attempt: httpx's timeouts bound each read, not a receiver that drips.
            async with asyncio.timeout(self._timeout_s):
                # Streamed and closed unread: only the status matters, and a huge answer costs nothing.
                async with self._http().stream("POST", delivery.url, content=body, headers=headers) as response:
                    return Answered(response.status_code)
        except (TimeoutError, httpx.TimeoutException):
            return Unreachable(f"no answer within {self._timeout_s:g} s")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return Unreachable(_reason(exc, delivery.url))


def _reason(exc: Exception, url: str) -> str:
    """A short reason for a failed connection that never shows the URL (it may hold a token)."""
    return f"{type(exc).__name__}: {str(exc).replace(url, '<url>')}" if str(exc) else type(exc).__name__
