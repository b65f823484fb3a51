"""Strict JSON request bodies: a Litestar `Request` whose `json()` decodes into the handler's `data` type.

Litestar converts request data leniently (the string "0.5" would pass as a number) and decodes
recursively before any depth check. Set as the app's `request_class` (public API), this class
takes over the decoding step: Litestar reads the body through `Request.body()` (413 beyond
`request_max_body_size`) and calls `json()` for every non-empty body of a `data` parameter.
`json()` checks the media type (415), the nesting depth on the raw bytes (422, never a
RecursionError), then decodes strictly into the handler's `data` type (422 naming the field, 400
for malformed JSON). The value goes back through Litestar's own conversion, which passes an
instance of the target type through as it is (msgspec's `convert`). An empty body never reaches
`json()`: Litestar reports the missing `data`, which `problems` answers with 400. Should a later
Litestar stop calling `json()` for `data`, the bad-input tests fail (a string passes as a number).
"""

from __future__ import annotations

import functools
import re
import typing
from collections.abc import Callable
from typing import Any, ClassVar

import msgspec
from litestar import MediaType, Request

from bandit_service.core.errors import InvalidFieldError, MalformedBodyError, UnsupportedMediaTypeError
from bandit_service.core.json_limits import deep_path, exceeds_depth

__all__ = ["FREE_FORM_FIELDS", "StrictJsonRequest", "decode_strict", "strict_json_request"]

FREE_FORM_FIELDS = frozenset({"payload", "default_payload", "metrics", "attributes", "targeting"})
"""Fields that hold free JSON: a too-deep value inside one is named by the field, not its inner path."""


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


def decode_strict(body: bytes, media_type: str, data_type: Any, max_depth: int) -> Any:
    """`body` decoded strictly into `data_type`, or a domain error naming the field (415, 422, 400)."""
    if media_type != MediaType.JSON and not media_type.endswith("+json"):
        raise UnsupportedMediaTypeError(
            f"send the body as application/json, not {media_type or 'without a content type'}", field="body"
        )
    if exceeds_depth(body, max_depth):
        raise InvalidFieldError(
            f"JSON nested deeper than {max_depth} levels", field=deep_path(body, max_depth, FREE_FORM_FIELDS)
        )
    try:
        return msgspec.json.decode(body, type=data_type)
    except msgspec.ValidationError as exc:
        raise InvalidFieldError(str(exc), field=_field_of(str(exc))) from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec reports bad UTF-8 as the latter
        raise MalformedBodyError(f"malformed JSON: {exc}", field="body") from exc


@functools.cache
def _data_type(fn: Callable[..., Any]) -> Any:
    # The handler's own annotation of `data` (the `Annotated` of `JSONBody[...]` stripped), read
    # through the handler's public `fn` and cached per handler function.
    return typing.get_type_hints(fn)["data"]


class StrictJsonRequest(Request[Any, Any, Any]):
    """A request whose `json()` is the strict decode of the body into the handler's `data` type."""

    __slots__ = ()
    max_depth: ClassVar[int] = 32
    """Deepest JSON nesting accepted (`Settings.max_json_depth`; set by `strict_json_request`)."""

    def body_media_type(self) -> str:
        """The media type of the body, lower case, without parameters ("" when none was sent)."""
        return self.content_type[0].lower()

    async def json(self) -> Any:
        """The body decoded strictly into the route handler's `data` type (a domain error otherwise).

        Litestar calls it to fill a handler's `data` parameter; no handler here calls it itself.
        """
        body = await self.body()
        return decode_strict(body, self.body_media_type(), _data_type(self.route_handler.fn), self.max_depth)


def strict_json_request(max_depth: int, base: type[StrictJsonRequest] = StrictJsonRequest) -> type[StrictJsonRequest]:
    """The app's `request_class`: `base` with the depth limit of this app's settings."""
    return type(base.__name__, (base,), {"max_depth": max_depth, "__slots__": ()})
