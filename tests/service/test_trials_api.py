"""Unit-level trials end to end: exposures, rewards by unit, aggregates, missing values, reports.

The defect this guards: an app that calls `decide` on every request of a user logged a new
pending decision per call, so five decides and one reward of 1 gave the arm a mean of 0.2.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from bandit_service.app import runtime_of
from tests.service.api import call, decide, reward, started

WINDOW = 3_600


def expire(client, clock):
    return call(client, runtime_of(client.app).services.rewards.expire_pending, clock.time())


def stats_of(client, arm):
    return client.get("/v1/experiments/exp").json()["stats"][arm]


@pytest.mark.parametrize(
    ("trial", "mean", "counts"),
    [
        pytest.param("unit", 1.0, (1, 1, 5, 1, 0), id="unit-trial"),
        pytest.param("decision", 0.2, (1, 5, 5, 1, 4), id="decision-trial"),
    ],
)
def test_five_decides_and_one_reward(client, clock, trial, mean, counts):
    started(client, trial=trial, reward_window_s=WINDOW, policy={"kind": "fixed"})
    first = decide(client, unit="u1")
    for _ in range(4):
        assert decide(client, unit="u1")["arm"] == first["arm"]
    assert reward(client, first["decision_id"], 1.0).status_code == 200
    clock.advance(WINDOW + 1)
    expire(client, clock)
    arm = stats_of(client, first["arm"])
    assert (arm["units"], arm["trials"], arm["exposures"], arm["rewarded"], arm["expired"]) == counts
    assert arm["mean"] == pytest.approx(mean)


def test_sticky_experiments_default_to_unit_trials_and_unsticky_ones_to_decisions(client):
    created = client.post("/v1/experiments", json={"key": "s", "name": "S", "arms": [{"name": "a"}, {"name": "b"}]})
    assert created.json()["trial"] == "unit" and created.json()["aggregate"] == "max"
    assert created.json()["missing"] == {"value": 0.0}
    body = {"key": "r", "name": "R", "arms": [{"name": "a"}, {"name": "b"}], "sticky": False, "reward": "continuous"}
    plain = client.post("/v1/experiments", json=body)
    assert (plain.json()["trial"], plain.json()["aggregate"]) == ("decision", "sum")


def test_rewards_by_unit_combine_by_the_aggregate_and_retries_count_once(client, clock):
    started(client, reward="continuous", aggregate="sum", reward_window_s=WINDOW, policy={"kind": "fixed"})
    d = decide(client, unit="u1")
    by_unit = {"experiment": "exp", "unit": "u1"}
    assert client.post("/v1/rewards", json={**by_unit, "reward": 3.0}).json()["trial_value"] == 3.0
    replay = client.post("/v1/rewards", json={**by_unit, "reward": 3.0})  # same body, no key: a retry
    assert replay.status_code == 200 and replay.json()["trial_value"] == 3.0
    keyed = client.post("/v1/rewards", json={**by_unit, "reward": 3.0, "idempotency_key": "order-2"})
    assert keyed.json()["trial_value"] == 6.0  # a new key: a second purchase of the same amount
    by_id = reward(client, d["decision_id"], 4.0)
    assert by_id.status_code == 200 and by_id.json()["trial_value"] == 10.0
    assert by_id.json()["decision_id"] == d["decision_id"]
    arm = stats_of(client, d["arm"])
    assert (arm["trials"], arm["rewarded"], arm["n"], arm["mean"]) == (1, 1, 1, 10.0)
    clock.advance(WINDOW + 1)
    late = client.post("/v1/rewards", json={**by_unit, "reward": 1.0})
    assert late.status_code == 422 and late.json()["field"] == "unit"


@pytest.mark.parametrize(
    ("aggregate", "values", "expected"),
    [
        pytest.param("sum", [2.0, 5.0, 1.0], 8.0, id="sum"),
        pytest.param("max", [2.0, 5.0, 1.0], 5.0, id="max"),
        pytest.param("mean", [2.0, 5.0, 2.0], 3.0, id="mean"),
        pytest.param("last", [2.0, 5.0, 1.0], 1.0, id="last"),
    ],
)
def test_each_aggregate_gives_the_trial_one_value(client, aggregate, values, expected):
    started(client, reward="continuous", aggregate=aggregate, policy={"kind": "fixed"})
    d = decide(client, unit="u1")
    for i, value in enumerate(values):
        body = {"experiment": "exp", "unit": "u1", "reward": value, "idempotency_key": f"k{i}"}
        assert client.post("/v1/rewards", json=body).status_code == 200
    arm = stats_of(client, d["arm"])
    assert (arm["n"], arm["mean"]) == (1, pytest.approx(expected))


def test_a_unit_trial_of_a_bernoulli_experiment_converts_once(client):
    started(client, policy={"kind": "fixed"})
    d = decide(client, unit="u1")
    for value, key in ((0.0, "a"), (1.0, "b"), (1.0, "c"), (0.0, "d")):
        body = {"experiment": "exp", "unit": "u1", "reward": value, "idempotency_key": key}
        assert client.post("/v1/rewards", json=body).status_code == 200
    arm = stats_of(client, d["arm"])
    assert (arm["n"], arm["mean"]) == (1, 1.0)


def test_a_closed_window_opens_the_units_next_trial(client, clock):
    started(client, reward_window_s=WINDOW, policy={"kind": "fixed"})
    first = decide(client, unit="u1")
    clock.advance(WINDOW + 1)
    second = decide(client, unit="u1")
    assert second["decision_id"] != first["decision_id"] and second["arm"] == first["arm"]
    assert reward(client, first["decision_id"], 1.0).status_code == 422  # the first trial is settled
    assert client.post("/v1/rewards", json={"experiment": "exp", "unit": "u1", "reward": 1.0}).status_code == 200
    arm = stats_of(client, first["arm"])
    assert (arm["units"], arm["trials"], arm["exposures"], arm["rewarded"]) == (1, 2, 2, 1)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        pytest.param({"reward": 1.0}, 422, "decision_id", id="neither"),
        pytest.param(
            {"decision_id": "x", "experiment": "exp", "unit": "u1", "reward": 1.0}, 422, "experiment", id="both"
        ),
        pytest.param({"experiment": "exp", "reward": 1.0}, 422, "unit", id="no-unit"),
        pytest.param({"unit": "u1", "reward": 1.0}, 422, "experiment", id="no-experiment"),
        pytest.param({"experiment": "nope", "unit": "u1", "reward": 1.0}, 404, "experiment", id="unknown-experiment"),
        pytest.param({"experiment": "exp", "unit": "never-seen", "reward": 1.0}, 404, "unit", id="unknown-unit"),
        pytest.param({"experiment": "per-decision", "unit": "u1", "reward": 1.0}, 422, "unit", id="decision-trials"),
    ],
)
def test_a_reward_that_names_no_trial_is_refused(client, body, status, field):
    started(client, policy={"kind": "fixed"})
    started(client, "per-decision", trial="decision", policy={"kind": "fixed"})
    decide(client, unit="u1")
    decide(client, "per-decision", unit="u1")
    refused = client.post("/v1/rewards", json=body)
    assert (refused.status_code, refused.json()["field"]) == (status, field), refused.text
    assert all(s["rewarded"] == 0 for s in client.get("/v1/experiments/exp").json()["stats"].values())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"trial": "unit", "sticky": False}, "trial", id="unit-needs-sticky"),
        pytest.param({"aggregate": "sum"}, "aggregate", id="bernoulli-sum"),
        pytest.param({"missing": {"value": 0.5}}, "default_reward", id="bernoulli-half"),
        pytest.param({"missing": {"value": 1.0}, "default_reward": 0.5, "reward": "continuous"}, "missing", id="both"),
        pytest.param({"missing": "drop"}, "missing", id="unknown-missing"),
        pytest.param({"trial": "user"}, "trial", id="unknown-trial"),
    ],
)
def test_bad_trial_settings_are_refused(client, body, field):
    created = client.post(
        "/v1/experiments", json={"key": "e", "name": "E", "arms": [{"name": "a"}, {"name": "b"}], **body}
    )
    assert created.status_code == 422 and created.json()["field"] == field, created.text
    assert client.get("/v1/experiments/e").status_code == 404


def test_excluded_trials_stay_out_of_the_statistics_and_the_report_says_so(client, clock):
    started(client, missing="exclude", reward_window_s=WINDOW, policy={"kind": "fixed"})
    answered = [decide(client, unit=f"u{i}") for i in range(40)]
    for d in answered[:10]:
        assert reward(client, d["decision_id"], 1.0).status_code == 200
    clock.advance(WINDOW + 1)
    assert expire(client, clock) == 30
    stats = client.get("/v1/experiments/exp").json()["stats"]
    assert sum(s["excluded"] for s in stats.values()) == 30 and sum(s["n"] for s in stats.values()) == 10
    assert all(s["mean"] in (None, 1.0) for s in stats.values())
    report = client.get("/v1/experiments/exp/report").json()
    assert report["attribution"] == {"trial": "unit", "aggregate": "max", "missing": None, "excluded": 30}
    assert any("30 trial(s) got no reward and are excluded" in note for note in report["notes"])
    assert sum(o["excluded"] for o in report["operational"]) == 30
    text = client.get("/v1/experiments/exp/report?format=text").text
    assert "trials without a reward excluded" in text


def test_the_report_on_unit_trials_matches_welch_on_the_per_unit_totals(client, clock):
    """Oracle: scipy's Welch test on each unit's summed rewards, computed here from what was sent."""
    started(client, reward="continuous", aggregate="sum", reward_window_s=WINDOW, policy={"kind": "fixed"})
    rng = np.random.default_rng(7)
    totals: dict[str, dict[str, float]] = {"a": {}, "b": {}}
    for i in range(300):
        unit = f"u{i}"
        arm = decide(client, unit=unit)["arm"]
        for j in range(int(rng.integers(1, 4))):
            decide(client, unit=unit)  # exposures of the same trial
            value = float(rng.gamma(2.0, 5.0 if arm == "a" else 6.0))
            body = {"experiment": "exp", "unit": unit, "reward": value, "idempotency_key": f"{unit}-{j}"}
            assert client.post("/v1/rewards", json=body).status_code == 200
            totals[arm][unit] = totals[arm].get(unit, 0.0) + value
    report = client.get("/v1/experiments/exp/report").json()
    primary = report["primary"]
    control, treated = np.array(list(totals["a"].values())), np.array(list(totals["b"].values()))
    oracle = sps.ttest_ind(treated, control, equal_var=False)
    comparison = next(c for c in primary["comparisons"] if c["arm"] == "b")
    assert comparison["p_value"] == pytest.approx(oracle.pvalue, rel=1e-9)
    assert comparison["difference"] == pytest.approx(treated.mean() - control.mean(), rel=1e-12)
    arms = {a["arm"]: a for a in primary["arms"]}
    assert (arms["a"]["trials"], arms["b"]["trials"]) == (len(control), len(treated))
    exposures = {o["arm"]: o["exposures"] for o in report["operational"]}
    assert exposures["a"] + exposures["b"] > len(control) + len(treated)  # repeated decides are exposures only
