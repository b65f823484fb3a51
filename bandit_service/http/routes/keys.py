"""/v1/keys: API keys, for admins."""

from __future__ import annotations

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from bandit_service.core.commands import KeyIn
from bandit_service.http.schemas import KeyList, KeyOut, NewKeyOut
from bandit_service.http.views import key_out, new_key_out
from bandit_service.services.keys import KeyService

__all__ = ["KeyController"]


class KeyController(Controller):
    """Create, list and revoke API keys (role admin)."""

    path = "/v1/keys"
    tags = ["keys"]  # noqa: RUF012 (Litestar reads a class attribute)

    @post("/", status_code=201, opt={"role": "admin"})
    async def create(self, data: JSONBody[KeyIn], keys: NamedDependency[KeyService]) -> NewKeyOut:
        """Make a key with a name and a role; the answer shows the key itself, this once only."""
        return new_key_out(await keys.create(data))

    @get("/", opt={"role": "admin"})
    async def list_keys(self, keys: NamedDependency[KeyService]) -> KeyList:
        """Every key: name, role, creation and last use (never the key)."""
        return KeyList(keys=[key_out(k) for k in await keys.list()])

    @delete("/{name:str}", status_code=200, opt={"role": "admin"})
    async def revoke(self, name: FromPath[str], keys: NamedDependency[KeyService]) -> KeyOut:
        """Revoke a key: refused from now on (by other replicas within the staleness bound)."""
        return key_out(await keys.revoke(name))
