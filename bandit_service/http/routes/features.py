"""/v1/features: what apps ask for, with a default payload; experiments attach to one by their `feature`."""

from __future__ import annotations

from litestar import Controller, Response, delete, get, put
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody

from bandit_service.core.commands import FeatureIn
from bandit_service.http.schemas import FeatureList, FeatureOut
from bandit_service.http.views import feature_out
from bandit_service.services.features import FeatureService

__all__ = ["FeatureController"]


class FeatureController(Controller):
    """Operator endpoints for features; apps decide by feature with POST /v1/decisions."""

    path = "/v1/features"
    tags = ["features"]  # noqa: RUF012 (Litestar reads a class attribute)

    @put(
        "/{key:str}",
        status_code=200,
        opt={"role": "operate"},
        responses={201: ResponseSpec(data_container=FeatureOut, description="Created")},
    )
    async def put_feature(
        self, key: FromPath[str], data: JSONBody[FeatureIn], features: NamedDependency[FeatureService]
    ) -> Response[FeatureOut]:
        """Create (201) or replace (200) a feature: what it is for, and the payload apps get by default."""
        saved = await features.put(key, data)
        return Response(feature_out(saved.feature), status_code=201 if saved.created else 200)

    @get("/", opt={"role": "read"})
    async def list_features(self, features: NamedDependency[FeatureService]) -> FeatureList:
        """Every feature, by key."""
        return FeatureList(features=[feature_out(f) for f in await features.list()])

    @get("/{key:str}", opt={"role": "read"})
    async def read(self, key: FromPath[str], features: NamedDependency[FeatureService]) -> FeatureOut:
        """A feature with its experiments in evaluation order (priority, then key), every status."""
        found = await features.get(key)
        return feature_out(found.feature, found.experiments)

    @delete("/{key:str}", status_code=200, opt={"role": "operate"})
    async def remove(self, key: FromPath[str], features: NamedDependency[FeatureService]) -> FeatureOut:
        """Delete a feature no active or paused experiment serves (409 names those that do)."""
        return feature_out(await features.delete(key))
