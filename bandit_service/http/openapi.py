"""The OpenAPI contract at /schema/openapi.json: what the service really accepts and answers.

Litestar lays out the paths, parameters and success codes from the handlers. This module makes
the rest of the document true, once, when it is first served:

- request and response bodies are described by msgspec's JSON Schema of the very types the
  bodies are decoded into and encoded from (`additionalProperties: false`, lengths, bounds,
  patterns), not by a second description that could drift;
- every operation lists the error statuses it can answer, derived in one function
  (`error_statuses`) from its role, method and inputs, each as `application/problem+json`;
  503 and 429 carry `Retry-After`, 401 carries `WWW-Authenticate`. A handler's `opt` says what
  cannot be read from its signature: `role` ("public": no key, so no 401, 403 or 429) and
  `database` (False: it touches no database, so no 503);
- operations that need a key carry the bearer security scheme;
- every request body has an example (`REQUEST_EXAMPLES`, checked by decoding it in the tests);
- figures of the report are nullable: msgspec writes NaN and infinity as null;
- `targeting` is described by the grammar's recursive schema (`core.targeting_schema`);
- a handler that may answer `str` beside a JSON value (the report's `?format=text`) documents
  `text/plain` for it.

There is no documentation UI: Litestar's pages load their scripts from a CDN, so `/schema`
serves the JSON document too, and any OpenAPI viewer can open it.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, Router
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.routes import HTTPRoute

from bandit_service.core import commands
from bandit_service.core.definitions import DecisionLogIn
from bandit_service.core.reporting import values as report_values
from bandit_service.core.targeting_schema import TARGETING, targeting_schemas
from bandit_service.http.problems import PROBLEM_MEDIA_TYPE, RETRY_AFTER_S
from bandit_service.http.schemas import Problem

__all__ = [
    "REQUEST_EXAMPLES",
    "SCHEMA_PATH",
    "OperationFacts",
    "apply_contract",
    "error_statuses",
    "facts_of",
    "openapi_config",
    "openapi_document",
]

SCHEMA_PATH = "/schema"
SECURITY_SCHEME = "bearer"
REF = "#/components/schemas/{name}"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# What each error status means here; the problem's `detail` and `field` say the particulars.
STATUS_MEANINGS: dict[int, str] = {
    400: "Malformed JSON, or no body where one is required.",
    401: "No API key, or one the service does not know (`Authorization: Bearer <key>`).",
    403: "The key's role is too small for this operation.",
    404: "No such experiment (or decision, feature, or key).",
    409: "The change conflicts with the current state (a transition not allowed now, a duplicate, a concurrent write).",
    413: "The body is larger than the service accepts.",
    415: "The body is not `application/json`.",
    422: "A field or parameter is invalid; `field` names it.",
    429: "Too many requests for this key; retry after `Retry-After` seconds.",
    503: "The database is busy or unavailable, or the service is starting or stopping; retry after `Retry-After` s.",
}

RETRY_AFTER = {
    "description": "Seconds to wait before retrying.",
    "required": True,
    "schema": {"type": "integer", "minimum": 0, "examples": [int(RETRY_AFTER_S)]},
}
RESPONSE_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "How to authenticate: a bearer API key.",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: {"Retry-After": RETRY_AFTER},
    503: {"Retry-After": RETRY_AFTER},
}

_ARMS = [{"name": "control"}, {"name": "treatment"}]
REQUEST_EXAMPLES: dict[Any, Any] = {
    commands.ExperimentIn: {
        "key": "checkout-button",
        "name": "Checkout button colour",
        "arms": [{"name": "control", "payload": {"colour": "grey"}}, {"name": "green", "payload": {"colour": "green"}}],
        "control": "control",
        "policy": {"kind": "thompson", "min_weight": 0.05},
        "reweight_every_s": 3600,
    },
    commands.ExperimentPatch: {"description": "Tried from 1 March", "exposure": 0.5},
    commands.CompleteIn: {"winner": "green", "plan": [{"share": 0.5, "hold_s": 3600}, {"share": 1.0}]},
    commands.WeightsIn: {"weights": {"control": 0.5, "green": 0.5}},
    commands.DecisionIn: {"experiment": "checkout-button", "unit": "user-42", "attributes": {"country": "NL"}},
    commands.FeatureIn: {"description": "Which NMT model serves a request", "default_payload": {"model": "nmt-v1"}},
    commands.RewardIn: {"decision_id": "d-0f3a9c", "reward": 1.0, "metrics": {"revenue": 12.5}},
    list[commands.RewardIn]: [
        {"decision_id": "d-0f3a9c", "reward": 1.0},
        {"decision_id": "d-7b21e4", "reward": 0.0, "idempotency_key": "retry-1"},
    ],
    commands.ExposureIn: {"exposure": 0.25},
    DecisionLogIn: {
        "decisions": [
            {
                "decision_id": "sdk-5f0c2a9e41d3",
                "experiment": "checkout-button",
                "unit": "user-42",
                "arm": "green",
                "propensity": 0.5,
                "weights_version": 3,
                "attributes": {"country": "NL"},
            }
        ]
    },
    commands.KeyIn: {"name": "checkout-service", "role": "decide"},
    commands.RampIn: {
        "steps": [{"exposure": 0.1, "hold_s": 86400}, {"exposure": 0.5, "hold_s": 86400}, {"exposure": 1.0}]
    },
}
"""One example body per request type, shown in the document (a test decodes each into its type)."""


@dataclass(frozen=True)
class OperationFacts:
    """What the contract needs to know about one operation, read from its handler."""

    method: str
    path: str
    role: str
    touches_database: bool
    body: Any  # the type the body decodes into; None without a body
    body_schema: Any  # the same with its `Annotated` constraints, which the document shows
    body_required: bool
    returns: Any  # the handler's return annotation, with Litestar's `Response[...]` unwrapped
    media_type: str


def error_statuses(facts: OperationFacts, operation: Mapping[str, Any]) -> tuple[int, ...]:
    """The error statuses an operation can answer, from its role, method and inputs (its OpenAPI entry).

    - the database behind it: 503 (busy, unavailable, or the service starting or stopping);
    - a key needed (any role but "public"): 401, 403, and 429 (per-key rate limits);
    - a body: 400 (malformed, missing), 413 (too large), 415 (not JSON), 422 (invalid field);
    - query parameters: 422;
    - a path parameter (an experiment, a key) or a body that names a stored thing: 404;
    - a write: 409 (an illegal transition, a duplicate, a concurrent change).
    """
    statuses: set[int] = set()
    parameters = operation.get("parameters", ())
    if facts.touches_database:
        statuses.add(503)
    if facts.role != "public":
        statuses |= {401, 403, 429}
    if facts.body is not None:
        statuses |= {400, 413, 415, 422}
    if any(p.get("in") == "query" for p in parameters):
        statuses.add(422)
    names_stored = facts.body in (commands.DecisionIn, commands.RewardIn)  # an experiment, a decision
    if any(p.get("in") == "path" for p in parameters) or names_stored:
        statuses.add(404)
    if facts.method in WRITE_METHODS and facts.role != "public":
        statuses.add(409)
    return tuple(sorted(statuses))


def _unwrap_response(annotation: Any) -> Any:
    # `Response[T]` documents T; a bare `Response` documents anything.
    if annotation is Response:
        return Any
    if typing.get_origin(annotation) is Response:
        return typing.get_args(annotation)[0]
    return annotation


def _facts(handler: HTTPRouteHandler, method: str, path: str) -> OperationFacts:
    # The same reading of the handler's annotations as `strict_body` decodes with; names a handler
    # imports only for type checking resolve in Litestar's signature namespace, as for Litestar.
    namespace = handler.resolve_signature_namespace()
    hints = typing.get_type_hints(handler.fn, localns=namespace)
    parameter = inspect.signature(handler.fn).parameters.get("data")
    body = hints.get("data") if parameter is not None else None
    # With `Annotated` kept: msgspec shows a body's own bounds (a batch's length) and skips Litestar's marks.
    body_schema = typing.get_type_hints(handler.fn, localns=namespace, include_extras=True).get("data")
    return OperationFacts(
        method=method,
        path=path,
        role=str(handler.opt.get("role", "admin")),  # undeclared: the safe reading
        touches_database=bool(handler.opt.get("database", True)),
        body=body,
        body_schema=body_schema if body is not None else None,
        body_required=parameter is not None and parameter.default is inspect.Parameter.empty,
        returns=_unwrap_response(hints.get("return", Any)),
        media_type=str(getattr(handler.media_type, "value", handler.media_type)),  # an enum or a string
    )


def facts_of(app: Litestar) -> list[OperationFacts]:
    """The facts of every documented operation of an app."""
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if not handler.resolve_include_in_schema():
                continue
            for method in sorted(handler.http_methods):
                if method in ("HEAD", "OPTIONS"):
                    continue
                found.append(_facts(handler, method, route.path_format or "/"))
    return found


def _members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _is_text(annotation: Any) -> bool:
    return annotation is str


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _nullable_numbers(schema: dict[str, Any]) -> None:
    # msgspec encodes NaN and infinity as null: a figure that cannot be computed is null.
    for node in _walk(schema):
        if node.get("type") == "number":
            node["type"] = ["number", "null"]


def _exact_integer_bounds(node: Any) -> None:
    # Litestar writes the bounds of integer parameters as floats: 2**62 became 4.611686018427388e18,
    # a decimal above the bound, which clients then send and the service refuses.
    for item in _walk(node):
        if item.get("type") == "integer":
            for name in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "default"):
                value = item.get(name)
                if isinstance(value, float) and value.is_integer():
                    item[name] = int(value)


class _Schemas:
    """Collects the types an operation set uses and builds their schemas in one msgspec pass."""

    def __init__(self) -> None:
        self.types: list[Any] = [Problem]

    def add(self, annotation: Any) -> int:
        self.types.append(annotation)
        return len(self.types) - 1

    def build(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        schemas, components = msgspec.json.schema_components(self.types, ref_template=REF)
        report_names = {name for name in report_values.__all__ if name in components}
        for name in report_names:
            _nullable_numbers(components[name])
        return list(schemas), components


def _document_targeting(components: dict[str, Any]) -> None:
    # msgspec sees a `targeting` field as a plain object: the grammar's own schema says what it takes.
    for schema in list(components.values()):
        properties = schema.get("properties", {})
        if "targeting" in properties:
            default = {k: v for k, v in properties["targeting"].items() if k == "default"}
            properties["targeting"] = {"$ref": REF.format(name=TARGETING)} | default
    components.update(targeting_schemas(REF))


def _json_schema(built: list[dict[str, Any]], indexes: Sequence[int]) -> dict[str, Any]:
    if len(indexes) == 1:
        return built[indexes[0]]
    return {"anyOf": [built[i] for i in indexes]}


def _problem_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": f"{HTTPStatus(status).phrase}: {STATUS_MEANINGS[status]}",
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": REF.format(name="Problem")}}},
    }
    if status in RESPONSE_HEADERS:
        response["headers"] = RESPONSE_HEADERS[status]
    return response


def _referenced(node: Any) -> set[str]:
    prefix = REF.format(name="")
    return {
        ref[len(prefix) :]
        for item in _walk(node)
        if isinstance(ref := item.get("$ref"), str) and ref.startswith(prefix)
    }


def apply_contract(document: dict[str, Any], facts: Sequence[OperationFacts]) -> dict[str, Any]:
    """A copy of Litestar's document with true bodies, error responses, security and examples."""
    document = msgspec.json.decode(msgspec.json.encode(document))  # a deep copy, plain JSON values
    paths: dict[str, Any] = document.get("paths", {})
    schemas = _Schemas()
    plans = []
    for fact in facts:
        operation = paths.get(fact.path, {}).get(fact.method.lower())
        if operation is None:
            continue
        body = schemas.add(fact.body_schema) if fact.body is not None else None
        json_members, text = [], False
        # No media type on the handler: its `Response` sets one per answer, JSON unless it is a `str`.
        if fact.media_type in ("", "application/json") or fact.media_type.endswith("+json"):
            for member in _members(fact.returns):
                if _is_text(member):
                    text = True
                else:
                    json_members.append(schemas.add(member))
        plans.append((fact, operation, body, json_members, text))
    built, components = schemas.build()
    _document_targeting(components)

    for fact, operation, body, json_members, text in plans:
        if body is not None:
            media: dict[str, Any] = {"schema": built[body]}
            examples = [REQUEST_EXAMPLES[m] for m in _members(fact.body) if m in REQUEST_EXAMPLES]
            if examples:  # an optional body (`X | None`) shows the example of X
                media["example"] = examples[0]
            operation["requestBody"] = {"required": fact.body_required, "content": {"application/json": media}}
        responses: dict[str, Any] = operation.setdefault("responses", {})
        for code, response in list(responses.items()):
            if code[0] in "45":
                del responses[code]  # Litestar's own 400 shape: the service never answers it
            elif not code.startswith("2"):
                continue  # a redirect or 304 the handler declares: no body
            elif json_members or text:
                content: dict[str, Any] = {}
                if json_members:
                    content["application/json"] = {"schema": _json_schema(built, json_members)}
                if text:
                    content["text/plain"] = {"schema": {"type": "string"}}
                response["content"] = content
        for status in error_statuses(fact, operation):
            responses[str(status)] = _problem_response(status)
        if fact.role != "public":
            operation["security"] = [{SECURITY_SCHEME: []}]
        else:
            operation.pop("security", None)

    _exact_integer_bounds(paths)
    # Components: msgspec's, plus any of Litestar's still referenced (say, by a parameter).
    old = document.setdefault("components", {}).get("schemas", {})
    merged = dict(components)
    pending = _referenced(paths) - set(merged)
    while pending:
        name = pending.pop()
        if name in old:
            merged[name] = old[name]
            pending |= _referenced(old[name]) - set(merged)
    document["components"]["schemas"] = dict(sorted(merged.items()))
    return msgspec.json.decode(msgspec.json.encode(document))  # plain JSON values (msgspec writes tuple defaults)


def openapi_document(app: Litestar) -> dict[str, Any]:
    """The document an app serves at /schema/openapi.json."""
    return apply_contract(app.openapi_schema.to_schema(), facts_of(app))


class _ContractJson(JsonRenderPlugin):
    """Serves `openapi_document`, built on the first request and kept."""

    def __init__(self) -> None:
        super().__init__(path=["/", "/openapi.json"])
        self._rendered: bytes | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """The contract as JSON."""
        if self._rendered is None:
            self._rendered = self.render_json(request, apply_contract(openapi_schema, facts_of(request.app)))
        return self._rendered


def openapi_config(title: str, version: str) -> OpenAPIConfig:
    """The app's OpenAPI configuration: the JSON document at /schema and /schema/openapi.json, no UI."""
    return OpenAPIConfig(
        title=title,
        version=version,
        description=(
            "Adaptive multi-armed bandit service. Errors are RFC 9457 problem details "
            f"(`{PROBLEM_MEDIA_TYPE}`). Send `Authorization: Bearer <API key>`."
        ),
        components=Components(
            security_schemes={
                SECURITY_SCHEME: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="An API key; its role (decide, read, operate, admin) bounds what it may do.",
                )
            }
        ),
        render_plugins=[_ContractJson()],
        # The docs router is public (no key needed) and not itself documented.
        openapi_router=Router(SCHEMA_PATH, route_handlers=[], include_in_schema=False, opt={"role": "public"}),
    )
