"""Decisions end to end: stickiness, exposure, targeting, status, durability in the database."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bandit_service.core.model import Assignment, Decision
from bandit_service.services.decisions import Placement, log_decisions
from tests.service.api import api_client, decide, decide_all, experiment_body, read_db, started


def arms_for(client, units, key="exp"):
    decisions = decide_all(client, [{"experiment": key, "unit": u} for u in units])
    return {u: d["arm"] for u, d in zip(units, decisions, strict=True)}


def test_a_unit_keeps_its_arm_across_a_reweight_and_new_units_follow_new_weights(client):
    started(client, policy={"kind": "fixed"})
    units = [f"u{i}" for i in range(200)]
    first = arms_for(client, units)
    assert client.put("/v1/experiments/exp/weights", json={"weights": {"a": 0.02, "b": 0.98}}).status_code == 200
    assert arms_for(client, units) == first
    newcomers = arms_for(client, [f"new{i}" for i in range(200)])
    share_b = np.mean([a == "b" for a in newcomers.values()])
    assert share_b > 0.9  # 0.98 expected; 0.9 is more than 8 standard errors away


def test_a_unit_keeps_its_arm_after_a_restart_on_the_same_database(make_app):
    units = [f"u{i}" for i in range(100)]
    with api_client(make_app()) as first_run:
        started(first_run)
        before = arms_for(first_run, units)
    with api_client(make_app()) as second_run:
        assert arms_for(second_run, units) == before


def test_without_the_sticky_store_50_50_to_60_40_moves_about_ten_percent(client):
    started(client, policy={"kind": "fixed"}, sticky=False)
    units = [f"u{i}" for i in range(1_000)]
    before = arms_for(client, units)
    client.put("/v1/experiments/exp/weights", json={"weights": {"a": 0.6, "b": 0.4}})
    after = arms_for(client, units)
    moved = np.mean([before[u] != after[u] for u in units])
    assert abs(moved - 0.1) < 4 * np.sqrt(0.1 * 0.9 / len(units)), moved  # far from 0.5 (random reassignment)
    history = client.get("/v1/experiments/exp/weights").json()["history"]
    assert history[-1]["churn"] == pytest.approx(0.1) and history[-1]["reason"] == "manual"


def test_raising_exposure_from_10_to_50_percent_keeps_the_first_units_with_their_arms(client):
    started(client, exposure=0.1)
    units = [f"u{i}" for i in range(1_000)]
    first = dict(zip(units, decide_all(client, [{"experiment": "exp", "unit": u} for u in units]), strict=True))
    inside = {u: d["arm"] for u, d in first.items() if d["in_experiment"]}
    assert abs(len(inside) / len(units) - 0.1) < 4 * np.sqrt(0.1 * 0.9 / len(units))
    assert all(d["arm"] == "a" for d in first.values() if not d["in_experiment"])
    client.patch("/v1/experiments/exp", json={"exposure": 0.5})
    second = dict(zip(units, decide_all(client, [{"experiment": "exp", "unit": u} for u in units]), strict=True))
    assert all(second[u]["in_experiment"] and second[u]["arm"] == arm for u, arm in inside.items())
    share = np.mean([d["in_experiment"] for d in second.values()])
    assert abs(share - 0.5) < 4 * np.sqrt(0.25 / len(units))


def test_targeting_excludes_non_matching_units_and_does_not_log_them(client, database_url):
    started(client, targeting={"language": ["de", "fr"], "tier": "pro"})
    inside = decide(client, unit="u1", attributes={"language": "de", "tier": "pro", "country": "AT"})
    assert inside["in_experiment"]
    for attributes in ({"language": "en", "tier": "pro"}, {"language": "de"}, {}, {"language": "de", "tier": True}):
        outside = decide(client, unit="u2", attributes=attributes)
        assert not outside["in_experiment"] and outside["arm"] == "a" and outside["propensity"] == 1.0
    assert read_db(database_url, "SELECT unit, CAST(attributes AS TEXT) FROM decisions") == [
        ("u1", '{"language":"de","tier":"pro","country":"AT"}')
    ]


def test_paused_and_draft_serve_the_control_and_completed_serves_the_winner(client, database_url):
    client.post("/v1/experiments", json=experiment_body())
    assert decide(client, unit="u1") | {"decision_id": None} == {
        "decision_id": None,
        "experiment": "exp",
        "arm": "a",
        "payload": {"model": "v1"},
        "propensity": 1.0,
        "weights_version": 0,
        "in_experiment": False,
    }
    client.post("/v1/experiments/exp/start")
    units = [f"u{i}" for i in range(40)]
    active = arms_for(client, units)
    client.post("/v1/experiments/exp/pause")
    assert set(arms_for(client, units).values()) == {"a"}
    client.post("/v1/experiments/exp/start")
    assert arms_for(client, units) == active  # sticky again after the pause
    logged = read_db(database_url, "SELECT count(*) FROM decisions")[0][0]
    client.post("/v1/experiments/exp/complete", json={"winner": "b"})
    done = decide(client, unit="u0")
    assert (done["arm"], done["payload"], done["in_experiment"]) == ("b", {"model": "v2"}, False)
    assert read_db(database_url, "SELECT count(*) FROM decisions")[0][0] == logged  # outside traffic is not logged


def test_unit_less_decisions_are_independent_draws(client, database_url):
    started(client)
    arms = [d["arm"] for d in decide_all(client, [{"experiment": "exp"}] * 400)]
    counts = [arms.count("a"), arms.count("b")]
    assert stats.binomtest(counts[0], 400, 0.5).pvalue > 1e-3
    assert read_db(database_url, "SELECT count(*), count(unit) FROM decisions")[0] == (400, 0)
    assert read_db(database_url, "SELECT count(*) FROM assignments")[0][0] == 0


def test_an_acknowledged_decision_is_in_the_database(client, database_url):
    started(client)
    d = decide(client, unit="u1", attributes={"tier": "pro"})
    rows = read_db(database_url, "SELECT experiment_id, unit, arm, propensity, weights_version, status FROM decisions")
    arm = ["a", "b"].index(d["arm"])
    assert rows == [(1, "u1", arm, d["propensity"], 1, "pending")]
    assert read_db(database_url, "SELECT unit, arm FROM assignments") == [("u1", arm)]
    assert read_db(database_url, "SELECT arm, units, trials, exposures FROM arm_counters") == [(arm, 1, 1, 1)]


def test_a_returning_unit_is_one_unit_one_trial_and_three_exposures(client):
    started(client)
    d = decide(client, unit="u1")
    assert decide(client, unit="u1")["decision_id"] == decide(client, unit="u1")["decision_id"] == d["decision_id"]
    arm = client.get("/v1/experiments/exp").json()["stats"][d["arm"]]
    assert (arm["units"], arm["trials"], arm["exposures"], arm["pending"]) == (1, 1, 3, 1)


def test_a_worker_never_stores_a_decision_after_another_paused_the_experiment(make_app, clock):
    with api_client(make_app(cache_ttl_s=1.0)) as one, api_client(make_app(cache_ttl_s=1.0)) as two:
        started(one)
        assert decide(two, unit="u1")["in_experiment"]  # worker two caches the active experiment
        one.post("/v1/experiments/exp/pause")
        # Two's cache is still within its bound, but the write checks the status as it commits:
        # the unit is served the control, and nothing is stored.
        served = decide(two, unit="u2")
        assert served["in_experiment"] is False and served["decision_id"].startswith("out_")
        stats = one.get("/v1/experiments/exp").json()["stats"]
        assert sum(s["exposures"] for s in stats.values()) == 1


def test_workers_see_a_change_on_the_first_request_after_the_bound_even_after_idle(make_app, clock):
    # The old cache refreshed lazily: the first request after idle got the stale state and
    # started a background refresh. Now the request itself checks for changes once its cache
    # is older than the bound.
    with api_client(make_app(cache_ttl_s=1.0)) as one, api_client(make_app(cache_ttl_s=1.0)) as two:
        one.post("/v1/experiments", json=experiment_body())
        assert decide(two, unit="u1")["in_experiment"] is False  # a draft, cached by two
        one.post("/v1/experiments/exp/start")
        assert decide(two, unit="u1")["in_experiment"] is False  # within the bound: may be stale
        clock.advance(60.0)  # idle
        assert decide(two, unit="u1")["in_experiment"] is True  # the very first request sees it
        one.post("/v1/experiments/exp/pause")
        clock.advance(1.0)
        assert decide(two, unit="u1")["in_experiment"] is False


def test_concurrent_first_requests_of_one_unit_agree_and_count_one_unit(client):
    started(client)
    decisions = decide_all(client, [{"experiment": "exp", "unit": "same"}] * 50)
    assert len({d["arm"] for d in decisions}) == 1
    stats = client.get("/v1/experiments/exp").json()["stats"]
    assert sum(s["units"] for s in stats.values()) == 1 and sum(s["exposures"] for s in stats.values()) == 50


class MemoryTransaction:
    """Just enough of a Transaction for the decision job: assignments and decisions in dicts."""

    def __init__(
        self,
        stored: dict[str, Assignment],
        *,
        concurrent: dict[str, Assignment] | None = None,
        active: bool = True,
    ) -> None:
        self.stored = dict(stored)
        # Rows another replica commits after this transaction's read and before its insert.
        self.concurrent = dict(concurrent or {})
        self.active = active
        self.decisions: list[Decision] = []

    def active_experiments(self, ids):
        return set(ids) if self.active else set()

    def assignments(self, experiment_id, units):
        return {u: self.stored[u] for u in units if u in self.stored}

    def insert_assignments(self, experiment_id, rows, now):
        self.stored.update(self.concurrent)
        created = {unit for unit, _ in rows if unit not in self.stored}
        for unit, assignment in rows:
            self.stored.setdefault(unit, assignment)
        return created

    def insert_decisions(self, rows):
        self.decisions.extend(rows)

    def open_trials(self, experiment_id, trials):
        raise AssertionError("decision trials open no unit trial")

    def count_exposures(self, rows):
        raise AssertionError("every decision of a decision trial is logged")


def placement(decision_id: str, unit: str | None, arm: int, propensity: float) -> Placement:
    return Placement(
        decision_id=decision_id,
        experiment_id=1,
        unit=unit,
        sticky=True,
        trial="decision",
        arm=arm,
        propensity=propensity,
        weights_version=7,
        attributes={},
        created_at=0.0,
        expires_at=1.0,
    )


def test_the_stored_or_first_assignment_wins_within_a_batch():
    old = Assignment(arm=0, propensity=0.5, weights_version=3)
    tx = MemoryTransaction({"known": old})
    items = [
        placement("d1", "known", 1, 0.9),  # a stored unit keeps its arm and original propensity
        placement("d2", "new", 1, 0.9),  # first sight of a unit: its candidate is stored
        placement("d3", "new", 0, 0.1),  # same unit again in the batch (weights changed meanwhile)
        placement("d4", None, 1, 0.9),  # no unit: the candidate as drawn
    ]
    out = log_decisions(tx, items)  # type: ignore[arg-type]
    assert [(o.arm, o.propensity) for o in out] == [(0, 0.5), (1, 0.9), (1, 0.9), (1, 0.9)]
    assert [o.decision_id for o in out] == ["d1", "d2", "d3", "d4"]  # decision trials: each its own
    assert [d.new_unit for d in tx.decisions] == [False, True, False, False]
    assert [d.weights_version for d in tx.decisions] == [7, 7, 7, 7]  # the period of the decision itself


def test_a_unit_another_replica_assigned_first_is_not_counted_new_even_on_the_same_arm():
    # The replica race behind the `units` overcount: both replicas hash the new unit to arm 1;
    # the other one's insert wins. Comparing assignments could not tell them apart (same arm,
    # same propensity), so both counted the unit as new; only the replica whose insert created
    # the row may.
    theirs = Assignment(arm=1, propensity=0.9, weights_version=7)
    tx = MemoryTransaction({}, concurrent={"u": theirs})
    out = log_decisions(tx, [placement("d1", "u", 1, 0.9), placement("d2", "v", 0, 0.1)])  # type: ignore[arg-type]
    assert [(o.arm, o.propensity) for o in out] == [(1, 0.9), (0, 0.1)]
    assert [d.new_unit for d in tx.decisions] == [False, True]


def test_nothing_is_logged_for_an_experiment_that_is_no_longer_active_at_commit():
    tx = MemoryTransaction({}, active=False)
    assert log_decisions(tx, [placement("d1", "u", 1, 0.9), placement("d2", None, 0, 0.1)]) == [None, None]  # type: ignore[arg-type]
    assert tx.decisions == [] and tx.stored == {}
