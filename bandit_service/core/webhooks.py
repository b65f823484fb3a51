"""Webhooks: the event a receiver gets, its signature, and what one delivery attempt leads to.

Every audit-log entry of an experiment is queued, in the transaction that logs it, for the
experiment's `webhook_url` and for the service's global URL (one delivery per distinct URL).
The scheduler sends due deliveries; a 2xx answer delivers one, anything else schedules a retry
with exponential backoff until `MAX_ATTEMPTS`, then it is failed. A delivery is claimed before
it is sent by a compare-and-set on its attempt count, which also schedules its retry: a replica
that dies mid-send leaves it due again later, never lost. Delivery is at least once; receivers
dedupe on the event id.

The signature is Stripe's scheme: `X-Bandit-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
"<t>.<raw body>" under the shared secret>`; the timestamp lets a receiver refuse old replays.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, Literal, assert_never

import msgspec

from bandit_service.core.errors import InvalidFieldError
from bandit_service.core.model import LoggedEvent
from bandit_service.core.timestamps import to_datetime

__all__ = [
    "DELIVERY_ID_HEADER",
    "EVENT_ID_HEADER",
    "MAX_ATTEMPTS",
    "SIGNATURE_HEADER",
    "Answered",
    "Delivery",
    "DeliveryEntry",
    "DeliveryPage",
    "DeliveryStatus",
    "NotSent",
    "Outcome",
    "Unreachable",
    "WebhookEvent",
    "check_webhook_url",
    "claimed",
    "event_body",
    "retry_delay_s",
    "settled",
    "sign",
    "signature_valid",
    "targets",
]

DeliveryStatus = Literal["pending", "delivered", "failed"]

SIGNATURE_HEADER = "X-Bandit-Signature"
EVENT_ID_HEADER = "X-Bandit-Event-Id"
DELIVERY_ID_HEADER = "X-Bandit-Delivery-Id"

MAX_ATTEMPTS = 10
"""Attempts before a delivery is failed: with the delays below, about four hours of retries."""
FIRST_RETRY_S = 10.0
RETRY_FACTOR = 3.0
MAX_RETRY_S = 3_600.0
ERROR_CHARS = 200


class WebhookEvent(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON body a receiver gets: one audit-log entry of one experiment."""

    id: int  # the audit-log entry's id: the same on every retry, so receivers dedupe on it
    type: str  # the audit action: "start", "pause", "complete", "update", "ramp_step", "auto_pause", ...
    experiment: str
    occurred_at: str  # RFC 3339, UTC
    actor: str  # the API key's name, "scheduler" or "automation"
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One event queued for one URL, and where its delivery stands."""

    id: int
    event_id: int
    experiment_id: int
    url: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: float | None  # when it is due (pending), None once delivered or failed
    last_attempt_at: float | None
    last_status_code: int | None
    last_error: str | None  # short, never the URL or the secret
    created_at: float
    delivered_at: float | None


class DeliveryEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery with its event and its experiment's key (what sending and the log need)."""

    delivery: Delivery
    event: LoggedEvent
    experiment: str


class DeliveryPage(msgspec.Struct, frozen=True, kw_only=True):
    """Deliveries, newest first; `next_before` is the cursor of the next (older) page, None: no more."""

    experiment: str | None
    entries: tuple[DeliveryEntry, ...]
    next_before: int | None


class Answered(msgspec.Struct, frozen=True, tag="answered"):
    """The receiver answered with this status (2xx: delivered; anything else, a redirect too: retried)."""

    status_code: int


class Unreachable(msgspec.Struct, frozen=True, tag="unreachable"):
    """No answer: a connection error or a timeout (`error` is short and names no URL)."""

    error: str


class NotSent(msgspec.Struct, frozen=True, tag="not_sent"):
    """The service could not send it (no signing secret): counted as an attempt, retried."""

    error: str


Outcome = Answered | Unreachable | NotSent


def targets(experiment_url: str | None, global_url: str | None) -> tuple[str, ...]:
    """The URLs an experiment's events go to: its own and the global one, each once."""
    return tuple(dict.fromkeys(url for url in (experiment_url, global_url) if url is not None))


def check_webhook_url(url: str | None, *, signed: bool) -> None:
    """Refuse an experiment's webhook URL when the service has no secret to sign its events with."""
    if url is not None and not signed:
        raise InvalidFieldError(
            "webhook_url: this service has no webhook signing secret, so it cannot send signed events; "
            "set BANDIT_WEBHOOK_SECRET and restart it",
            field="webhook_url",
        )


def retry_delay_s(attempt: int) -> float:
    """Seconds from attempt `attempt` (1-based) to the next: 10, 30, 90, ... capped at an hour.

    Always longer than a send may take, so a claimed delivery is not due again while it is sent.
    """
    return min(FIRST_RETRY_S * RETRY_FACTOR ** (attempt - 1), MAX_RETRY_S)


def claimed(delivery: Delivery, now: float) -> Delivery:
    """The delivery as its claim writes it: one more attempt, due again at the retry time."""
    attempts = delivery.attempts + 1
    return msgspec.structs.replace(
        delivery, attempts=attempts, last_attempt_at=now, next_attempt_at=now + retry_delay_s(attempts)
    )


def settled(delivery: Delivery, outcome: Outcome, now: float, max_attempts: int = MAX_ATTEMPTS) -> Delivery:
    """A claimed delivery after its attempt: delivered on a 2xx, else still pending (retry) or failed (last)."""
    match outcome:
        case Answered(status_code=code) if 200 <= code < 300:
            return msgspec.structs.replace(
                delivery,
                status="delivered",
                next_attempt_at=None,
                last_status_code=code,
                last_error=None,
                delivered_at=now,
            )
        case Answered(status_code=code):
            code_seen: int | None = code
            error = f"the receiver answered {code}" + (" (redirects are not followed)" if 300 <= code < 400 else "")
        case Unreachable(error=reason) | NotSent(error=reason):
            code_seen, error = None, reason[:ERROR_CHARS]
        case _:
            assert_never(outcome)
    last = delivery.attempts >= max_attempts
    return msgspec.structs.replace(
        delivery,
        status="failed" if last else "pending",
        next_attempt_at=None if last else delivery.next_attempt_at,
        last_status_code=code_seen,
        last_error=error,
    )


def event_body(event: LoggedEvent, experiment: str) -> bytes:
    """The JSON body of an event (the same bytes on every attempt)."""
    occurred_at = msgspec.json.encode(to_datetime(event.created_at)).decode().strip('"')
    return msgspec.json.encode(
        WebhookEvent(
            id=event.id,
            type=event.action,
            experiment=experiment,
            occurred_at=occurred_at,
            actor=event.actor,
            before=event.before,
            after=event.after,
        )
    )


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The `X-Bandit-Signature` value: `t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def signature_valid(secret: str, body: bytes, header: str, now: float, tolerance_s: float = 300.0) -> bool:
    """Whether a signature header is this body's under `secret`, made within `tolerance_s` of `now`."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    timestamp, given = parts.get("t", ""), parts.get("v1", "")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, int(timestamp)), f"t={timestamp},v1={given}")
