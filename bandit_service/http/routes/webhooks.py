"""The webhook delivery log: GET /v1/experiments/{key}/webhooks and GET /v1/webhooks (every experiment)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from bandit_service.core.webhooks import DeliveryStatus
from bandit_service.http.schemas import WebhookDeliveryList
from bandit_service.http.views import delivery_list
from bandit_service.services.webhooks import WebhookService

__all__ = ["WebhookController"]

Limit = Annotated[int, QueryParameter(ge=1, le=1_000)]
Before = Annotated[
    int | None, QueryParameter(ge=1, le=2**62, description="Return deliveries with a smaller id (a cursor).")
]
Status = Annotated[DeliveryStatus | None, QueryParameter(description="Only deliveries in this status.")]


class WebhookController(Controller):
    """Where each lifecycle event stands on its way to the webhook receivers."""

    path = "/v1"
    tags = ["webhooks"]  # noqa: RUF012 (Litestar reads a class attribute)

    @get("/experiments/{key:str}/webhooks", opt={"role": "read"})
    async def experiment_deliveries(
        self,
        key: FromPath[str],
        webhooks: NamedDependency[WebhookService],
        limit: Limit = 100,
        before: Before = None,
        status: Status = None,
    ) -> WebhookDeliveryList:
        """The experiment's webhook deliveries, newest first: URL, status, attempts, the receiver's last answer."""
        return delivery_list(await webhooks.deliveries(key, status, before, limit))

    @get("/webhooks", opt={"role": "read"})
    async def deliveries(
        self,
        webhooks: NamedDependency[WebhookService],
        limit: Limit = 100,
        before: Before = None,
        status: Status = None,
    ) -> WebhookDeliveryList:
        """Every experiment's webhook deliveries, newest first (`?status=failed`: the ones that gave up)."""
        return delivery_list(await webhooks.deliveries(None, status, before, limit))
