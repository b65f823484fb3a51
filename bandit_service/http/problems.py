"""HTTP errors as RFC 9457 problem details, mapped once, and the strict JSON body guard.

Every refusal leaves as `application/problem+json` with type, title, status, detail and the
offending `field`. Domain errors map through `PROBLEM_TYPES`; Litestar's own errors (unknown
route, wrong method, body too large, bad query parameter) and database trouble map here too.

Bodies are decoded by `body_guard`, not by Litestar, because Litestar converts request data
leniently (the string "0.5" would pass as a number) and decodes recursively before any depth
check. The guard checks the media type (415), the nesting depth on the raw bytes (422, never a
RecursionError), then decodes strictly into the handler's `data` type.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import (
    ClientException,
    HTTPException,
    InternalServerException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.types import Empty
from litestar.utils.scope.state import ScopeState
from sqlalchemy.exc import IntegrityError, OperationalError

from bandit_service.core.errors import (
    AlreadyExistsError,
    ConflictError,
    DomainError,
    IllegalTransitionError,
    InvalidFieldError,
    MalformedBodyError,
    NotFoundError,
    RewardWindowClosedError,
    UnavailableError,
    UnsupportedMediaTypeError,
)
from bandit_service.core.json_limits import deep_path, exceeds_depth
from bandit_service.http.schemas import Problem

__all__ = ["PROBLEM_MEDIA_TYPE", "PROBLEM_TYPES", "body_guard", "exception_handlers", "problem_for"]

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:bandit-service:problem:"
FREE_FORM_FIELDS = frozenset({"payload", "metrics", "attributes", "targeting"})

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
    # Litestar validates path and query parameters; bodies never reach it (see body_guard).
    errors = exc.extra if isinstance(exc.extra, list) else []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
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


def _on_operational(request: Request[Any, Any, Any], exc: OperationalError) -> Response[Problem]:
    log.warning("database error: %s", exc)
    return _response(problem_for(UnavailableError("the database is busy or unavailable; retry")))


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
        Exception: _on_unexpected,
    }


def _field_of(message: str) -> str:
    # msgspec reports where decoding failed only inside its message ("... - at `$.arms[1].name`"),
    # and the name of an unknown or missing field only in the first part of it.
    where = re.search(r" - at `\$(.*)`$", message)
    # "[...]" stands for a value in a mapping; msgspec does not say which key, so name the mapping.
    path = where.group(1).split("[...]")[0] if where else ""
    name = re.search(r"(?:unknown|missing required) field `([^`]*)`", message)
    if name:
        path = f"{path}.{name.group(1)}"
    return path.lstrip(".") or "body"


def _raw_headers(request: Request[Any, Any, Any]) -> tuple[str, bytes | None]:
    # The media type and the raw content-length, read from the ASGI scope: building Litestar's
    # header mapping cost more than the rest of this guard on the decision path.
    media_type, length = "", None
    for name, value in request.scope["headers"]:
        if name == b"content-type":
            media_type = value.decode("latin-1").split(";", 1)[0].strip().lower()
        elif name == b"content-length":
            length = value
    return media_type, length


async def _read_body(request: Request[Any, Any, Any], length: bytes | None) -> bytes:
    """The request body, with the checks of Litestar's `Request.body` (413, disconnect), read directly.

    Litestar's reader (an async generator behind a header mapping) was a measurable share of
    the event loop's time per decision (the README's HTTP load benchmark). The body is stored
    where Litestar looks for it, so a later `request.body()` returns it without reading again.
    """
    state = ScopeState.from_scope(request.scope)
    if state.body is not Empty:
        return state.body
    limit = request.route_handler.resolve_request_max_body_size() or math.inf
    if length is not None:
        try:
            announced = int(length)
        except ValueError:
            raise ClientException(f"Invalid content-length: {length.decode('latin-1')!r}") from None
        if announced > limit:
            raise RequestEntityTooLarge
    chunks: list[bytes] = []
    total = 0
    while True:
        event = await request.receive()
        if event["type"] == "http.request":
            chunk = event.get("body", b"")
            if chunk:
                total += len(chunk)
                if total > limit:
                    raise RequestEntityTooLarge
                chunks.append(chunk)
            if not event.get("more_body", False):
                break
        elif event["type"] == "http.disconnect":
            raise InternalServerException("client disconnected prematurely")
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    state.body = body
    return body


def body_guard(max_depth: int) -> Callable[[Request[Any, Any, Any]], Awaitable[None]]:
    """A before-request hook that decodes JSON bodies strictly (or refuses them as problems)."""

    async def guard(request: Request[Any, Any, Any]) -> None:
        data = request.route_handler.parsed_fn_signature.parameters.get("data")
        if data is None:
            return
        media_type, length = _raw_headers(request)
        body = await _read_body(request, length)  # 413 beyond the app's request_max_body_size
        if not body:
            if data.has_default:
                return
            raise MalformedBodyError("a JSON body is required", field="body")
        if media_type != MediaType.JSON and not media_type.endswith("+json"):
            raise UnsupportedMediaTypeError(
                f"send the body as application/json, not {media_type or 'without a content type'}", field="body"
            )
        if exceeds_depth(body, max_depth):
            raise InvalidFieldError(
                f"JSON nested deeper than {max_depth} levels", field=deep_path(body, max_depth, FREE_FORM_FIELDS)
            )
        try:
            value = msgspec.json.decode(body, type=data.annotation)
        except msgspec.ValidationError as exc:
            raise InvalidFieldError(str(exc), field=_field_of(str(exc))) from exc
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec reports bad UTF-8 as the latter
            raise MalformedBodyError(f"malformed JSON: {exc}", field="body") from exc
        # Hand Litestar the decoded value so it does not decode (leniently) again; msgspec's
        # conversion passes an instance of the target type through unchanged.
        ScopeState.from_scope(request.scope).json = value

    return guard
