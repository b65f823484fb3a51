"""GET /metrics: every figure equals what happened, on the twin and on a real database; the setting turns it off.

The scrape is parsed with prometheus-client's own parser, and each value is compared with the
traffic the test sent: decisions and rewards per arm (from the database counters), requests per
route and status (401 and 404 included), reweights by reason, commits, scheduler ticks.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from bandit_service.app import runtime_of
from bandit_service.clock import FakeClock
from bandit_service.core.errors import UnavailableError
from bandit_service.core.model import Experiment, ExperimentStatus
from bandit_service.http.json_logs import JsonFormatter
from bandit_service.settings import Settings
from bandit_service.storage.memory import MemoryStorage
from tests.service.api import api_client, call, decide, reward, started
from tests.service.conftest import TEST_SETTINGS, app_factory

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient[Litestar]) -> Samples:
    """GET /metrics, parsed: value by (sample name, labels)."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, default: float | None = None, **labels: str) -> float:
    """One sample's value (or `default`; without one, a KeyError names what is missing)."""
    key = (name, frozenset(labels.items()))
    if key not in samples and default is not None:
        return default
    if key not in samples:
        raise KeyError(f"no sample {name}{labels}; have {sorted(k for k in samples if k[0] == name)}")
    return samples[key]


def arm(samples: Samples, name: str, arm_name: str, experiment: str = "exp") -> float:
    """A per-arm sample of the experiment."""
    return value(samples, name, experiment=experiment, arm=arm_name)


def requests(samples: Samples, method: str, route: str, status: int) -> float:
    """How many requests the route answered with this status."""
    return value(samples, "bandit_http_request_duration_seconds_count", method=method, route=route, status=str(status))


def run_traffic(client: TestClient[Litestar], clock: FakeClock) -> None:
    """Ten decisions, four rewards (one with an extra metric), two refused requests, then the checks."""
    started(client, reweight_every_s=600)
    served = [decide(client, unit=f"u{i}") for i in range(10)]
    rewarded = served[:4]
    for i, d in enumerate(rewarded):
        metrics = {"latency_ms": 40.0} if i == 0 else {}
        assert reward(client, d["decision_id"], 1 if i % 2 == 0 else 0, metrics=metrics).status_code == 200
    assert client.post("/v1/decisions", json={"experiment": "nope"}).status_code == 404
    assert client.post("/v1/decisions", json={"experiment": "exp"}, headers={"Authorization": ""}).status_code == 401

    samples = scrape(client)
    assert value(samples, "bandit_counters_up") == 1
    by_arm = {name: [d for d in served if d["arm"] == name] for name in ("a", "b")}
    for name, decided in by_arm.items():
        got = [d for d in rewarded if d["arm"] == name]
        total = sum(1 if rewarded.index(d) % 2 == 0 else 0 for d in got)
        assert arm(samples, "bandit_arm_decisions_total", name) == len(decided)
        assert arm(samples, "bandit_arm_units_total", name) == len(decided)
        assert arm(samples, "bandit_arm_rewards_total", name) == len(got)
        assert arm(samples, "bandit_arm_reward_sum", name) == total
        assert arm(samples, "bandit_arm_pending", name) == len(decided) - len(got)
        assert arm(samples, "bandit_arm_expired_total", name) == 0
        assert arm(samples, "bandit_arm_weight", name) == 0.5
    first_arm = rewarded[0]["arm"]
    labels = {"experiment": "exp", "arm": first_arm, "metric": "latency_ms"}
    assert value(samples, "bandit_arm_metric_observations_total", **labels) == 1
    assert value(samples, "bandit_arm_metric_sum", **labels) == 40.0
    assert value(samples, "bandit_experiment_weights_version", experiment="exp", status="active") == 1
    assert requests(samples, "POST", "/v1/decisions", 200) == 10
    assert requests(samples, "POST", "/v1/decisions", 404) == 1
    assert requests(samples, "POST", "/v1/decisions", 401) == 1  # refused by auth middleware, still counted
    assert requests(samples, "POST", "/v1/rewards", 200) == 4
    assert requests(samples, "POST", "/v1/experiments/{key}/start", 200) == 1

    # A manual reweight, then a scheduled one when the interval has passed; then the windows close.
    assert client.post("/v1/experiments/exp/reweight").status_code == 200
    manual_at = clock.time()
    clock.advance(600)
    reweighter = runtime_of(client.app).services.reweighter
    assert call(client, reweighter.reweight_due, clock.time()) == 1
    clock.advance(86_400)
    expired = call(client, runtime_of(client.app).services.rewards.expire_pending, clock.time())
    assert expired == 6

    samples = scrape(client)
    for reason in ("manual", "schedule"):
        assert value(samples, "bandit_reweights_total", experiment="exp", reason=reason, outcome="applied") == 1
        assert value(samples, "bandit_reweight_duration_seconds_count", reason=reason) == 1
    assert value(samples, "bandit_reweight_last_success_timestamp_seconds", experiment="exp") == manual_at + 600
    assert value(samples, "bandit_experiment_weights_version", experiment="exp", status="active") == 3
    for name, decided in by_arm.items():
        got = [d for d in rewarded if d["arm"] == name]
        assert arm(samples, "bandit_arm_pending", name) == 0
        assert arm(samples, "bandit_arm_expired_total", name) == len(decided) - len(got)
    assert requests(samples, "GET", "/metrics", 200) == 1  # the first scrape; this one is observed after it answers


def test_metrics_count_the_traffic_on_the_twin(client, clock):
    run_traffic(client, clock)


def test_metrics_count_the_traffic_and_the_commits_on_a_database(make_app, clock):
    with api_client(make_app()) as client:
        run_traffic(client, clock)
        samples = scrape(client)
        stats = runtime_of(client.app).services.storage.stats()
        # Every committed transaction is observed once, with the writes it carried.
        assert value(samples, "bandit_commit_batch_writes_count", outcome="committed") == stats.commits
        assert value(samples, "bandit_commit_batch_writes_sum", outcome="committed") == stats.writes
        assert value(samples, "bandit_commit_duration_seconds_count", outcome="committed") == stats.commits


def test_a_reweight_that_loses_the_race_counts_as_superseded(make_app, clock):
    with api_client(make_app()) as one, api_client(make_app()) as two:
        started(one, reweight_every_s=60)
        clock.advance(60)
        snapshot = call(one, runtime_of(one.app).services.storage.experiment, "exp")
        call(one, runtime_of(one.app).services.reweighter.reweight, snapshot, "schedule", clock.time())
        call(two, runtime_of(two.app).services.reweighter.reweight, snapshot, "schedule", clock.time())
        mine, theirs = scrape(one), scrape(two)
    assert value(mine, "bandit_reweights_total", experiment="exp", reason="schedule", outcome="applied") == 1
    assert value(theirs, "bandit_reweights_total", experiment="exp", reason="schedule", outcome="superseded") == 1
    assert ("bandit_reweight_last_success_timestamp_seconds", frozenset({("experiment", "exp")})) not in theirs


def test_a_decision_the_storage_refuses_is_counted_for_its_experiment_and_arm(clock):
    storage = MemoryStorage()
    with api_client(app_factory(TEST_SETTINGS, clock)(storage=storage)) as client:
        started(client)
        call(client, storage.close)  # writes are refused from now on; reads still work
        response = client.post("/v1/decisions", json={"experiment": "exp", "unit": "u1"})
        assert response.status_code == 503
        samples = scrape(client)
    errors = [(dict(labels), v) for (name, labels), v in samples.items() if name == "bandit_decision_errors_total"]
    assert len(errors) == 1
    labels, count = errors[0]
    assert count == 1 and labels["experiment"] == "exp" and labels["error"] == "UnavailableError"
    assert labels["arm"] in ("a", "b")  # the arm the unit would have got
    assert requests(samples, "POST", "/v1/decisions", 503) == 1


class UnreadableStorage(MemoryStorage):
    """The twin, whose experiment listing fails like a database that went away."""

    async def experiments(self, status: ExperimentStatus | None, limit: int, offset: int) -> list[Experiment]:
        raise UnavailableError("the database is busy or unavailable; retry")


def test_a_scrape_without_the_database_still_answers_with_the_process_metrics(clock):
    with api_client(app_factory(TEST_SETTINGS, clock)(storage=UnreadableStorage())) as client:
        client.get("/healthz")
        samples = scrape(client)
    assert value(samples, "bandit_counters_up") == 0
    assert not any(name.startswith("bandit_arm_") for name, _ in samples)
    assert requests(samples, "GET", "/healthz", 200) == 1


def test_the_real_scheduler_reports_its_ticks_and_their_lag(make_app, clock):
    with api_client(make_app(scheduler_enabled=True, scheduler_tick_s=0.05)) as client:
        deadline = time.monotonic() + 30
        while True:
            samples = scrape(client)
            ticks = value(samples, "bandit_scheduler_tick_duration_seconds_count", 0, outcome="ok")
            if ticks >= 2 and value(samples, "bandit_scheduler_lag_seconds_count") >= 2:
                break
            assert time.monotonic() < deadline, f"fewer than 2 ticks in 30 s: {ticks}"
            time.sleep(0.05)
    assert value(samples, "bandit_scheduler_last_tick_timestamp_seconds") == clock.time()
    assert value(samples, "bandit_scheduler_lag_seconds_sum") >= 0


def test_metrics_off_removes_the_endpoint_and_the_request_id(clock):
    with api_client(app_factory(TEST_SETTINGS, clock)(storage=MemoryStorage(), metrics=False)) as client:
        started(client)
        assert client.get("/metrics").status_code == 404
        answer = client.post("/v1/decisions", json={"experiment": "exp", "unit": "u"})
        assert answer.status_code == 200 and "x-request-id" not in answer.headers
    assert client.app.before_send == []  # no hook on the request path at all


def test_metrics_need_a_key(clock):
    with api_client(app_factory(TEST_SETTINGS, clock)(storage=MemoryStorage()), key=None) as anonymous:
        assert anonymous.get("/metrics").status_code == 401


class Records(logging.Handler):
    """Keeps the records it handles (the app's logging configuration replaces caplog's root handler)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_json_logs_give_each_request_a_line_with_its_request_id_and_decision_id(clock):
    app = app_factory(TEST_SETTINGS, clock)(storage=MemoryStorage(), log_format="json")
    seen = Records()
    requests_log = logging.getLogger("bandit_service.requests")
    with api_client(app) as client:
        started(client)
        requests_log.addHandler(seen)
        mine = client.post("/v1/decisions", json={"experiment": "exp", "unit": "u1"}, headers={"X-Request-Id": "abc-1"})
        theirs = client.post("/v1/decisions", json={"experiment": "exp"}, headers={"X-Request-Id": "bad id!"})
        refused = client.post("/v1/decisions", json={"experiment": "exp"}, headers={"Authorization": ""})
        requests_log.removeHandler(seen)
    assert mine.headers["x-request-id"] == "abc-1"
    generated = theirs.headers["x-request-id"]
    assert generated != "bad id!" and len(generated) == 16
    lines = [json.loads(JsonFormatter().format(record)) for record in seen.records]
    assert [(line["request_id"], line["status"], line["route"]) for line in lines] == [
        ("abc-1", 200, "/v1/decisions"),
        (generated, 200, "/v1/decisions"),
        (refused.headers["x-request-id"], 401, "/v1/decisions"),
    ]
    assert lines[0]["decision_id"] == mine.json()["decision_id"]
    assert lines[1]["decision_id"] == theirs.json()["decision_id"]
    assert "decision_id" not in lines[2]
    assert all(line["method"] == "POST" and line["duration_ms"] >= 0 for line in lines)


def test_the_json_formatter_writes_one_object_per_record_with_the_exception():
    record = logging.LogRecord("bandit_service.x", logging.ERROR, __file__, 1, "failed %d", (3,), None)
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    text = JsonFormatter().format(record)
    line: dict[str, Any] = json.loads(text)
    assert (line["level"], line["logger"], line["message"]) == ("ERROR", "bandit_service.x", "failed 3")
    assert "ValueError: boom" in line["exception"] and "\n" not in text  # one line, whatever the traceback


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_log_format_is_a_setting(log_format):
    assert Settings.from_env({"BANDIT_LOG_FORMAT": log_format}).log_format == log_format
    assert Settings.from_env({"BANDIT_METRICS": "off"}).metrics is False
    with pytest.raises(ValueError, match="BANDIT_LOG_FORMAT"):
        Settings.from_env({"BANDIT_LOG_FORMAT": "xml"})
