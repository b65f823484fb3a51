"""JSON-lines logs (`log_format: json`): one JSON object per line, and one line per request with its request id.

`JsonFormatter` turns every log record into a line (`time`, `level`, `logger`, `message`, and the
record's `fields`); `logging_config` is the `logging.config.dictConfig` that `bandit-service serve`
hands uvicorn and `app_logging_config` the app's, so uvicorn's, APScheduler's and the service's own
lines all come out as JSON.

`log_request` replaces uvicorn's access log: after each request, one line on the
`bandit_service.requests` logger with the method, path, route template, status, duration, the
request id and, on a decision, the decision id. The request id is the client's `X-Request-Id`
when that is a short token, otherwise a new random one; either way it is echoed in the response's
`X-Request-Id` header, so a client can quote it. The decision id is read from the decision's
response body (a small JSON object), so the decision path itself does nothing for the log.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any, cast

import msgspec
from litestar.datastructures import MutableScopeHeaders
from litestar.logging.config import LoggingConfig
from litestar.types import HTTPScope, Message, Scope

from bandit_service.http.request_start import STARTED

__all__ = ["REQUEST_ID_HEADER", "JsonFormatter", "app_logging_config", "log_request", "logging_config"]

REQUEST_ID_HEADER = "x-request-id"
_HEADER = REQUEST_ID_HEADER.encode()
_CLIENT_ID = re.compile(rb"[A-Za-z0-9._\-]{1,64}")
DECISIONS_ROUTE = "/v1/decisions"
_LINE = "bandit_service.request_line"

requests_log = logging.getLogger("bandit_service.requests")


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object: time (UTC, ISO 8601), level, logger, message, and its `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        """The record's JSON line (without the newline)."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(line).decode()


def app_logging_config() -> LoggingConfig:
    """Litestar's logging configuration with its `standard` formatter made JSON.

    Litestar configures the root logger when the app is created, after uvicorn configured its own:
    its handlers must format JSON too, or every line that reaches the root would be text again.
    """
    return LoggingConfig(formatters={"standard": {"()": f"{__name__}.JsonFormatter"}})


def logging_config(level: str = "info") -> dict[str, Any]:
    """dictConfig for uvicorn (`log_config`): every logger's lines go to stderr as JSON."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        # uvicorn's loggers propagate to the root's one handler; `serve` turns uvicorn's access log off.
        "loggers": {"uvicorn": {"level": level.upper()}, requests_log.name: {"level": "INFO"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
    }


class _DecisionId(msgspec.Struct):
    decision_id: str | None = None


_decision_decoder = msgspec.json.Decoder(_DecisionId)


class _Line(msgspec.Struct):
    """What the request line needs between the response's start and its last body message."""

    request_id: str
    status: int
    decision_id: str | None = None


async def log_request(message: Message, scope: Scope) -> None:
    """Litestar `before_send` hook: add X-Request-Id to the response's start; log the request after its body."""
    state: dict[str, Any] = scope["state"]
    if message["type"] == "http.response.start":
        if STARTED not in state:
            return  # matched no route: not logged (see request_start)
        start = state[_LINE] = _Line(request_id=_request_id(scope), status=message["status"])
        MutableScopeHeaders.from_message(message).add(REQUEST_ID_HEADER, start.request_id)
        return
    line: _Line | None = state.get(_LINE)
    if line is None or message["type"] != "http.response.body":
        return
    if line.status == 200 and scope["path_template"] == DECISIONS_ROUTE:
        line.decision_id = _decision_id(message.get("body", b""))
    if message.get("more_body", False):
        return
    if requests_log.isEnabledFor(logging.INFO):
        fields: dict[str, Any] = {
            "request_id": line.request_id,
            "method": cast("HTTPScope", scope)["method"],
            "path": scope["path"],
            "route": scope["path_template"],
            "status": line.status,
            "duration_ms": round((time.perf_counter() - state[STARTED]) * 1000, 3),
        }
        if line.decision_id is not None:
            fields["decision_id"] = line.decision_id
        requests_log.info("request", extra={"fields": fields})


def _request_id(scope: Scope) -> str:
    """The client's X-Request-Id if it is a short token (letters, digits, `._-`), else a new random id."""
    for name, value in scope["headers"]:
        if name == _HEADER and _CLIENT_ID.fullmatch(value):
            return value.decode()
    return secrets.token_hex(8)


def _decision_id(body: bytes) -> str | None:
    try:
        return _decision_decoder.decode(body).decision_id
    except msgspec.DecodeError:  # a body in several chunks, or not the decision object: no id to log
        return None
