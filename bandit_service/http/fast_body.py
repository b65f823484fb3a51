"""Tuning: read the request body and its media type straight from the ASGI scope and `receive`.

`FastBodyRequest` is `StrictJsonRequest` with the same behaviour (the 413 of Litestar's
`Request.body()` before and while reading, 400 for a bad content-length, 500 on a client that
disconnects mid-body) and a cheaper way to it: Litestar's reader builds a header mapping, parses
the content type and runs an async generator per request, which the HTTP load benchmark showed
as a measurable share of the decision path. Only public attributes are used (`scope`, `receive`,
`route_handler.resolve_request_max_body_size()`). `Settings.fast_body` selects it; the body
reader tests run every case on both classes.
"""

from __future__ import annotations

import math

from litestar.connection.base import empty_receive, empty_send
from litestar.exceptions import ClientException, InternalServerException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.types import Receive, Scope, Send

from bandit_service.http.strict_body import StrictJsonRequest

__all__ = ["FastBodyRequest"]


class FastBodyRequest(StrictJsonRequest):
    """`StrictJsonRequest` reading its body and media type without Litestar's header mapping."""

    __slots__ = ("_raw_body",)

    def __init__(self, scope: Scope, receive: Receive = empty_receive, send: Send = empty_send) -> None:
        super().__init__(scope, receive, send)
        self._raw_body: bytes | None = None  # not read yet

    def body_media_type(self) -> str:
        """The media type of the body, lower case, without parameters ("" when none was sent)."""
        for name, value in self.scope["headers"]:
            if name == b"content-type":
                return value.decode("latin-1").split(";", 1)[0].strip().lower()
        return ""

    def _announced_length(self) -> int | None:
        for name, value in self.scope["headers"]:
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    raise ClientException(f"Invalid content-length: {value.decode('latin-1')!r}") from None
        return None

    async def body(self) -> bytes:
        """The request body, read once from `receive` (413 beyond the route's body size limit)."""
        if self._raw_body is not None:
            return self._raw_body
        limit = self.route_handler.resolve_request_max_body_size() or math.inf
        announced = self._announced_length()
        if announced is not None and announced > limit:
            raise RequestEntityTooLarge
        chunks: list[bytes] = []
        total = 0
        while True:
            event = await self.receive()
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
        self._raw_body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return self._raw_body
