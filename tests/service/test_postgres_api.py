"""The service on a real PostgreSQL: it starts (tables created), serves the tour, and refuses what
PostgreSQL cannot store with a 4xx instead of a 500."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from bandit_service.app import create_app
from bandit_service.clock import FakeClock
from bandit_service.ids import sequential_ids
from bandit_service.settings import Settings
from tests.service.api import decide, experiment_body, reward


@pytest.fixture
def pg_client(postgres_schema_url: str) -> Iterator[TestClient[Litestar]]:
    """The app on its own PostgreSQL schema, with the lifespan running (tables created at start)."""
    settings = Settings(database_url=postgres_schema_url, scheduler_enabled=False, cache_ttl_s=0.0)
    app = create_app(settings, clock=FakeClock(), ids=sequential_ids("pg"))
    with TestClient(app) as client:
        yield client


def test_the_service_starts_and_serves_the_tour_on_postgresql(pg_client: TestClient[Litestar]) -> None:
    assert pg_client.get("/healthz").json()["database"] == "ok"
    assert pg_client.post("/v1/experiments", json=experiment_body()).status_code == 201
    assert pg_client.post("/v1/experiments/exp/start").status_code == 200
    decisions = [decide(pg_client, unit=f"user-{i}") for i in range(20)]
    assert decide(pg_client, unit="user-3")["arm"] == decisions[3]["arm"]  # sticky
    for d in decisions:
        assert reward(pg_client, d["decision_id"], 1, metrics={"latency_ms": 12.5}).status_code == 200
    weights = pg_client.post("/v1/experiments/exp/reweight").json()
    assert weights["version"] == 2 and abs(sum(weights["weights"].values()) - 1.0) < 1e-9
    stats = pg_client.get("/v1/experiments/exp").json()["stats"]
    assert sum(s["decisions"] for s in stats.values()) == 21
    assert sum(s["rewarded"] for s in stats.values()) == 20
    assert sum(s["units"] for s in stats.values()) == 20
    report = pg_client.get("/v1/experiments/exp/report")
    assert report.status_code == 200


@pytest.mark.parametrize(
    ("path", "field"),
    [
        pytest.param("/v1/experiments/%00", "key", id="nul-in-experiment-key"),
        pytest.param("/v1/experiments/a%00b/weights", "key", id="nul-in-weights-path"),
        pytest.param("/v1/experiments/a%00b/events", "key", id="nul-in-events-path"),
    ],
)
def test_a_nul_byte_in_a_path_is_a_404_not_a_500(pg_client: TestClient[Litestar], path: str, field: str) -> None:
    response = pg_client.get(path)
    assert response.status_code == 404
    assert response.json()["field"] == field
