"""HTTP errors as RFC 9457 problem details, mapped once.

Every refusal leaves as `application/problem+json` with type, title, status, detail and the
offending `field`. Domain errors map through `PROBLEM_TYPES`; Litestar's own errors (unknown
route, wrong method, body too large, missing body, bad query parameter) and database trouble map
here too. Bodies are decoded strictly by `strict_body.StrictJsonRequest`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from bandit_service.core.errors import (
    AlreadyExistsError,
    ConflictError,
    DomainError,
    ForbiddenError,
    IllegalTransitionError,
    InvalidFieldError,
    MalformedBodyError,
    NotFoundError,
    RewardWindowClosedError,
    UnauthenticatedError,
    UnavailableError,
    UnsupportedMediaTypeError,
)
from bandit_service.http.schemas import Problem
from bandit_service.storage.database import describe_unavailable

__all__ = ["PROBLEM_MEDIA_TYPE", "PROBLEM_TYPES", "exception_handlers", "problem_for"]

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:bandit-service:problem:"
RETRY_AFTER_S = "1"
"""Seconds a client should wait after a 503 (the database busy, or the service starting or stopping)."""

PROBLEM_TYPES: dict[type[DomainError], tuple[int, str, str]] = {
    NotFoundError: (404, "not-found", "Not found"),
    InvalidFieldError: (422, "invalid-field", "Invalid field"),
    RewardWindowClosedError: (422, "reward-window-closed", "Reward window closed"),
    MalformedBodyError: (400, "malformed-body", "Malformed body"),
    UnsupportedMediaTypeError: (415, "unsupported-media-type", "Unsupported media type"),
    ConflictError: (409, "conflict", "Conflict"),
    AlreadyExistsError: (409, "already-exists", "Already exists"),
    IllegalTransitionError: (409, "illegal-transition", "Illegal transition"),
    UnavailableError: (503, "unavailable", "Service unavailable"),
    UnauthenticatedError: (401, "unauthorized", "Unauthorized"),
    ForbiddenError: (403, "forbidden", "Forbidden"),
}
# A type keeps one title whichever handler answers it (RFC 9457, section 3.1.3): the table's,
# also when Litestar or the database raise the same type (an unknown route is "not-found" too).
TITLES: dict[str, str] = {slug: title for _, slug, title in PROBLEM_TYPES.values()}


def problem_for(exc: DomainError) -> Problem:
    """The problem detail of a domain error (the most specific entry of the table)."""
    for cls in type(exc).__mro__:
        if cls in PROBLEM_TYPES:
            status, slug, title = PROBLEM_TYPES[cls]  # type: ignore[index]
            break
    else:
        raise TypeError(f"{type(exc).__name__} has no entry in PROBLEM_TYPES")
    current = exc.current_status if isinstance(exc, IllegalTransitionError) else None
    return Problem(
        type=TYPE_PREFIX + slug,
        title=title,
        status=status,
        detail=exc.detail,
        field=exc.field,
        current_status=current,
    )


def _response(problem: Problem, headers: dict[str, str] | None = None) -> Response[Problem]:
    if problem.status == 503:  # every 503 says when to try again (RFC 9110, section 10.2.3)
        headers = {"Retry-After": RETRY_AFTER_S, **(headers or {})}
    elif problem.status == 401:  # says how to authenticate (RFC 9110, section 11.6.1)
        headers = {"WWW-Authenticate": 'Bearer realm="bandit-service"', **(headers or {})}
    return Response(content=problem, status_code=problem.status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _http_problem(status: int, detail: str, field: str | None = None) -> Problem:
    phrase = HTTPStatus(status).phrase
    slug = phrase.lower().replace(" ", "-")
    return Problem(
        type=TYPE_PREFIX + slug,
        title=TITLES.get(slug, phrase),
        status=status,
        detail=detail,
        field=field,
    )


def _on_domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Problem]:
    return _response(problem_for(exc))


def _on_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
    # Litestar validates path and query parameters; a body reaches it decoded (strict_body), so the
    # one body error it reports is an empty body where the handler's `data` has no default.
    errors = exc.extra if isinstance(exc.extra, list) else []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    if any(isinstance(error, dict) and error.get("key") == "data" for error in errors):
        return _response(problem_for(MalformedBodyError("a JSON body is required", field="body")))
    field = str(first.get("key") or "query")
    detail = f"{field}: {first.get('message', exc.detail)}"
    return _response(_http_problem(422, detail, field))


def _on_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    status = exc.status_code
    if status >= 500:
        log.error("%s %s failed: %r", request.method, request.url.path, exc, exc_info=exc)
    field = "body" if status == 413 else None
    detail = exc.detail
    if status == 413:
        detail = f"the request body exceeds {request.app.request_max_body_size} bytes"
    elif status == 404:
        detail = f"no route {request.method} {request.url.path}"
    return _response(_http_problem(status, detail, field), headers=exc.headers)


def _on_integrity(request: Request[Any, Any, Any], exc: IntegrityError) -> Response[Problem]:
    log.warning("integrity error: %s", exc)
    return _response(_http_problem(409, "the change conflicts with a concurrent change; retry"))


def _on_operational(request: Request[Any, Any, Any], exc: DBAPIError) -> Response[Problem]:
    log.warning("database error: %s", exc)
    # The driver's text stays in the log: it can name the server's host and port or the file's path.
    return _response(problem_for(UnavailableError(f"{describe_unavailable(exc)}; retry")))


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return _response(_http_problem(500, "unexpected error; it has been logged"))


def exception_handlers() -> dict[type[Exception], Callable[..., Response[Problem]]]:
    """The app's exception handlers: everything leaves as a problem detail."""
    return {
        DomainError: _on_domain_error,
        ValidationException: _on_validation,
        HTTPException: _on_http,
        IntegrityError: _on_integrity,
        OperationalError: _on_operational,
        InterfaceError: _on_operational,  # the driver's connection is gone (a server that went away)
        Exception: _on_unexpected,
    }
