"""The OpenAPI document is a true contract: schemathesis drives the app in process and checks every answer.

Every operation gets a bounded, derandomized set of generated requests (schema examples, boundary
values, valid and invalid bodies and parameters) with an admin key, against an app on a real
SQLite file that holds a few experiments in different states, so that lifecycle, ramp, weights
and report paths run on real data. All of schemathesis's checks are on: no 5xx, every status,
content type, header and body as documented, invalid input refused, auth not ignored.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from litestar import Litestar
from litestar.testing import TestClient
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from bandit_service.app import create_app
from bandit_service.clock import FakeClock
from bandit_service.http.openapi import facts_of, openapi_document
from bandit_service.http.problems import PROBLEM_MEDIA_TYPE
from bandit_service.ids import sequential_ids
from bandit_service.services.rewards import MAX_BATCH
from bandit_service.storage.memory import MemoryStorage
from tests.service.api import ADMIN_KEY, api_client
from tests.service.conftest import TEST_SETTINGS

EXAMPLES_PER_OPERATION = 5
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
# Seeded experiments, by state; most generated paths are pointed at one of them (see `_aim`).
KEYS = ("draft-exp", "active-exp", "paused-exp", "ramped-exp", "done-exp")


def _arms(n: int) -> list[dict[str, Any]]:
    return [{"name": f"arm-{i}"} for i in range(n)]


def _seed(app: Litestar) -> None:
    with api_client(app) as client:

        def ok(response: Any) -> Any:
            assert response.status_code < 300, response.text
            return response.json()

        for key in KEYS:
            ok(client.post("/v1/experiments", json={"key": key, "name": key, "arms": _arms(3), "control": "arm-0"}))
        for key in KEYS[1:]:
            ok(client.post(f"/v1/experiments/{key}/start"))
            for unit in range(20):
                decision = ok(client.post("/v1/decisions", json={"experiment": key, "unit": f"u{unit}"}))
                if unit % 2 == 0:
                    reward = {
                        "decision_id": decision["decision_id"],
                        "reward": float(unit % 4 == 0),
                        "metrics": {"m": 1.5},
                    }
                    ok(client.post("/v1/rewards", json=reward))
        ok(client.post("/v1/experiments/paused-exp/pause"))
        ok(
            client.put(
                "/v1/experiments/ramped-exp/ramp", json={"steps": [{"exposure": 0.2, "hold_s": 60}, {"exposure": 1}]}
            )
        )
        ok(client.post("/v1/experiments/done-exp/complete", json={"winner": "arm-1"}))


@pytest.fixture(scope="module")
def seeded_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file holding the seeded experiments, written once by an app of its own."""
    folder = tmp_path_factory.mktemp("seeded")
    settings = msgspec.structs.replace(TEST_SETTINGS, database_url=f"sqlite:///{folder / 'bandit.db'}", auth=True)
    _seed(create_app(settings, clock=FakeClock(), ids=sequential_ids("seed")))
    return folder


@pytest.fixture
def contract_app(seeded_database: Path, tmp_path: Path) -> Litestar:
    """The app under test, on a copy of the seeded file: each operation starts from the same data.

    schemathesis starts the app's lifespan on the first request and ends it after each test.
    """
    for file in seeded_database.iterdir():  # the database, and its WAL should one remain
        shutil.copy(file, tmp_path / file.name)
    settings = msgspec.structs.replace(TEST_SETTINGS, database_url=f"sqlite:///{tmp_path / 'bandit.db'}", auth=True)
    return create_app(settings, clock=FakeClock(), ids=sequential_ids("contract"))


# The document does not depend on data: read it from an app that never starts.
DOC_APP = create_app(TEST_SETTINGS, storage=MemoryStorage())
DOCUMENT = openapi_document(DOC_APP)
# A body can be valid by its schema and still break a rule across fields or against stored data,
# which JSON Schema cannot state: unique arm names, a control among the arms, weights summing to 1,
# a plan that needs a winner, a hold on every ramp step but the last, one bound per guardrail, a
# 0/1 reward for a bernoulli experiment. Each is a 422 naming its field, so for the operations that
# take a body, 422 joins the answers schemathesis accepts to schema-valid data (every check stays on).
BODY_OPERATIONS = sorted(
    f"{method.upper()} {path}"
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if isinstance(operation, dict) and "requestBody" in operation
)
# Likewise a range of days whose `from` comes after its `to`: two valid dates, a 422 naming `from`.
WINDOW_OPERATIONS = ["GET /v1/experiments/{key}/report", "GET /v1/experiments/{key}/timeseries"]
CONFIG = SchemathesisConfig.from_dict(
    {
        "operations": [
            {
                "include-name": BODY_OPERATIONS + WINDOW_OPERATIONS,
                "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", 401, 403, 404, 409, 422, 429]}},
            }
        ]
    }
)
schema = schemathesis.openapi.from_dict(copy.deepcopy(DOCUMENT), config=CONFIG)  # it edits what it is given


def _seeded(generated: str) -> str:
    # Seven in eight generated keys become a seeded experiment's (chosen by a hash of the key, so
    # runs repeat); the rest stay as generated, almost surely unknown (404).
    bucket = hashlib.blake2b(generated.encode(), digest_size=1).digest()[0] % 8
    return KEYS[bucket % len(KEYS)] if bucket else generated


def _aim(case: Any) -> None:
    # Generated experiment keys almost never exist: point valid cases at the seeded experiments, in
    # the path or in a decision's body, so that lifecycle, ramp, report and decision paths run.
    if case.meta is None or case.meta.generation.mode != GenerationMode.POSITIVE:
        return
    if case.path_parameters and isinstance(case.path_parameters.get("key"), str):
        case.path_parameters["key"] = _seeded(case.path_parameters["key"])
    body = case.body
    if case.operation.path == "/v1/decisions" and isinstance(body, dict) and isinstance(body.get("experiment"), str):
        body["experiment"] = _seeded(body["experiment"])


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_every_answer_keeps_the_documented_contract(case: Any, contract_app: Litestar) -> None:
    case.operation.schema.app = contract_app  # the transport of every call, the checks' probes included
    _aim(case)
    case.call_and_validate(app=contract_app, headers=AUTH)


def _operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method.upper(), path, operation


def _component(name: str) -> dict[str, Any]:
    found: dict[str, Any] = DOCUMENT["components"]["schemas"][name]
    return found


def test_every_error_is_documented_as_a_problem_detail_with_its_headers() -> None:
    for method, path, operation in _operations():
        errors = {int(code): r for code, r in operation["responses"].items() if code[0] in "45"}  # 304: no body
        for status, response in errors.items():
            assert response["content"] == {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
            headers = response.get("headers", {})
            if status in (429, 503):
                assert headers["Retry-After"]["required"] is True, (method, path, status)
            if status == 401:
                assert headers["WWW-Authenticate"]["required"] is True, (method, path)


def test_statuses_follow_the_role_the_body_and_the_path() -> None:
    ops = {(method, path): {int(code) for code in op["responses"]} for method, path, op in _operations()}
    assert ops[("GET", "/livez")] == {200}  # public and touching no database: nothing can go wrong
    assert ops[("GET", "/healthz")] == {200, 503}
    assert ops[("GET", "/v1/experiments")] == {200, 401, 403, 422, 429, 503}
    assert ops[("POST", "/v1/experiments")] == {201, 400, 401, 403, 409, 413, 415, 422, 429, 503}
    assert ops[("POST", "/v1/experiments/{key}/pause")] == {200, 401, 403, 404, 409, 429, 503}
    assert ops[("POST", "/v1/decisions")] == {200, 400, 401, 403, 404, 409, 413, 415, 422, 429, 503}
    assert ops[("GET", "/v1/experiments/{key}/report")] == {200, 401, 403, 404, 422, 429, 503}
    assert ops[("GET", "/v1/experiments/{key}/timeseries")] == {200, 401, 403, 404, 422, 429, 503}


def test_operations_that_need_a_key_carry_the_bearer_scheme() -> None:
    assert DOCUMENT["components"]["securitySchemes"]["bearer"] | {"description": ""} == {
        "type": "http",
        "scheme": "bearer",
        "description": "",
    }
    for method, path, operation in _operations():
        public = path in ("/livez", "/readyz", "/healthz")
        assert ("security" in operation) is not public, (method, path)
        assert ({"401", "403", "429"} <= set(operation["responses"])) is not public, (method, path)
        if not public:
            assert operation["security"] == [{"bearer": []}]


def test_request_bodies_carry_the_bounds_the_service_enforces() -> None:
    experiment = _component("ExperimentIn")
    assert experiment["additionalProperties"] is False
    assert experiment["properties"]["arms"] | {"items": None} == {
        "type": "array",
        "items": None,
        "minItems": 2,
        "maxItems": 50,
    }
    assert _component("ArmIn")["properties"]["weight"]["anyOf"][0] == {"type": "number", "minimum": 0.0, "maximum": 1.0}
    assert _component("ThompsonSampling")["properties"]["draws"]["maximum"] == 1_000_000
    assert _component("WeightsIn")["properties"]["weights"]["maxProperties"] == 50
    assert _component("DecisionIn")["properties"]["attributes"]["maxProperties"] == 64
    batch = DOCUMENT["paths"]["/v1/rewards/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert (batch["minItems"], batch["maxItems"]) == (1, MAX_BATCH)  # what the reward service checks
    events = DOCUMENT["paths"]["/v1/experiments/{key}/events"]["get"]["parameters"]
    after = next(p for p in events if p["name"] == "after")
    # An integer, not 4.611686018427388e18: that decimal is above the bound and was sent, and refused.
    assert after["schema"]["maximum"] == 2**62 and isinstance(after["schema"]["maximum"], int)


def test_every_request_body_has_an_example_of_its_type() -> None:
    bodies = [fact for fact in facts_of(DOC_APP) if fact.body is not None]
    assert len(bodies) >= 10
    for fact in bodies:
        operation = DOCUMENT["paths"][fact.path][fact.method.lower()]
        example = operation["requestBody"]["content"]["application/json"]["example"]
        msgspec.convert(example, fact.body_schema)  # raises if the example has rotted


def test_report_figures_are_nullable_and_the_text_report_is_documented() -> None:
    figures = _component("ArmFigures")["properties"]
    assert figures["mean"]["type"] == ["number", "null"]  # NaN (no observations yet) is written as null
    assert figures["units"]["type"] == "integer"
    ok = DOCUMENT["paths"]["/v1/experiments/{key}/report"]["get"]["responses"]["200"]["content"]
    assert ok["text/plain"] == {"schema": {"type": "string"}}
    assert ok["application/json"]["schema"]["anyOf"] == [
        {"$ref": "#/components/schemas/Report"},
        {"$ref": "#/components/schemas/SegmentReport"},
    ]
    # Request-side numbers stay numbers: the criteria are shared by the report and ExperimentIn.
    assert '["number", "null"]' not in json.dumps(_component("Guardrail"))


def test_the_document_is_served_at_schema_and_no_page_names_an_external_host(client: TestClient[Litestar]) -> None:
    served = client.get("/schema/openapi.json")
    assert served.status_code == 200 and served.headers["content-type"].startswith("application/vnd.oai.openapi+json")
    assert served.json() == DOCUMENT
    root = client.get("/schema")
    assert root.status_code == 200 and root.json() == DOCUMENT  # no UI: its scripts would come from a CDN
    for path in ("/schema", "/schema/openapi.json", "/schema/redoc", "/schema/swagger", "/schema/elements"):
        # A host name after a scheme (a regex like the webhook URL's `^https?://` names no host).
        assert re.search(r"https?://[A-Za-z0-9.-]+", client.get(path).text) is None, path
    anonymous = TestClient(client.app)  # the contract is public, like the health checks
    assert anonymous.get("/schema/openapi.json").status_code == 200
