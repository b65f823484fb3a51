"""GET /v1/experiments/{key}/report end to end, checked against scipy, statsmodels and numpy on the traffic sent."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np
import pytest
from scipy import stats as sps
from sqlalchemy import text
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from bandit_service.app import create_app, runtime_of
from bandit_service.clock import FakeClock
from bandit_service.ids import sequential_ids
from bandit_service.services.reports import report_seed
from tests.service.api import TEST_SETTINGS, api_client, call, connect, read_db, started
from tests.service.traffic import by_arm, drive

ARMS = ("a", "b", "c")
RATES = {"a": 0.30, "b": 0.38, "c": 0.31}
LATENCY = {"a": 120.0, "b": 150.0, "c": 118.0}  # lognormal medians, ms
ERRORS = {"a": 0.02, "b": 0.06, "c": 0.02}


def three_arms(**overrides):
    body = {
        "arms": [{"name": a} for a in ARMS],
        "policy": {"kind": "fixed"},
        "criteria": {
            "primary": {"metric": "reward", "min_improvement": 0.0},
            "guardrails": [
                {"metric": "error", "max_increase": 0.01},
                {"metric": "latency_ms", "max_relative_increase": 0.10},
            ],
        },
        "min_sample_size": 300,
    }
    body.update(overrides)
    return body


def reward_of(arm, rng):
    return float(rng.random() < RATES[arm])


def metrics_of(arm, rng):
    return {
        "latency_ms": float(LATENCY[arm] * rng.lognormal(0.0, 0.5)),
        "error": float(rng.random() < ERRORS[arm]),
    }


@pytest.fixture(scope="module")
def traffic(module_database_url):
    """One three-arm fixed-split experiment with 1,500 units, shared by the oracle tests (read-only)."""
    settings = msgspec.structs.replace(TEST_SETTINGS, database_url=module_database_url)
    with api_client(create_app(settings, clock=FakeClock(), ids=sequential_ids("r"))) as client:
        started(client, "exp", **three_arms())
        sent = drive(client, "exp", 1_500, np.random.default_rng(20240611), reward_of, metrics_of)
        report = client.get("/v1/experiments/exp/report")
        assert report.status_code == 200, report.text[:1000]
        text = client.get("/v1/experiments/exp/report?format=text")
        yield {"sent": sent, "report": report.json(), "text": text, "client": client}


def _arm(metric, name):
    return next(a for a in metric["arms"] if a["arm"] == name)


def _comparison(metric, name):
    return next(c for c in metric["comparisons"] if c["arm"] == name)


def test_per_arm_counts_and_means_are_what_was_sent(traffic):
    report, groups = traffic["report"], by_arm(traffic["sent"], ARMS)
    assert report["arms"] == list(ARMS) and report["control"] == "a"
    for name, sent in groups.items():
        rewards = np.array([s.reward for s in sent])
        arm = _arm(report["primary"], name)
        assert (arm["units"], arm["trials"], arm["rewarded"], arm["n"]) == (len(sent),) * 4
        assert arm["mean"] == pytest.approx(rewards.mean(), rel=1e-12)
        assert arm["sd"] == pytest.approx(rewards.std(ddof=1), rel=1e-9)
        assert arm["weight"] == pytest.approx(1 / 3)
        op = next(o for o in report["operational"] if o["arm"] == name)
        assert (op["units"], op["trials"], op["rewarded"], op["pending"]) == (len(sent), len(sent), len(sent), 0)
        assert op["error_rate"] == pytest.approx(np.mean([s.metrics["error"] for s in sent]), rel=1e-12)


def test_the_z_test_matches_statsmodels(traffic):
    report, groups = traffic["report"], by_arm(traffic["sent"], ARMS)
    primary = report["primary"]
    assert primary["kind"] == "binary"
    control = np.array([s.reward for s in groups["a"]])
    p_values = []
    for name in ("b", "c"):
        treated = np.array([s.reward for s in groups[name]])
        x, n = [treated.sum(), control.sum()], [treated.size, control.size]
        _, p = proportions_ztest(x, n)  # pooled standard error, two-sided
        low, high = confint_proportions_2indep(x[0], n[0], x[1], n[1], method="wald", compare="diff", alpha=0.05)
        comparison = _comparison(primary, name)
        assert comparison["test"] == "z_pooled"
        assert comparison["difference"] == pytest.approx(treated.mean() - control.mean(), rel=1e-12)
        assert comparison["p_value"] == pytest.approx(p, rel=1e-9)
        assert comparison["difference_interval"] == pytest.approx([low, high], rel=1e-9)
        p_values.append(p)
    holm = multipletests(p_values, method="holm")[1]
    assert [_comparison(primary, n)["p_value_adjusted"] for n in ("b", "c")] == pytest.approx(holm, rel=1e-9)


def test_welch_on_a_continuous_metric_matches_scipy(traffic):
    report, groups = traffic["report"], by_arm(traffic["sent"], ARMS)
    latency = next(m for m in report["metrics"] if m["name"] == "latency_ms")
    assert latency["kind"] == "continuous"
    control = np.array([s.metrics["latency_ms"] for s in groups["a"]])
    for name in ("b", "c"):
        treated = np.array([s.metrics["latency_ms"] for s in groups[name]])
        oracle = sps.ttest_ind(treated, control, equal_var=False)
        interval = oracle.confidence_interval(0.95)
        comparison = _comparison(latency, name)
        assert comparison["test"] == "welch"
        assert comparison["p_value"] == pytest.approx(oracle.pvalue, rel=1e-7, abs=1e-300)
        assert comparison["difference_interval"] == pytest.approx([interval.low, interval.high], rel=1e-9)
        assert _arm(latency, name)["mean"] == pytest.approx(treated.mean(), rel=1e-12)


def test_quantiles_from_the_sketch_are_within_its_accuracy_of_numpy(traffic):
    report, groups = traffic["report"], by_arm(traffic["sent"], ARMS)
    for op in report["operational"]:
        values = np.sort([s.metrics["latency_ms"] for s in groups[op["arm"]]])
        quantiles = op["quantiles"]["latency_ms"]
        assert quantiles["count"] == values.size
        for q, key in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            exact = values[math.floor(q * (values.size - 1))]  # the order statistic the sketch targets
            assert abs(quantiles[key] - exact) <= 0.01 * exact * (1 + 1e-9), (op["arm"], key)
            assert quantiles[key] == pytest.approx(np.quantile(values, q), rel=0.05)
    assert set(report["operational"][0]["quantiles"]) == {"latency_ms"}  # error (0/1) is not sketched


def test_health_and_guardrails_on_a_clean_run(traffic):
    report = traffic["report"]
    srm = report["health"]["srm"]
    assert not srm["flagged"] and srm["p_value"] > 0.001
    assert srm["observed"] == [len(v) for v in by_arm(traffic["sent"], ARMS).values()]
    assert srm["expected"] == pytest.approx([500.0, 500.0, 500.0])
    assert report["health"]["sample_size"]["required"] == [300, 300, 300]
    assert report["health"]["sample_size"]["reached"] is True
    breached = {(g["metric"], g["arm"]) for g in report["guardrails"] if g["breached"]}
    assert ("latency_ms", "b") in breached  # b is 25% slower: the one-sided bound clears 10%
    assert report["recommendation"]["action"] == "stop_guardrail"


def test_guardrail_breach_names_the_metric_the_arm_and_the_figures(traffic):
    client = traffic["client"]
    reason = call(client, runtime_of(client.app).services.reports.guardrail_breach, "exp")
    assert reason is not None
    assert "latency_ms" in reason and "arm b" in reason and "10%" in reason and "observed change +" in reason


def test_the_text_format_prints_every_arm_and_the_recommendation(traffic):
    text = traffic["text"]
    assert text.status_code == 200
    assert text.headers["content-type"].startswith("text/plain")
    lines = text.text.splitlines()
    for name in ARMS:
        # A row in the per-arm and the Bayesian tables of each of the 3 metrics, and in the operational table.
        assert sum(line.startswith(f"{name} ") for line in lines) >= 2 * 3 + 1
    recommendation = [line for line in lines if line.startswith("== recommendation:")]
    assert recommendation == ["== recommendation: STOP GUARDRAIL =="]
    assert "latency_ms p50/p95/p99" in text.text


def _without_looks(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_looks(v) for k, v in value.items() if k != "looks"}
    if isinstance(value, list):
        return [_without_looks(v) for v in value]
    return value


def test_the_report_is_deterministic_and_echoes_its_seed(traffic):
    client, report = traffic["client"], traffic["report"]
    before = client.get("/v1/experiments/exp/report").json()
    again = client.get("/v1/experiments/exp/report").json()
    # Every read is a look at the always-valid figures: only the look count moves, by one per read;
    # with no new data, every figure is the same (the fixture's first read included).
    looks = {c["arm"]: c["looks"] for c in before["primary"]["comparisons"]}
    assert looks and {c["arm"]: c["looks"] - 1 for c in again["primary"]["comparisons"]} == looks
    assert _without_looks(again) == _without_looks(before) == _without_looks(report)
    experiment = call(client, runtime_of(client.app).services.storage.experiment, "exp")
    assert report["seed"] == report_seed(experiment.salt, experiment.weights_version)


def test_guardrail_breach_is_none_without_guardrails_and_when_they_hold(client):
    started(client, "plain", arms=[{"name": "a"}, {"name": "b"}])
    started(
        client,
        "holds",
        arms=[{"name": "a"}, {"name": "b"}],
        criteria={"guardrails": [{"metric": "latency_ms", "max_relative_increase": 0.5}]},
    )
    rng = np.random.default_rng(7)
    for key in ("plain", "holds"):
        drive(client, key, 300, rng, lambda arm, r: float(r.random() < 0.5), lambda arm, r: {"latency_ms": 100.0})
    reports = runtime_of(client.app).services.reports
    assert call(client, reports.guardrail_breach, "plain") is None
    assert call(client, reports.guardrail_breach, "holds") is None


def test_a_draft_without_data_gives_an_empty_report(client):
    client.post("/v1/experiments", json={"key": "draft", "name": "d", "arms": [{"name": "a"}, {"name": "b"}]})
    response = client.get("/v1/experiments/draft/report")
    assert response.status_code == 200, response.text
    report = response.json()
    assert [a["n"] for a in report["primary"]["arms"]] == [0, 0]
    assert report["primary"]["arms"][0]["mean"] is None  # NaN encodes as null
    assert not report["health"]["srm"]["flagged"]
    assert report["recommendation"]["action"] == "keep_running"
    assert any("no decisions logged yet" in note for note in report["notes"])
    text = client.get("/v1/experiments/draft/report?format=text")
    assert text.status_code == 200 and "== recommendation: KEEP RUNNING ==" in text.text
    segments = client.get("/v1/experiments/draft/report?segment=language").json()
    assert segments["segments"] == []


def _lose_decisions(database_url, arm_index, share):
    """Simulate lost decision logs for one arm: the rows and their counts disappear (a logging bug)."""
    with connect(database_url) as conn:
        ids = list(
            conn.execute(text("SELECT id FROM decisions WHERE arm = :arm ORDER BY id"), {"arm": arm_index}).scalars()
        )
        lost = ids[: int(len(ids) * share)]
        conn.execute(text("DELETE FROM decisions WHERE id = :id"), [{"id": i} for i in lost])
        for table in ("arm_counters", "period_counters"):
            conn.execute(
                text(
                    f"UPDATE {table} SET units = units - :lost, trials = trials - :lost,"
                    " exposures = exposures - :lost WHERE arm = :arm"
                ),
                {"lost": len(lost), "arm": arm_index},
            )
    return len(lost)


def test_a_sample_ratio_mismatch_is_flagged_and_blocks_shipping(client, database_url):
    # Every decision is logged in the transaction that answers it, so the API alone cannot lose
    # one: the mismatch is simulated as lost logs (30% of b's decisions, before any reward).
    started(client, "srm", arms=[{"name": "a"}, {"name": "b"}], policy={"kind": "fixed"}, min_sample_size=100)
    rng = np.random.default_rng(11)
    drive(client, "srm", 1_000, rng, lambda arm, r: float(r.random() < 0.3), rewarded=lambda arm, r: False)
    clean = client.get("/v1/experiments/srm/report").json()
    assert not clean["health"]["srm"]["flagged"]
    lost = _lose_decisions(database_url, 1, 0.3)
    assert lost > 120
    pending = read_db(database_url, "SELECT id, arm FROM decisions WHERE experiment_id = 1 AND status = 'pending'")
    items = [{"decision_id": i, "reward": float(rng.random() < (0.3 if arm == 0 else 0.6))} for i, arm in pending]
    response = client.post("/v1/rewards/batch", json=items)
    assert response.json()["recorded"] == len(items)
    report = client.get("/v1/experiments/srm/report").json()
    srm = report["health"]["srm"]
    observed_b = sum(1 for _, arm in pending if arm == 1)
    assert srm["flagged"] and srm["p_value"] < 0.001 and srm["observed"][1] == observed_b, (srm, lost)
    # b is far better (0.6 against 0.3), yet a mismatch never ships.
    assert _comparison(report["primary"], "b")["p_value_adjusted"] < 1e-6
    assert report["recommendation"]["action"] == "keep_running"
    assert "sample ratio mismatch" in report["recommendation"]["reason"]
    segmented = client.get("/v1/experiments/srm/report?segment=language").json()
    assert segmented["segments"][0]["report"]["health"]["srm"]["flagged"]  # the GROUP BY sees it too


# The headline's standard error is about 0.011 at 4,000 units a period: its sign is right with
# probability 0.97 for a true +0.02 (the coverage over replicates is in test_honest_headline.py).
PER_PERIOD = 4_000


def test_the_simpson_trap_end_to_end(client):
    """Issue 14's case: three weights periods (50/50, 10/90, 90/10), rates drifting, b - a = +0.02 in each.

    b gets its traffic in the bad period and a in the good one, so the pooled difference points
    the wrong way; every headline figure must point the right way, with the pooled one beside it.
    """
    rates = [{"a": 0.20, "b": 0.22}, {"a": 0.05, "b": 0.07}, {"a": 0.40, "b": 0.42}]
    splits = [(0.5, 0.5), (0.1, 0.9), (0.9, 0.1)]
    started(client, "trap", arms=[{"name": "a"}, {"name": "b"}], policy={"kind": "fixed"})
    rng = np.random.default_rng(5)
    for period, ((wa, wb), rate) in enumerate(zip(splits, rates, strict=True)):
        moved = client.put("/v1/experiments/trap/weights", json={"weights": {"a": wa, "b": wb}})
        assert moved.status_code == 200, moved.text
        reward = lambda arm, r, rate=rate: float(r.random() < rate[arm])  # noqa: E731
        drive(client, "trap", PER_PERIOD, rng, reward, first_unit=period * PER_PERIOD)
    report = client.get("/v1/experiments/trap/report").json()
    primary = report["primary"]
    b = _comparison(primary, "b")
    assert primary["estimator"] == "stratified" and primary["periods"] == 3
    assert b["pooled_difference"] < -0.02 and b["pooled_p_value"] < 0.05  # the naive figure is fooled
    assert b["difference"] > 0 and b["difference_interval"][0] < 0.02 < b["difference_interval"][1]
    assert b["relative"] > 0 and b["relative_interval"][0] > -1.0
    arms = {a["arm"]: a for a in primary["arms"]}
    assert arms["b"]["prob_best"] > arms["a"]["prob_best"] and b["prob_beats_control"] > 0.5
    assert arms["b"]["expected_loss"] < arms["a"]["expected_loss"]
    assert arms["b"]["mean"] > arms["a"]["mean"] and arms["b"]["pooled_mean"] < arms["a"]["pooled_mean"]
    assert not report["health"]["srm"]["flagged"]  # expected counts follow each period's weights
    assert [p["flagged"] for p in report["health"]["srm_periods"]] == [False] * 3
    assert report["recommendation"]["action"] != "ship"
    assert any("Simpson" in note for note in report["notes"])
    text = client.get("/v1/experiments/trap/report?format=text").text
    assert "drift-corrected: 3 weights periods" in text and "pooled (naive, secondary" in text


def test_too_many_segment_values_is_a_problem_naming_segment(client):
    started(client, "ids", arms=[{"name": "a"}, {"name": "b"}])
    drive(client, "ids", 60, np.random.default_rng(1), lambda arm, r: 1.0, attributes_of=lambda i, r: {"session": i})
    response = client.get("/v1/experiments/ids/report?segment=session")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "segment"


def test_criteria_are_stored_returned_and_changeable_while_running(client):
    created = client.post(
        "/v1/experiments",
        json={
            "key": "crit",
            "name": "c",
            "arms": [{"name": "a"}, {"name": "b"}],
            "criteria": {"primary": {"min_improvement": 0.02, "relative": True}},
            "minimum_detectable_effect": 0.05,
            "mde_relative": True,
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["criteria"]["primary"] == {"metric": "reward", "min_improvement": 0.02, "relative": True}
    assert (body["min_sample_size"], body["minimum_detectable_effect"], body["mde_relative"]) == (None, 0.05, True)
    client.post("/v1/experiments/crit/start")
    guardrails = [{"metric": "error", "max_increase": 0.01}]
    patched = client.patch("/v1/experiments/crit", json={"criteria": {"guardrails": guardrails}, "min_sample_size": 50})
    assert patched.status_code == 200, patched.text
    read = client.get("/v1/experiments/crit").json()
    assert read["criteria"]["guardrails"][0]["max_increase"] == 0.01 and read["min_sample_size"] == 50
    cleared = client.patch("/v1/experiments/crit", json={"criteria": None}).json()
    assert cleared["criteria"] is None
    report = client.get("/v1/experiments/crit/report").json()
    assert report["health"]["sample_size"]["configured"] is True  # min_sample_size and the MDE are kept
    assert report["guardrails"] == []


def test_a_metric_named_reward_is_left_out_with_a_note(client):
    started(client, "named")
    drive(client, "named", 20, np.random.default_rng(2), lambda a, r: 1.0, lambda a, r: {"reward": 1.0, "cost": 2.0})
    response = client.get("/v1/experiments/named/report")
    assert response.status_code == 200, response.text[:500]
    report = response.json()
    assert [m["name"] for m in report["metrics"]] == ["cost"]
    assert any("'reward' is left out" in note for note in report["notes"])


def test_without_sticky_units_the_sample_ratio_check_counts_decisions(client):
    started(client, "loose", sticky=False, policy={"kind": "fixed"})
    rng = np.random.default_rng(8)
    sent = drive(client, "loose", 200, rng, lambda a, r: 1.0) + drive(client, "loose", 200, rng, lambda a, r: 0.0)
    report = client.get("/v1/experiments/loose/report").json()
    assert [a["units"] for a in report["primary"]["arms"]] == [0, 0]
    assert report["health"]["srm"]["observed"] == [len(v) for v in by_arm(sent, ("a", "b")).values()]


def test_the_always_valid_p_value_never_rises_between_reads_and_survives_a_restart(database_url, make_app):
    """Issue 14: the mSPRT was computed one look at a time, so the always-valid p shown could rise."""
    app = make_app()
    with api_client(app) as client:
        started(
            client, "peek", arms=[{"name": "a"}, {"name": "b"}], policy={"kind": "fixed"}, level=0.9,
            correction="bonferroni", sequential_tuning_n=20_000,
        )  # fmt: skip
        rng = np.random.default_rng(3)
        drive(client, "peek", 800, rng, lambda arm, r: float(r.random() < (0.3 if arm == "a" else 0.4)))
        first = _comparison(client.get("/v1/experiments/peek/report").json()["primary"], "b")
        # Then b is no better: this look's evidence weakens, the figures shown keep what was seen.
        drive(client, "peek", 3_000, rng, lambda arm, r: float(r.random() < 0.3), first_unit=800)
        second = _comparison(client.get("/v1/experiments/peek/report").json()["primary"], "b")
    assert first["looks"] == 1 and second["looks"] == 2
    assert first["always_valid_p_value"] == first["always_valid_p_this_look"]
    assert second["always_valid_p_this_look"] > first["always_valid_p_this_look"]
    assert second["always_valid_p_value"] == pytest.approx(first["always_valid_p_value"], rel=1e-12)
    low, high = second["confidence_sequence"]
    assert low == pytest.approx(max(first["confidence_sequence"][0], second["confidence_sequence_this_look"][0]))
    assert high == pytest.approx(min(first["confidence_sequence"][1], second["confidence_sequence_this_look"][1]))
    stored = read_db(database_url, "SELECT metric, arm, looks FROM sequential_looks")
    assert sorted(stored) == [("reward", "b", 2)]
    with api_client(make_app()) as client:  # a new process reads the looks the old one stored
        report = client.get("/v1/experiments/peek/report").json()
        text_report = client.get("/v1/experiments/peek/report?format=text").text
    third = _comparison(report["primary"], "b")
    assert third["looks"] == 3 and third["always_valid_p_value"] <= second["always_valid_p_value"]
    # The settings are the experiment's, in the JSON and in the text header.
    assert report["level"] == 0.9 and report["correction"] == "bonferroni"
    assert report["sequential"]["tuning_n"] == 20_000
    assert "level 90%" in text_report and "Comparisons: bonferroni correction" in text_report
    assert "mSPRT tuned for 20,000 observations per arm" in text_report


def test_range_and_segment_reports_never_ship(client):
    """Their figures are not looks: trying ranges or segment values until one ships would be peeking."""
    started(client, "clear", arms=[{"name": "a"}, {"name": "b"}], policy={"kind": "fixed"})
    rng = np.random.default_rng(9)
    attributes = lambda i, r: {"plan": "free" if i % 2 else "pro"}  # noqa: E731
    reward = lambda arm, r: float(r.random() < (0.2 if arm == "a" else 0.5))  # noqa: E731
    drive(client, "clear", 1_500, rng, reward, None, attributes)
    whole = client.get("/v1/experiments/clear/report").json()["recommendation"]
    assert whole["action"] == "ship" and whole["arm"] == "b"
    ranged = client.get("/v1/experiments/clear/report", params={"from": "1970-01-01"}).json()["recommendation"]
    segments = client.get("/v1/experiments/clear/report", params={"segment": "plan"}).json()["segments"]
    for rec in (ranged, *(s["report"]["recommendation"] for s in segments)):
        assert rec["action"] == "keep_running" and rec["arm"] is None, rec
        assert "is not a decision" in rec["reason"] and "on its own it would ship b" in rec["reason"]


def test_changing_the_level_or_the_tuning_starts_the_running_figures_afresh(client):
    """A minimum over looks at several levels or mixtures is no always-valid p: the looks restart."""
    started(client, "tune", arms=[{"name": "a"}, {"name": "b"}], policy={"kind": "fixed"}, level=0.8)
    drive(
        client, "tune", 600, np.random.default_rng(4), lambda arm, r: float(r.random() < (0.3 if arm == "a" else 0.4))
    )
    for _ in range(2):
        at_80 = _comparison(client.get("/v1/experiments/tune/report").json()["primary"], "b")
    assert at_80["looks"] == 2
    for change in ({"level": 0.999}, {"sequential_tuning_n": 100}):
        assert client.patch("/v1/experiments/tune", json=change).status_code == 200
        fresh = _comparison(client.get("/v1/experiments/tune/report").json()["primary"], "b")
        assert fresh["looks"] == 1
        assert fresh["always_valid_p_value"] == fresh["always_valid_p_this_look"]
        assert fresh["confidence_sequence"] == fresh["confidence_sequence_this_look"]
    # The 99.9% sequence is wider than the 80% one it replaced, as a sequence at that level must be.
    assert fresh["confidence_sequence"][0] < at_80["confidence_sequence"][0]
