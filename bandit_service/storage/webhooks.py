"""SQL for the webhook outbox: queue an event's deliveries, claim and settle them, read the log (`core.webhooks`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, insert, select, update
from sqlalchemy.engine import Connection

from bandit_service.core.model import Event, LoggedEvent
from bandit_service.core.webhooks import Delivery, DeliveryEntry, DeliveryStatus, targets
from bandit_service.storage.tables import EVENTS, EXPERIMENTS, WEBHOOK_DELIVERIES

__all__ = ["due_deliveries", "load_deliveries", "queue_deliveries", "update_delivery"]

D = WEBHOOK_DELIVERIES

# The columns a delivery writes after it was queued (claim and outcome).
_MUTABLE = (
    "status",
    "attempts",
    "next_attempt_at",
    "last_attempt_at",
    "last_status_code",
    "last_error",
    "delivered_at",
)


def queue_deliveries(conn: Connection, event_id: int, event: Event, global_url: str | None) -> None:
    """Queue a just-logged event for its experiment's webhook URL (as this transaction sees it) and the global one."""
    # Only the URL, extracted by the database (JSON null and a config stored before webhooks both read as NULL).
    own = conn.execute(
        select(EXPERIMENTS.c.config["webhook_url"].as_string()).where(EXPERIMENTS.c.id == event.experiment_id)
    ).scalar_one_or_none()
    rows = [
        {
            "event_id": event_id,
            "experiment_id": event.experiment_id,
            "url": url,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": event.created_at,
            "created_at": event.created_at,
        }
        for url in targets(own, global_url)
    ]
    if rows:
        conn.execute(insert(D), rows)


def update_delivery(conn: Connection, delivery: Delivery, attempts: int) -> bool:
    """Compare-and-set: write the delivery's state if it is still pending after `attempts` attempts."""
    result = conn.execute(
        update(D)
        .where(D.c.id == delivery.id, D.c.status == "pending", D.c.attempts == attempts)
        .values(**{name: getattr(delivery, name) for name in _MUTABLE})
    )
    return bool(result.rowcount == 1)


def _entries() -> Select[Any]:
    return (
        select(
            D,
            EVENTS.c.created_at.label("event_created_at"),
            EVENTS.c.actor,
            EVENTS.c.action,
            EVENTS.c.before,
            EVENTS.c.after,
            EXPERIMENTS.c.key.label("experiment_key"),
        )
        .join(EVENTS, EVENTS.c.id == D.c.event_id)
        .join(EXPERIMENTS, EXPERIMENTS.c.id == D.c.experiment_id)
    )


def _entry(m: Any) -> DeliveryEntry:
    delivery = Delivery(**{name: m[name] for name in Delivery.__struct_fields__})
    event = LoggedEvent(
        id=m["event_id"],
        experiment_id=m["experiment_id"],
        created_at=m["event_created_at"],
        actor=m["actor"],
        action=m["action"],
        before=m["before"],
        after=m["after"],
    )
    return DeliveryEntry(delivery=delivery, event=event, experiment=m["experiment_key"])


def due_deliveries(conn: Connection, now: float, limit: int) -> list[DeliveryEntry]:
    """Pending deliveries due at `now`, the longest-waiting first (uses the (status, time) index)."""
    rows = conn.execute(
        _entries()
        .where(D.c.status == "pending", D.c.next_attempt_at <= now)
        .order_by(D.c.next_attempt_at, D.c.id)
        .limit(limit)
    )
    return [_entry(r._mapping) for r in rows]


def load_deliveries(
    conn: Connection, experiment_id: int | None, status: DeliveryStatus | None, before: int | None, limit: int
) -> list[DeliveryEntry]:
    """Deliveries newest first, of one experiment or all, optionally of one status, with id < `before`."""
    query = _entries()
    if experiment_id is not None:
        query = query.where(D.c.experiment_id == experiment_id)
    if status is not None:
        query = query.where(D.c.status == status)
    if before is not None:
        query = query.where(D.c.id < before)
    rows = conn.execute(query.order_by(D.c.id.desc()).limit(limit))
    return [_entry(r._mapping) for r in rows]
