"""Features end to end (in-memory twin): ask by feature, priority order, exclusivity, fall-through, the default.

The seeds' integration asks "which model for this request?" with task type and language and
expects the default when no experiment runs; before features, a decision needed the experiment key.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.service.api import decide_all, experiment_body, reward, started

NMT_HI = {"task_type": "nmt", "language": "hi"}
ASR_HI = {"task_type": "asr", "language": "hi"}
NMT_DE = {"task_type": "nmt", "language": "de"}


def put_feature(client: Any, key: str, default: Any, status: int = 201, **body: Any) -> dict[str, Any]:
    response = client.put(f"/v1/features/{key}", json={"default_payload": default, **body})
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result


def by_feature(client: Any, feature: str, units: list[str], attributes: dict[str, Any]) -> list[dict[str, Any]]:
    return decide_all(client, [{"feature": feature, "unit": u, "attributes": attributes} for u in units])


def two_nmt_experiments(client: Any) -> None:
    """Feature `nmt`: `hi-half` (Hindi, half the units, priority 0), then `catch-all` (every NMT request)."""
    put_feature(client, "nmt", {"model": "nmt-base"})
    started(client, "hi-half", feature="nmt", priority=0, exposure=0.5, targeting=NMT_HI)
    started(client, "catch-all", feature="nmt", priority=1, targeting={"task_type": "nmt"})


def test_a_decision_by_feature_serves_the_matching_experiment_and_the_default_otherwise(client) -> None:
    """The defect: an app had to know the experiment key, and an unknown key was a 404 with nothing to serve."""
    put_feature(client, "model", {"model": "base"}, description="Which model serves a request")
    started(client, "nmt-hi", feature="model", targeting=NMT_HI)
    put_feature(client, "asr", {"model": "asr-base"})
    client.post("/v1/experiments", json=experiment_body("asr-draft", feature="asr"))  # attached, never started

    served = client.post("/v1/decisions", json={"feature": "model", "unit": "u1", "attributes": NMT_HI}).json()
    assert served["experiment"] == "nmt-hi" and served["in_experiment"] is True and served["feature"] == "model"
    assert served["arm"] in ("a", "b") and not served["decision_id"].startswith("out_")
    assert reward(client, served["decision_id"], 1.0).status_code == 200

    for feature, attributes, default in (("model", ASR_HI, {"model": "base"}), ("asr", ASR_HI, {"model": "asr-base"})):
        response = client.post("/v1/decisions", json={"feature": feature, "unit": "u1", "attributes": attributes})
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer | {"decision_id": None} == {
            "decision_id": None,
            "experiment": None,
            "arm": None,
            "payload": default,
            "propensity": 1.0,
            "weights_version": 0,
            "in_experiment": False,
            "feature": feature,
        }
        assert answer["decision_id"].startswith("out_")
        refused = reward(client, answer["decision_id"], 1.0)  # not experiment traffic: nothing to reward
        assert refused.status_code == 422 and refused.json()["field"] == "decision_id"
    counts = client.get("/v1/experiments/nmt-hi").json()["stats"]
    assert sum(arm["exposures"] for arm in counts.values()) == 1  # the default answers were not logged

    unknown = client.post("/v1/decisions", json={"feature": "nope", "unit": "u1"})
    assert unknown.status_code == 404 and unknown.json()["field"] == "feature"


def test_units_outside_the_first_experiment_go_to_the_next_never_to_both(client) -> None:
    two_nmt_experiments(client)
    units = [f"u{i}" for i in range(600)]
    first = by_feature(client, "nmt", units, NMT_HI)
    assert all(d["in_experiment"] and d["feature"] == "nmt" for d in first)
    # Exclusive: the units in `hi-half` are exactly those its exposure admits; all others go to `catch-all`.
    admitted = decide_all(client, [{"experiment": "hi-half", "unit": u, "attributes": NMT_HI} for u in units])
    assert [d["experiment"] for d in first] == ["hi-half" if d["in_experiment"] else "catch-all" for d in admitted]
    share = np.mean([d["experiment"] == "hi-half" for d in first])
    assert abs(share - 0.5) < 4 * np.sqrt(0.25 / len(units)), share
    # Sticky: asking again gives each unit the same experiment and arm.
    again = by_feature(client, "nmt", units, NMT_HI)
    assert [(d["experiment"], d["arm"]) for d in again] == [(d["experiment"], d["arm"]) for d in first]
    # Another language never matches `hi-half`'s targeting.
    assert {d["experiment"] for d in by_feature(client, "nmt", units[:50], NMT_DE)} == {"catch-all"}


def test_equal_priorities_are_ordered_by_key_and_a_lower_number_goes_first(client) -> None:
    put_feature(client, "nmt", None)
    started(client, "b-exp", feature="nmt", priority=5)
    started(client, "a-exp", feature="nmt", priority=5)
    started(client, "z-exp", feature="nmt", priority=7)
    shown = client.get("/v1/features/nmt").json()["experiments"]
    assert [(e["key"], e["priority"]) for e in shown] == [("a-exp", 5), ("b-exp", 5), ("z-exp", 7)]
    assert {d["experiment"] for d in by_feature(client, "nmt", [f"u{i}" for i in range(30)], {})} == {"a-exp"}
    assert client.patch("/v1/experiments/z-exp", json={"priority": -1}).status_code == 200
    assert {d["experiment"] for d in by_feature(client, "nmt", [f"v{i}" for i in range(30)], {})} == {"z-exp"}


def test_a_paused_experiment_falls_through_and_a_completed_one_serves_its_winner(client) -> None:
    two_nmt_experiments(client)
    units = [f"u{i}" for i in range(40)]
    assert client.post("/v1/experiments/hi-half/pause").status_code == 200
    assert {d["experiment"] for d in by_feature(client, "nmt", units, NMT_HI)} == {"catch-all"}

    assert client.post("/v1/experiments/hi-half/complete", json={"winner": "b"}).status_code == 200
    shipped = by_feature(client, "nmt", units, NMT_HI)  # every targeted unit gets the winner, outside the experiment
    assert {(d["experiment"], d["arm"], d["in_experiment"], d["propensity"]) for d in shipped} == {
        ("hi-half", "b", False, 1.0)
    }
    assert all(d["decision_id"].startswith("out_") and d["payload"] == {"model": "v2"} for d in shipped)
    assert {d["experiment"] for d in by_feature(client, "nmt", units, NMT_DE)} == {"catch-all"}

    assert client.post("/v1/experiments/catch-all/complete").status_code == 200  # no winner: the rule is off
    fallen = by_feature(client, "nmt", units, NMT_DE)
    assert all(d["experiment"] is None and d["payload"] == {"model": "nmt-base"} for d in fallen)
    assert not any(d["in_experiment"] for d in fallen)

    # A completed experiment can be detached from its feature (its winner then serves nobody by feature).
    detached = client.patch("/v1/experiments/hi-half", json={"feature": None})
    assert detached.status_code == 200, detached.text
    assert all(d["experiment"] is None for d in by_feature(client, "nmt", units, NMT_HI))
    assert client.patch("/v1/experiments/hi-half", json={"exposure": 0.5}).status_code == 409  # the rest stays final


def test_features_are_created_replaced_listed_read_and_deleted(client, clock) -> None:
    created = put_feature(client, "nmt", {"model": "v1"}, description="NMT model")
    clock.advance(60)
    replaced = put_feature(client, "nmt", {"model": "v2"}, status=200)
    assert replaced["created_at"] == created["created_at"] and replaced["updated_at"] > created["updated_at"]
    assert replaced["default_payload"] == {"model": "v2"} and replaced["description"] == ""
    put_feature(client, "asr", [1, 2])
    listed = client.get("/v1/features").json()["features"]
    assert [(f["key"], f["default_payload"]) for f in listed] == [("asr", [1, 2]), ("nmt", {"model": "v2"})]
    assert all("experiments" not in f for f in listed)

    client.post("/v1/experiments", json=experiment_body("draft-one", feature="nmt", priority=3))
    started(client, "live", feature="nmt", exposure=0.25, targeting={"language": ["hi", "mr"]})
    started(client, "resting", feature="nmt", priority=1)
    client.post("/v1/experiments/resting/pause")
    shown = client.get("/v1/features/nmt").json()
    assert [(e["key"], e["status"], e["priority"]) for e in shown["experiments"]] == [
        ("live", "active", 0),
        ("resting", "paused", 1),
        ("draft-one", "draft", 3),
    ]
    assert shown["experiments"][0] | {"name": None} == {
        "key": "live",
        "name": None,
        "status": "active",
        "priority": 0,
        "exposure": 0.25,
        "targeting": {"language": ["hi", "mr"]},
        "namespace": None,
        "winner": None,
    }

    refused = client.delete("/v1/features/nmt")
    assert refused.status_code == 409
    assert "'live' (active)" in refused.json()["detail"] and "'resting' (paused)" in refused.json()["detail"]
    assert client.get("/v1/features/nmt").status_code == 200  # refused: nothing deleted
    client.post("/v1/experiments/live/complete")
    assert client.patch("/v1/experiments/resting", json={"feature": None}).status_code == 200  # detached
    deleted = client.delete("/v1/features/nmt")
    assert deleted.status_code == 200 and deleted.json()["key"] == "nmt"
    assert client.get("/v1/features/nmt").json()["field"] == "key"
    assert client.delete("/v1/features/nmt").status_code == 404
    gone = client.post("/v1/decisions", json={"feature": "nmt", "unit": "u1"})
    assert gone.status_code == 404 and gone.json()["field"] == "feature"
    # The draft still names it: it cannot start until the feature exists again.
    blocked = client.post("/v1/experiments/draft-one/start")
    assert blocked.status_code == 409 and blocked.json()["field"] == "feature"
    again = put_feature(client, "nmt", "fresh")  # created anew
    assert again["created_at"] > created["created_at"]
    assert client.post("/v1/experiments/draft-one/start").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("POST", "/v1/experiments", experiment_body("new", feature="nope"), id="create"),
        pytest.param("PATCH", "/v1/experiments/exp", {"feature": "nope"}, id="patch"),
    ],
)
def test_an_experiment_can_only_serve_a_feature_that_exists(client, method, path, body) -> None:
    started(client)
    response = client.request(method, path, json=body)
    assert response.status_code == 422 and response.json()["field"] == "feature", response.text
    assert "PUT /v1/features/nope" in response.json()["detail"]
    put_feature(client, "nope", None)
    assert client.request(method, path, json=body).status_code < 300
