"""GET /v1/definitions: what SDKs evaluate locally, with an ETag so an unchanged poll answers 304."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import MediaType, Response, get
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import HeaderParameter

from bandit_service.core.definitions import Definitions
from bandit_service.services.definitions import DefinitionsService

__all__ = ["etag_matches", "read_definitions"]

IfNoneMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-None-Match",
        description='The ETag of the definitions the SDK has (`"<version>"`): 304 while they are current.',
    ),
]


def etag_matches(header: str, version: str) -> bool:
    """Whether an If-None-Match header names this version (weak comparison, as RFC 9110 section 13.1.2 says)."""
    tag = f'"{version}"'
    return any(t == "*" or t.removeprefix("W/") == tag for t in (part.strip() for part in header.split(",")))


@get(
    "/v1/definitions",
    tags=["decisions"],
    opt={"role": "decide"},
    responses={304: ResponseSpec(data_container=None, description="Not modified: the SDK's definitions are current")},
    response_headers=[
        ResponseHeader(
            name="ETag", description='`"<version>"`: send it as If-None-Match', documentation_only=True, required=True
        )
    ],
)
async def read_definitions(
    definitions: NamedDependency[DefinitionsService], if_none_match: IfNoneMatch = None
) -> Response[Definitions]:
    """Every experiment that is not a draft and every feature, for local evaluation; poll every `poll_interval_s`."""
    current = await definitions.published()
    version = current.definitions.version
    # no-cache: a cache may keep it, but must ask again (with the ETag) before using it.
    headers = {"ETag": f'"{version}"', "Cache-Control": "no-cache"}
    # Both answers are typed Any: a 304 has no body, and the 200's is the document encoded once per version.
    answer: Response[Any]
    if if_none_match is not None and etag_matches(if_none_match, version):
        answer = Response(None, status_code=304, headers=headers)
    else:
        answer = Response(current.body, media_type=MediaType.JSON, headers=headers)
    return answer
