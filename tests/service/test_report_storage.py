"""The reads and writes behind reports: sketches kept with the rewards, per-period counters, segment names."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from bandit_service.app import runtime_of
from bandit_service.core.report_data import day_counters, day_of, period_counters
from bandit_service.storage.database import open_database
from bandit_service.storage.report_reads import MISSING, SqlReportStore, segment_label
from bandit_service.storage.sketches import SKETCH_ACCURACY, is_sketched
from policies.sketch import QuantileSketch
from tests.service.api import call, decide, read_db, reward, started
from tests.service.traffic import send_rewards


@pytest.fixture
def store(settings):
    """A report store on the test's database (its own engines, disposed afterwards)."""
    db = open_database(settings)
    yield SqlReportStore(db)
    db.dispose()


@pytest.mark.parametrize(
    ("name", "sketched"),
    [
        ("latency_ms", True),
        ("ttft_ms", True),
        ("duration_s", True),
        ("queue_latency", True),
        ("response_bytes", True),
        ("Latency", True),
        ("error", False),
        ("revenue", False),
        ("tokens", False),
        ("ms", False),
    ],
)
def test_which_metrics_are_sketched(name, sketched):
    assert is_sketched(name) is sketched


def test_a_sketch_kept_batch_by_batch_equals_one_built_from_all_values(client, store):
    started(client, policy={"kind": "fixed"})
    rng = np.random.default_rng(4)
    sent: dict[str, list[float]] = {"a": [], "b": []}
    for batch in range(4):  # four transactions, each adding to the stored buckets
        items = []
        for i in range(150):
            d = decide(client, unit=f"u{batch}-{i}")
            latency = 0.0 if i == 0 else float(rng.lognormal(4.0 + batch * 0.3, 0.8))
            sent[d["arm"]].append(latency)
            items.append({"decision_id": d["decision_id"], "reward": 1, "metrics": {"latency_ms": latency}})
        send_rewards(client, items)
    experiment = call(client, runtime_of(client.app).services.storage.experiment, "exp")
    stored = store.report_data(experiment).counters.sketches["latency_ms"]
    for sketch, arm in zip(stored, ("a", "b"), strict=True):
        oracle = QuantileSketch(relative_accuracy=SKETCH_ACCURACY).add(sent[arm])
        assert (sketch.keys, sketch.counts, sketch.count, sketch.zero_count) == (
            oracle.keys,
            oracle.counts,
            oracle.count,
            oracle.zero_count,
        )
        assert (sketch.minimum, sketch.maximum) == (min(sent[arm]), max(sent[arm])) == (0.0, oracle.maximum)
        assert sketch.total == pytest.approx(oracle.total, rel=1e-12)


def test_negative_values_are_counted_in_the_metric_but_left_out_of_the_sketch(client, database_url):
    started(client)
    d = decide(client, unit="u1")
    assert reward(client, d["decision_id"], 1, metrics={"latency_ms": -5.0, "error": 0.0}).status_code == 200
    assert read_db(database_url, "SELECT count(*) FROM arm_sketches")[0][0] == 0
    assert read_db(database_url, "SELECT n FROM arm_metrics WHERE metric = 'latency_ms'") == [(1.0,)]
    d = decide(client, unit="u2")
    reward(client, d["decision_id"], 1, metrics={"latency_ms": 12.5})
    assert read_db(database_url, "SELECT count, minimum, maximum FROM arm_sketches") == [(1, 12.5, 12.5)]


def test_the_period_counters_add_up_to_the_arm_counters(client, store):
    started(client, policy={"kind": "fixed"})
    for i in range(40):
        d = decide(client, unit=f"u{i}")
        if i % 3:
            reward(client, d["decision_id"], i % 2, metrics={"latency_ms": float(i)})
        if i == 20:
            client.put("/v1/experiments/exp/weights", json={"weights": {"a": 0.2, "b": 0.8}})
    services = runtime_of(client.app).services
    experiment = call(client, services.storage.experiment, "exp")
    data = store.report_data(experiment)
    assert data.counters.versions == (1, 2)
    assert [r.version for r in data.history] == [1, 2]
    for i, arm in enumerate(call(client, services.storage.arm_counts, experiment)):
        c = data.counters
        assert (c.units[:, i].sum(), c.trials[:, i].sum(), c.rewarded[:, i].sum()) == (
            arm.units,
            arm.trials,
            arm.rewarded,
        )
        assert (c.reward.n[:, i].sum(), c.reward.total[:, i].sum()) == (arm.stats.n, arm.stats.total)
        assert c.metrics["latency_ms"].total[:, i].sum() == arm.metrics["latency_ms"].total


def test_period_counters_sum_rows_of_one_cell_and_sort_versions():
    # (version, day, arm, units, trials, exposures, rewarded, expired, excluded, n, total, total_sq)
    rows = [
        (3, 20, 1, 1, 2, 2, 1, 0, 0, 1, 1.0, 1.0),
        (1, 20, 0, 1, 1, 3, 1, 0, 0, 1, 0.0, 0.0),
        (3, 21, 1, 0, 1, 1, 1, 0, 0, 1, 1.0, 1.0),
    ]
    counters = period_counters(2, rows, [(1, 20, 1, "x", 2, 3.0, 5.0)])
    assert counters.versions == (1, 3)
    assert counters.trials.tolist() == [[1, 0], [0, 3]]  # the days of a version add up
    assert counters.exposures is not None and counters.exposures.tolist() == [[3, 0], [0, 3]]
    unknown = period_counters(2, [(1, 20, 0, 1, 1, None, 0, 0, 0, 0, 0.0, 0.0)])
    assert unknown.exposures is None  # segments: a unit trial's exposures are counted, not logged
    assert counters.reward.total.tolist() == [[0.0, 0.0], [0.0, 2.0]]
    assert counters.metrics["x"].n.tolist() == [[0, 2], [0, 0]]
    empty = period_counters(3, [])
    assert empty.versions == () and empty.trials.shape == (0, 3)
    # A window keeps the days in [since_day, until_day], inclusive.
    day_21 = period_counters(2, rows, [(1, 20, 1, "x", 2, 3.0, 5.0)], since_day=21)
    assert day_21.versions == (3,) and day_21.trials.tolist() == [[0, 1]] and day_21.metrics == {}
    day_20 = period_counters(2, rows, until_day=20)
    assert day_20.versions == (1, 3) and day_20.trials.tolist() == [[1, 0], [0, 2]]
    assert period_counters(2, rows, since_day=22).versions == ()


def test_day_counters_sum_the_versions_of_each_day():
    rows = [
        (3, 20, 1, 1, 2, 2, 1, 0, 0, 1, 1.0, 1.0),
        (1, 20, 0, 1, 1, 3, 1, 0, 0, 1, 0.0, 0.0),
        (3, 22, 1, 0, 1, 1, 1, 0, 0, 1, 1.0, 1.0),
        (4, 22, 1, 0, 4, 5, 2, 1, 0, 3, 2.0, 2.0),
    ]
    daily = day_counters(2, rows, [(1, 22, 0, "x", 2, 3.0, 5.0), (3, 22, 0, "x", 1, 1.0, 1.0)])
    assert daily.days == (20, 22)  # day 21 had no trial: left out
    assert daily.trials.tolist() == [[1, 2], [0, 5]]
    assert daily.exposures.tolist() == [[3, 2], [0, 6]]
    assert daily.units.tolist() == [[1, 1], [0, 0]]
    assert daily.rewarded.tolist() == [[1, 1], [0, 3]]
    assert daily.reward.n.tolist() == [[1, 1], [0, 4]] and daily.reward.total.tolist() == [[0.0, 1.0], [0.0, 3.0]]
    assert daily.metrics["x"].n.tolist() == [[0, 0], [3, 0]]
    assert daily.metrics["x"].total_sq.tolist() == [[0, 0], [6.0, 0]]
    assert day_counters(3, []).days == () and day_counters(3, []).trials.shape == (0, 3)


@pytest.mark.parametrize(("timestamp", "day"), [(0.0, 0), (86_399.999, 0), (86_400.0, 1), (1_800_000_000.0, 20_833)])
def test_day_of_is_whole_utc_days_since_the_epoch(timestamp, day):
    assert day_of(timestamp) == day
    assert dt.datetime.fromtimestamp(timestamp, dt.UTC).date() == dt.date(1970, 1, 1) + dt.timedelta(days=day)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ('"en"', "en"),
        ("true", "true"),
        ("false", "false"),
        ("3", "3"),
        ("2.5", "2.5"),
        ('"3"', "3"),
        ("null", MISSING),
        (None, MISSING),
    ],
)
def test_segment_labels(text, label):
    assert segment_label(text) == label
