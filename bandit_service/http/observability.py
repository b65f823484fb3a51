"""What the `metrics` and `log_format` settings add to the app: telemetry, middleware, hooks, a route.

`metrics` on: the Prometheus metrics (`PrometheusMetrics`) as the services' telemetry, the request
histogram's hook, and GET /metrics. `log_format: json`: the request line and X-Request-Id hook, and
Litestar's logging configuration with a JSON formatter.
Either one needs the start mark (`RequestStartMiddleware`), which goes first in the app's
middleware so that it runs before authentication and rate limits. With metrics off and text logs
the app gets none of it: no middleware, no hook, and telemetry that ignores every call.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from litestar.di import Provide
from litestar.logging.config import LoggingConfig
from litestar.middleware import DefineMiddleware
from litestar.types import BeforeMessageSendHookHandler, ControllerRouterHandler

from bandit_service.core.telemetry import NoTelemetry, Telemetry
from bandit_service.http.json_logs import app_logging_config, log_request
from bandit_service.http.metrics import PrometheusMetrics, multiprocess_dir
from bandit_service.http.request_metrics import RequestMetrics
from bandit_service.http.request_start import RequestStartMiddleware
from bandit_service.http.routes.metrics import metrics as metrics_route
from bandit_service.settings import Settings

__all__ = ["Observability", "observability"]


class Observability(msgspec.Struct, frozen=True, kw_only=True):
    """The pieces `create_app` adds to the app (empty lists when both features are off)."""

    telemetry: Telemetry
    middleware: list[DefineMiddleware]
    before_send: list[BeforeMessageSendHookHandler]
    routes: list[ControllerRouterHandler]
    dependencies: dict[str, Provide]
    logging_config: LoggingConfig


def observability(settings: Settings) -> Observability:
    """The telemetry, middleware, hooks, routes and dependencies these settings ask for."""
    telemetry: Telemetry = NoTelemetry()
    before_send: list[BeforeMessageSendHookHandler] = []
    routes: list[ControllerRouterHandler] = []
    dependencies: dict[str, Provide] = {}
    if settings.metrics:
        prometheus = PrometheusMetrics(multiprocess_dir())
        telemetry = prometheus
        before_send.append(RequestMetrics(prometheus).before_send)
        routes.append(metrics_route)
        dependencies["prometheus"] = Provide(_provider(prometheus), sync_to_thread=False)
    logging_config = LoggingConfig()  # Litestar's default: text
    if settings.log_format == "json":
        before_send.append(log_request)
        logging_config = app_logging_config()
    middleware = [DefineMiddleware(RequestStartMiddleware)] if before_send else []
    return Observability(
        telemetry=telemetry,
        middleware=middleware,
        before_send=before_send,
        routes=routes,
        dependencies=dependencies,
        logging_config=logging_config,
    )


def _provider(prometheus: PrometheusMetrics) -> Callable[[], PrometheusMetrics]:
    def provide() -> PrometheusMetrics:
        return prometheus

    return provide
