"""GET /v1/definitions: what SDKs evaluate locally, versioned by a content hash, with ETag and 304.

The document must let an SDK place units exactly as the service does (same salt, weights,
targeting, namespace and exposure through the same `core.placement`), must follow changes within
the cache bound, and must cost no database read while nothing changes.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from bandit_service.core.definitions import Definitions, ExperimentDefinition
from bandit_service.core.placement import place_unit
from bandit_service.http.openapi import openapi_document
from bandit_service.storage.memory import MemoryStorage
from tests.service.api import api_client, decide_all, experiment_body, started
from tests.service.conftest import TEST_SETTINGS, app_factory

NMT_HI = {"task_type": "nmt", "language": "hi"}


def definitions(client: Any) -> Definitions:
    response = client.get("/v1/definitions")
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == f'"{response.json()["version"]}"'
    assert response.headers["cache-control"] == "no-cache"
    return msgspec.json.decode(response.content, type=Definitions)  # as the SDK decodes it


def by_key(document: Definitions) -> dict[str, ExperimentDefinition]:
    return {e.key: e for e in document.experiments}


def test_the_document_holds_every_experiment_but_drafts_and_every_feature_in_evaluation_order(client):
    assert client.put("/v1/features/nmt", json={"default_payload": {"model": "base"}}).status_code == 201
    assert client.put("/v1/features/asr", json={"default_payload": None}).status_code == 201
    client.post("/v1/experiments", json=experiment_body("drafted", feature="nmt"))
    started(client, "live", feature="nmt", priority=5, exposure=0.5, targeting=NMT_HI)
    started(client, "resting", feature="nmt", priority=1)
    assert client.post("/v1/experiments/resting/pause").status_code == 200
    started(client, "done", namespace={"name": "checkout", "start": 0.25, "end": 0.75})
    assert client.post("/v1/experiments/done/complete", json={"winner": "b"}).status_code == 200

    document = definitions(client)
    assert [e.key for e in document.experiments] == ["done", "resting", "live"]  # priority, then key
    assert [(f.key, f.default_payload, f.experiments) for f in document.features] == [
        ("asr", None, []),
        ("nmt", {"model": "base"}, ["resting", "live"]),
    ]
    shown = by_key(document)
    assert [(e.status, e.winner) for e in document.experiments] == [
        ("completed", "b"),
        ("paused", None),
        ("active", None),
    ]
    for key, definition in shown.items():
        experiment = client.get(f"/v1/experiments/{key}").json()
        assert [(a.name, a.payload) for a in definition.arms] == [(a["name"], a["payload"]) for a in experiment["arms"]]
        assert definition.weights == [experiment["weights"][a.name] for a in definition.arms]
        expected = ("control", "weights_version", "exposure", "targeting", "sticky", "trial", "feature", "priority")
        assert {name: getattr(definition, name) for name in expected} == {
            name: experiment.get(name) for name in expected
        }
    namespace = shown["done"].namespace
    assert namespace is not None and (namespace.name, namespace.start, namespace.end) == ("checkout", 0.25, 0.75)


def test_units_placed_from_the_document_get_what_the_service_gives_them(client):
    started(
        client,
        "exp",
        arms=[{"name": "a", "weight": 0.2}, {"name": "b", "weight": 0.3}, {"name": "c", "weight": 0.5}],
        policy={"kind": "fixed"},
        exposure=0.6,
        targeting={"language": "hi"},
        namespace={"name": "checkout", "start": 0.1, "end": 0.9},
    )
    exp = by_key(definitions(client))["exp"]
    assert exp.weights == pytest.approx([0.2, 0.3, 0.5])
    requests = [
        {"experiment": "exp", "unit": f"user-{i}", "attributes": {"language": "hi" if i % 5 else "de"}}
        for i in range(600)
    ]
    served = decide_all(client, requests)
    names = [a.name for a in exp.arms]
    placed = [
        place_unit(
            status=exp.status,
            salt=exp.salt,
            targeting=exp.targeting,
            namespace=exp.namespace,
            exposure=exp.exposure,
            arms=names,
            weights=exp.weights,
            key=r["unit"],
            attributes=r["attributes"],
        )
        for r in requests
    ]
    assert [None if i is None else names[i] for i in placed] == [
        d["arm"] if d["in_experiment"] else None for d in served
    ]
    assert 100 < sum(i is not None for i in placed) < 500  # every admission rule was exercised both ways


@pytest.mark.parametrize(
    ("header", "status"),
    [
        pytest.param('"{v}"', 304, id="the-etag"),
        pytest.param('W/"{v}"', 304, id="weak"),
        pytest.param('"older", "{v}"', 304, id="in-a-list"),
        pytest.param("*", 304, id="any"),
        pytest.param('"older"', 200, id="another-version"),
        pytest.param("{v}", 200, id="unquoted"),
    ],
)
def test_a_poll_with_the_current_etag_answers_304_without_a_body(client, header, status):
    started(client)
    version = definitions(client).version
    response = client.get("/v1/definitions", headers={"If-None-Match": header.format(v=version)})
    assert response.status_code == status
    assert response.headers["etag"] == f'"{version}"'
    assert (response.content == b"") is (status == 304)


def test_the_version_moves_with_what_sdks_read_and_only_with_it(client):
    started(client, policy={"kind": "fixed"})
    first = definitions(client).version
    assert definitions(client).version == first
    assert client.patch("/v1/experiments/exp", json={"description": "not read by SDKs"}).status_code == 200
    assert definitions(client).version == first  # a content hash: an unread field changes nothing
    seen = {first}
    changes = [
        (lambda: client.put("/v1/experiments/exp/weights", json={"weights": {"a": 0.2, "b": 0.8}}), 200),
        (lambda: client.put("/v1/experiments/exp/exposure", json={"exposure": 0.5}), 200),
        (lambda: client.put("/v1/features/nmt", json={"default_payload": 1}), 201),
        (lambda: client.patch("/v1/experiments/exp", json={"feature": "nmt"}), 200),
        (lambda: client.post("/v1/experiments/exp/pause"), 200),
    ]
    for change, status in changes:
        assert change().status_code == status
        version = definitions(client).version
        assert version not in seen
        seen.add(version)
    assert client.post("/v1/experiments/exp/pause").status_code == 409  # refused: nothing changed
    assert definitions(client).version == version


class CountingStorage(MemoryStorage):
    """The twin, counting the reads a definitions request could make."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    async def experiments(self, *args: Any) -> Any:
        self.reads.append("experiments")
        return await super().experiments(*args)

    async def experiment(self, key: str) -> Any:
        self.reads.append(f"experiment {key}")
        return await super().experiment(key)

    async def features(self) -> Any:
        self.reads.append("features")
        return await super().features()

    async def feature(self, key: str) -> Any:
        self.reads.append(f"feature {key}")
        return await super().feature(key)


def test_polls_read_nothing_while_nothing_changes_and_then_only_what_changed(clock):
    storage = CountingStorage()
    with api_client(app_factory(TEST_SETTINGS, clock)(storage=storage)) as client:
        for key in ("one", "two", "three"):
            started(client, key)
        version = definitions(client).version
        storage.reads.clear()
        for _ in range(5):
            assert client.get("/v1/definitions", headers={"If-None-Match": f'"{version}"'}).status_code == 304
        assert storage.reads == []
        assert client.put("/v1/experiments/two/exposure", json={"exposure": 0.3}).status_code == 200
        storage.reads.clear()
        assert by_key(definitions(client))["two"].exposure == 0.3
        assert storage.reads == ["experiment two"]


@pytest.mark.parametrize(("cache_ttl_s", "poll_s"), [(0.0, 1.0), (1.0, 1.0), (5.0, 5.0)])
def test_the_suggested_poll_interval_is_the_cache_bound(clock, cache_ttl_s, poll_s):
    settings = msgspec.structs.replace(TEST_SETTINGS, cache_ttl_s=cache_ttl_s)
    with api_client(app_factory(settings, clock)(storage=MemoryStorage())) as client:
        assert definitions(client).poll_interval_s == poll_s


def test_a_change_reaches_the_document_within_the_cache_bound(clock):
    """Another process's change (written past this one's cache) shows once the bound has passed."""
    settings = msgspec.structs.replace(TEST_SETTINGS, cache_ttl_s=5.0)
    storage = MemoryStorage()
    with api_client(app_factory(settings, clock)(storage=storage)) as client:
        started(client)
        before = definitions(client)
        with api_client(app_factory(TEST_SETTINGS, clock)(storage=storage)) as other:
            assert other.put("/v1/experiments/exp/exposure", json={"exposure": 0.4}).status_code == 200
            clock.advance(4.9)
            assert definitions(client).version == before.version
            clock.advance(0.2)
            assert by_key(definitions(client))["exp"].exposure == 0.4


def test_replicas_on_one_database_answer_the_same_version(make_app):
    with api_client(make_app()) as first, api_client(make_app()) as second:
        assert first.put("/v1/features/nmt", json={"default_payload": {"model": "base", "params": [1, 2]}}).is_success
        started(first, "exp", targeting={"language": {"$in": ["hi", "mr"]}, "tier": "gold"}, feature="nmt")
        assert definitions(first) == definitions(second)
        assert first.post("/v1/experiments/exp/pause").status_code == 200
        assert definitions(second) == definitions(first)
        assert by_key(definitions(second))["exp"].status == "paused"


def test_the_contract_documents_the_304_and_the_etag(client):
    operation = openapi_document(client.app)["paths"]["/v1/definitions"]["get"]
    assert {int(code) for code in operation["responses"]} == {200, 304, 401, 403, 429, 503}
    assert operation["responses"]["200"]["headers"]["ETag"]["required"] is True
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Definitions"
    }
    assert [p["name"] for p in operation["parameters"]] == ["If-None-Match"]
