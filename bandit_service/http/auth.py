"""Authentication and authorisation of every request, from the role its handler declares.

Each handler says the smallest role that may call it in `opt={"role": ...}` ("public" for the
health checks). The middleware finds the caller by the bearer key, answers 401 for a missing or
unknown key and 403 for a too-small role before the handler runs, so neither answer depends on
whether the experiment in the path exists. The caller is left in `scope["user"]` for the
handler (the audit log's actor) and the rate limits. With authentication off every caller is
`ANONYMOUS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from bandit_service.core.errors import ForbiddenError, UnauthenticatedError
from bandit_service.core.roles import ANONYMOUS, ROLES, Principal, Role, allows
from bandit_service.services.keys import KeyService

__all__ = ["PUBLIC", "AuthMiddleware", "caller", "required_role"]

PUBLIC = "public"
ROLE_OPT = "role"
OPENAPI_PREFIX = "/schema"
"""Litestar's OpenAPI routes carry no `opt`; the API description is public, like a health check."""


def required_role(scope: Scope) -> Role | None:
    """The smallest role the scope's handler allows (None: public); a handler without one needs admin."""
    declared = scope["route_handler"].opt.get(ROLE_OPT)
    if declared == PUBLIC:
        return None
    if declared is None:
        return None if scope["path"].startswith(OPENAPI_PREFIX) else "admin"  # fail closed
    if declared not in ROLES:
        raise ValueError(f"handler {scope['route_handler']!r} declares an unknown role {declared!r}")
    role: Role = declared
    return role


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


class AuthMiddleware(ASGIMiddleware):
    """Puts the caller in `scope["user"]`, or refuses the request (401, 403) before its handler runs."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, keys: Callable[[], KeyService] | None) -> None:
        """`keys` gives the running key service; None turns authentication off."""
        self._keys = keys

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Authenticate, authorise, then call the handler."""
        needed = required_role(scope)
        if self._keys is None:
            scope["user"] = ANONYMOUS
        elif needed is not None:
            token = _bearer(scope)
            if token is None:
                raise UnauthenticatedError("an API key is required: send the header Authorization: Bearer <key>")
            principal = await self._keys().authenticate(token)
            if principal is None:
                raise UnauthenticatedError("the API key is not valid (unknown or revoked)")
            if not allows(principal.role, needed):
                raise ForbiddenError(
                    f"the key {principal.name!r} has role {principal.role!r}; this endpoint needs {needed!r} or above"
                )
            scope["user"] = principal
        await next_app(scope, receive, send)


def caller(request: Request[Any, Any, Any]) -> Principal:
    """Dependency: the request's caller, as the middleware found it."""
    principal: Principal = request.scope["user"]
    return principal
