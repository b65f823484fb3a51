"""The service on each real database: it starts (tables created), serves the tour, and refuses what
the database cannot store (PostgreSQL: a NUL byte) with a 4xx instead of a 500."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.service.api import decide, experiment_body, reward

pytestmark = pytest.mark.usefixtures("database_url")  # every test on each real database, none on the twin


def test_the_service_starts_and_serves_the_tour(client: TestClient[Litestar]) -> None:
    assert client.get("/healthz").json()["database"] == "ok"
    assert client.post("/v1/experiments", json=experiment_body()).status_code == 201
    assert client.post("/v1/experiments/exp/start").status_code == 200
    decisions = [decide(client, unit=f"user-{i}") for i in range(20)]
    assert decide(client, unit="user-3")["arm"] == decisions[3]["arm"]  # sticky
    for d in decisions:
        assert reward(client, d["decision_id"], 1, metrics={"latency_ms": 12.5}).status_code == 200
    weights = client.post("/v1/experiments/exp/reweight").json()
    assert weights["version"] == 2 and abs(sum(weights["weights"].values()) - 1.0) < 1e-9
    stats = client.get("/v1/experiments/exp").json()["stats"]
    assert sum(s["exposures"] for s in stats.values()) == 21
    assert sum(s["rewarded"] for s in stats.values()) == 20
    assert sum(s["units"] for s in stats.values()) == 20
    report = client.get("/v1/experiments/exp/report")
    assert report.status_code == 200


@pytest.mark.parametrize(
    ("path", "field"),
    [
        pytest.param("/v1/experiments/%00", "key", id="nul-in-experiment-key"),
        pytest.param("/v1/experiments/a%00b/weights", "key", id="nul-in-weights-path"),
        pytest.param("/v1/experiments/a%00b/events", "key", id="nul-in-events-path"),
    ],
)
def test_a_nul_byte_in_a_path_is_a_404_not_a_500(client: TestClient[Litestar], path: str, field: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["field"] == field
