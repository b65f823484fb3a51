"""POST /v1/decisions/log: decisions SDKs evaluated locally, counted like server decisions, idempotently.

What must hold: a logged decision counts exactly as the same decision made by the service would
(trials, exposures, sticky assignment, rewards by unit); the arm the SDK served is the one counted,
while a unit's stored sticky arm is kept and a disagreement is counted and reported; a retried
batch (an answer lost on the way, or sent to another replica) counts nothing twice; one refused
item never refuses the others.
"""

from __future__ import annotations

import concurrent.futures
import re
from typing import Any

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bandit_service.app import runtime_of
from bandit_service.http.openapi import openapi_document
from bandit_service.storage.memory import MemoryStorage
from tests.service.api import api_client, call, decide, experiment_body, read_db, started
from tests.service.conftest import TEST_SETTINGS, app_factory

WINDOW = 3_600
COUNTED = ("units", "trials", "exposures", "pending", "rewarded", "expired", "excluded", "n", "mean")


def item(decision_id: str, unit: str | None = "u1", arm: str = "a", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "decision_id": decision_id,
        "experiment": "exp",
        "unit": unit,
        "arm": arm,
        "propensity": 0.5,
        "weights_version": 1,
        "attributes": {"country": "nl"},
    }
    return body | overrides


def log(client: Any, *items: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/decisions/log", json={"decisions": list(items)})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def statuses(answer: dict[str, Any]) -> list[tuple[int, bool]]:
    return [(r["status"], r["contradicts"]) for r in answer["results"]]


def stats(client: Any, key: str = "exp") -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = client.get(f"/v1/experiments/{key}").json()["stats"]
    return found


def expire(client: Any, clock: Any) -> None:
    call(client, runtime_of(client.app).services.rewards.expire_pending, clock.time())


def test_a_logged_unit_decision_opens_the_trial_and_stores_the_served_arm(client):
    started(client, policy={"kind": "fixed"}, reward_window_s=WINDOW)
    answer = log(client, item("sdk-1", arm="b"))
    assert answer == {
        "logged": 1,
        "duplicates": 0,
        "failed": 0,
        "results": [{"decision_id": "sdk-1", "status": 201, "contradicts": False, "problem": None}],
    }
    served = decide(client, unit="u1")  # the service now gives the unit the arm the SDK served
    assert (served["arm"], served["decision_id"]) == ("b", "sdk-1")  # inside the trial the SDK's decision opened
    assert log(client, item("sdk-2", arm="b"))["results"][0]["status"] == 201  # an exposure of that trial
    b = stats(client)["b"]
    assert (b["units"], b["trials"], b["exposures"], b["local"], b["contradicted"]) == (1, 1, 3, 2, 0)


@pytest.mark.parametrize("trial", ["unit", "decision"])
def test_a_local_decision_and_its_reward_count_exactly_like_a_server_decision(client, clock, trial):
    """Same units, arms and rewards, once decided by the service and once logged by an SDK."""
    server_and_local_alike(client, clock, trial)


def test_a_local_unit_decision_rewarded_by_unit_counts_like_a_server_one_on_a_database(client, clock, database_url):
    server_and_local_alike(client, clock, "unit")


def server_and_local_alike(client: Any, clock: Any, trial: str) -> None:
    for key in ("srv", "loc"):
        started(client, key, policy={"kind": "fixed"}, reward="continuous", trial=trial, reward_window_s=WINDOW)
    units = [f"user-{i}" for i in range(12)]
    for unit in units:
        served = decide(client, "srv", unit=unit)
        logged = log(client, item(f"sdk-{unit}", unit=unit, arm=served["arm"], experiment="loc"))
        assert statuses(logged) == [(201, False)]
        for _ in range(2):  # the app asks again: exposures of a unit trial, new trials otherwise
            decide(client, "srv", unit=unit)
        for again in ("x", "y"):
            log(client, item(f"sdk-{unit}-{again}", unit=unit, arm=served["arm"], experiment="loc"))
        value = float(len(unit) % 3)
        if unit.endswith(("1", "4", "7")):
            continue  # no reward: expires
        if trial == "unit":  # by experiment and unit, as the SDK sends a local decision's reward
            rewards = [{"experiment": key, "unit": unit, "reward": value} for key in ("srv", "loc")]
        else:
            rewards = [
                {"decision_id": served["decision_id"], "reward": value},
                {"decision_id": f"sdk-{unit}", "reward": value},
            ]
        for body in rewards:
            assert client.post("/v1/rewards", json=body).status_code == 200
    for when in ("pending", "settled"):
        srv, loc = stats(client, "srv"), stats(client, "loc")
        for arm in srv:
            assert {k: loc[arm][k] for k in COUNTED} == {k: srv[arm][k] for k in COUNTED}, (when, arm)
            assert (srv[arm]["local"], loc[arm]["local"]) == (0, loc[arm]["exposures"])
        clock.advance(WINDOW + 1)
        expire(client, clock)
    assert sum(s["trials"] for s in stats(client, "loc").values()) == (12 if trial == "unit" else 36)


def test_the_stored_sticky_arm_wins_and_a_contradiction_is_counted_and_reported(client):
    started(client, policy={"kind": "fixed"})
    sticky = decide(client, unit="u1")["arm"]
    other = "b" if sticky == "a" else "a"
    assert statuses(log(client, item("sdk-1", arm=other))) == [(201, True)]
    assert statuses(log(client, item("sdk-2", arm=sticky))) == [(201, False)]
    assert decide(client, unit="u1")["arm"] == sticky  # the service's sticky store is not overwritten
    counts = stats(client)
    assert (counts[other]["local"], counts[other]["contradicted"]) == (1, 1)
    assert (counts[sticky]["local"], counts[sticky]["contradicted"]) == (1, 0)
    assert statuses(log(client, item("sdk-1", arm=other))) == [(200, True)]  # a retry answers as the first time
    report = client.get("/v1/experiments/exp/report").json()
    operational = {o["arm"]: (o["local"], o["contradicted"]) for o in report["operational"]}
    assert operational == {other: (1, 1), sticky: (1, 0)}
    notes = [n for n in report["notes"] if "evaluated locally" in n]
    assert len(notes) == 1 and notes[0].startswith("1 of 2 decision(s)") and f"({other} 1)" in notes[0]
    text = client.get("/v1/experiments/exp/report", params={"format": "text"}).text
    assert "contradicted" in text and "1 of 2 decision(s) evaluated locally" in text


def test_the_metrics_count_local_and_contradicted_decisions_per_arm(client):
    started(client, policy={"kind": "fixed"})
    sticky = decide(client, unit="u1")["arm"]
    other = "b" if sticky == "a" else "a"
    log(client, item("sdk-1", arm=other), item("sdk-2", unit="u2", arm=other))
    samples = {
        (sample.name, sample.labels["arm"]): sample.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for sample in family.samples
        if sample.labels.get("experiment") == "exp" and "arm" in sample.labels
    }
    assert samples[("bandit_arm_local_decisions_total", other)] == 2
    assert samples[("bandit_arm_contradicted_total", other)] == 1
    assert samples[("bandit_arm_local_decisions_total", sticky)] == 0


def test_a_report_without_local_decisions_has_no_local_columns_or_note(client):
    started(client)
    decide(client, unit="u1")
    report = client.get("/v1/experiments/exp/report").json()
    assert all((o["local"], o["contradicted"]) == (0, 0) for o in report["operational"])
    assert not any("locally" in n for n in report["notes"])
    assert "contradicted" not in client.get("/v1/experiments/exp/report", params={"format": "text"}).text


def test_a_retried_batch_and_a_repeated_id_count_nothing_twice(client):
    started(client)
    batch = [item("sdk-1", unit="u1"), item("sdk-2", unit=None, arm="b"), item("sdk-1", unit="u1")]
    first = log(client, *batch)
    assert (first["logged"], first["duplicates"], statuses(first)) == (2, 1, [(201, False), (201, False), (200, False)])
    counts = stats(client)
    again = log(client, *batch)
    assert (again["logged"], again["duplicates"], again["failed"]) == (0, 3, 0)
    assert stats(client) == counts


def two_more_experiments(client: Any) -> None:
    client.post("/v1/experiments", json=experiment_body("drafted"))
    for key in ("resting", "done"):
        started(client, key)
    assert client.post("/v1/experiments/resting/pause").status_code == 200
    assert client.post("/v1/experiments/done/complete", json={"winner": "b"}).status_code == 200


@pytest.mark.parametrize(
    ("bad", "status", "field", "detail"),
    [
        pytest.param(
            {"experiment": "nope"}, 404, "experiment", "no experiment with key 'nope'", id="unknown-experiment"
        ),
        pytest.param({"arm": "z"}, 422, "arm", r"has no arm 'z' \(its arms: a, b\)", id="unknown-arm"),
        pytest.param({"weights_version": 2}, 422, "weights_version", "versions 1 to 1, not 2", id="newer-weights"),
        pytest.param({"weights_version": 0}, 422, "weights_version", "versions 1 to 1, not 0", id="no-weights-yet"),
        pytest.param(
            {"experiment": "resting"}, 422, "experiment", "is paused: only decisions of an active", id="paused"
        ),
        pytest.param({"experiment": "done"}, 422, "experiment", "is completed", id="completed"),
        pytest.param({"experiment": "drafted"}, 422, "experiment", "is draft", id="draft"),
        pytest.param({"decision_id": "out_abc"}, 422, "decision_id", "starts with 'out_'", id="outside-id"),
    ],
)
def test_a_refused_item_is_named_by_its_field_and_the_others_are_logged(client, bad, status, field, detail):
    started(client)
    two_more_experiments(client)
    answer = log(client, item("sdk-1", unit="u1"), item("sdk-2", unit="u2") | bad, item("sdk-3", unit="u3"))
    assert (answer["logged"], answer["duplicates"], answer["failed"]) == (2, 0, 1)
    assert [r["status"] for r in answer["results"]] == [201, status, 201]
    problem = answer["results"][1]["problem"]
    assert (problem["status"], problem["field"]) == (status, f"decisions[1].{field}")
    assert re.search(detail, problem["detail"]), problem["detail"]
    assert sum(s["local"] for s in stats(client).values()) == 2


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        pytest.param({"decisions": []}, 422, "decisions", id="empty"),
        pytest.param({"decisions": [item("sdk-1")] * 1_001}, 422, "decisions", id="too-many"),
        pytest.param({"decisions": [item("sdk-1") | {"served_at": 1}]}, 422, "decisions[0].served_at", id="unknown"),
        pytest.param({"decisions": [item("sdk-1", propensity=0)]}, 422, "decisions[0].propensity", id="propensity"),
        pytest.param({"decisions": [item("a b")]}, 422, "decisions[0].decision_id", id="decision-id"),
        pytest.param([item("sdk-1")], 422, "body", id="a-bare-list"),
    ],
)
def test_a_malformed_body_is_refused_whole(client, body, status, field):
    started(client)
    response = client.post("/v1/decisions/log", json=body)
    assert (response.status_code, response.json()["field"]) == (status, field)
    assert stats(client)["a"]["local"] == 0


def test_a_decision_logged_before_this_process_saw_the_change_is_checked_against_the_database(clock):
    """The SDK may have read definitions from a replica that polled sooner: a newer version or start is reloaded."""
    settings = msgspec.structs.replace(TEST_SETTINGS, cache_ttl_s=60.0)
    storage = MemoryStorage()
    with (
        api_client(app_factory(settings, clock)(storage=storage)) as client,
        api_client(app_factory(TEST_SETTINGS, clock)(storage=storage)) as replica,
    ):
        started(client, policy={"kind": "fixed"})
        client.post("/v1/experiments", json=experiment_body("other"))
        assert statuses(log(client, item("sdk-0"))) == [(201, False)]  # cached: active, weights version 1
        assert log(client, item("sdk-1", experiment="other"))["results"][0]["status"] == 422  # cached: a draft
        assert replica.post("/v1/experiments/other/start").status_code == 200
        assert replica.put("/v1/experiments/exp/weights", json={"weights": {"a": 0.1, "b": 0.9}}).status_code == 200
        answer = log(client, item("sdk-2", weights_version=2), item("sdk-3", experiment="other"))
        assert statuses(answer) == [(201, False), (201, False)]


def test_a_decision_of_an_experiment_paused_since_it_was_cached_is_refused_and_not_counted(clock):
    settings = msgspec.structs.replace(TEST_SETTINGS, cache_ttl_s=60.0)
    storage = MemoryStorage()
    with (
        api_client(app_factory(settings, clock)(storage=storage)) as client,
        api_client(app_factory(TEST_SETTINGS, clock)(storage=storage)) as replica,
    ):
        started(client)
        assert statuses(log(client, item("sdk-1"))) == [(201, False)]
        assert replica.post("/v1/experiments/exp/pause").status_code == 200
        answer = log(client, item("sdk-2", unit="u2"))
        assert answer["results"][0]["problem"]["field"] == "decisions[0].experiment"
        assert "is paused" in answer["results"][0]["problem"]["detail"]
        assert sum(s["local"] for s in stats(client).values()) == 1


def test_the_contract_lists_the_statuses_of_the_log(client):
    operation = openapi_document(client.app)["paths"]["/v1/decisions/log"]["post"]
    assert {int(code) for code in operation["responses"]} == {200, 400, 401, 403, 409, 413, 415, 422, 429, 503}
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/DecisionLogIn"}


# On a real database: idempotency across retries and replicas, the stored counters and flags.

BATCH = [item(f"sdk-{i}", unit=f"u{i % 7}", arm="ab"[i % 2]) for i in range(40)]


def counters_of(url: str) -> list[tuple[Any, ...]]:
    return read_db(url, "SELECT arm, units, trials, exposures, local, contradicted FROM arm_counters ORDER BY arm")


def test_a_retry_after_a_lost_answer_counts_nothing_twice(client, database_url):
    started(client)
    first = log(client, *BATCH)
    # Units u0..u6 take the arm of their first item; a later item with the other arm contradicts it.
    contradicting = sum(1 for i, sent in enumerate(BATCH) if sent["arm"] != BATCH[i % 7]["arm"])
    assert first["logged"] == 40 and sum(r["contradicts"] for r in first["results"]) == contradicting > 0
    counts = counters_of(database_url)
    again = log(client, *BATCH)
    assert statuses(again) == [(200, r["contradicts"]) for r in first["results"]]
    assert counters_of(database_url) == counts
    assert read_db(database_url, "SELECT count(*) FROM decisions") == [(7,)]  # one unit trial per unit
    assert sum(row[4] for row in counts) == 40 and sum(row[5] for row in counts) == contradicting
    assert sum(row[3] for row in counts) == 40  # every logged decision is an exposure
    assert read_db(database_url, "SELECT count(*) FROM logged_decisions WHERE contradicts") == [(contradicting,)]
    assert read_db(database_url, "SELECT count(*) FROM logged_decisions") == [(40,)]


def test_replicas_logging_the_same_batch_at_once_count_it_once(make_app, database_url):
    """An SDK that timed out resends its batch, and a load balancer sends it to another replica."""
    with api_client(make_app()) as one, api_client(make_app()) as two:
        started(one)
        clients = [one, two, one, two]
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(clients)) as pool:
            answers = list(pool.map(lambda c: c.post("/v1/decisions/log", json={"decisions": BATCH}), clients))
    assert [a.status_code for a in answers] == [200] * len(clients), [a.text for a in answers]
    results = [a.json()["results"] for a in answers]
    for i in range(len(BATCH)):
        assert sorted(r[i]["status"] for r in results) == [200, 200, 200, 201], i
    counts = counters_of(database_url)
    assert sum(row[4] for row in counts) == 40 and sum(row[3] for row in counts) == 40
