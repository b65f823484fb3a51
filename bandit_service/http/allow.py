"""OPTIONS answers that list every method of the path in `Allow`.

Litestar 2 answers OPTIONS with the methods of the first handler registered on a path only
(litestar-org/litestar#4169, fixed in Litestar 3): OPTIONS /v1/experiments said `OPTIONS, POST`
although GET is there too. This middleware puts the path's full method list into the `Allow`
header of Litestar's own OPTIONS answer; remove it with the upgrade to Litestar 3.
"""

from __future__ import annotations

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AllowHeaderMiddleware"]


class AllowHeaderMiddleware(ASGIMiddleware):
    """Rewrites the `Allow` header of OPTIONS answers to name every method of the matched route."""

    scopes = (ScopeType.HTTP,)

    def __init__(self) -> None:
        """The route table is read from the app on the first OPTIONS request."""
        self._allow: dict[str, bytes] | None = None

    def _allow_of(self, scope: Scope) -> bytes | None:
        if self._allow is None:
            self._allow = {
                route.path_format: ", ".join(sorted(route.methods)).encode()
                for route in scope["litestar_app"].routes
                if isinstance(route, HTTPRoute)
            }
        return self._allow.get(scope.get("path_template", ""))

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Pass the request on; on OPTIONS, correct the answer's `Allow` header."""
        if scope.get("method") != "OPTIONS":
            await next_app(scope, receive, send)
            return
        allow = self._allow_of(scope)

        async def send_with_allow(message: Message) -> None:
            if allow is not None and message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"allow"]
                message = {**message, "headers": [*headers, (b"allow", allow)]}
            await send(message)

        await next_app(scope, receive, send_with_allow)
