"""Reports over a range of UTC days (`from`, `to`) and the daily series (`/timeseries`), end to end.

Traffic on two days through the API with the fake clock; each figure is checked against what was
sent (numpy counts and means, statsmodels' Wilson interval, scipy's t interval).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint

from bandit_service.cli import cli
from bandit_service.cli.context import CliState
from bandit_service.client.manage import AsyncManagement, BanditError, Management
from bandit_service.core.reporting.timeseries import CSV_COLUMNS
from bandit_service.core.reporting.values import Report
from tests.service.api import started
from tests.service.traffic import Sent, drive, send_rewards

ARMS = ("a", "b")
RATES = [{"a": 0.3, "b": 0.5}, {"a": 0.6, "b": 0.4}]  # day A, day B
DAY_A, DAY_B = "2027-01-15", "2027-01-16"  # the fake clock starts at 1.8e9 s: 2027-01-15 08:00 UTC


def two_days(client, clock) -> tuple[list[Sent], list[Sent]]:
    """300 units on day A (half rewarded on day B), then 200 on day B; a latency metric on every reward."""
    started(client, "win", policy={"kind": "fixed"}, reward_window_s=3 * 86_400)
    rng = np.random.default_rng(20270115)

    def reward_of(rates):
        return lambda arm, r: float(r.random() < rates[arm])

    def latency(arm, r):
        return {"latency_ms": float(r.lognormal(4.0, 0.5))}

    early = drive(client, "win", 300, rng, reward_of(RATES[0]), latency, rewarded=lambda arm, r: r.random() < 0.5)
    clock.advance(86_400)
    late = [s for s in early if s.reward is None]
    values = [float(rng.random() < RATES[0][s.arm]) for s in late]
    send_rewards(client, [{"decision_id": s.decision_id, "reward": v} for s, v in zip(late, values, strict=True)])
    day_a = [s for s in early if s.reward is not None] + [
        Sent(decision_id=s.decision_id, unit=s.unit, arm=s.arm, attributes=s.attributes, reward=v, metrics={})
        for s, v in zip(late, values, strict=True)
    ]
    day_b = drive(client, "win", 200, rng, reward_of(RATES[1]), latency, first_unit=300)
    return day_a, day_b


@pytest.fixture
def traffic(client, clock):
    return client, *two_days(client, clock)


def _arm(metric, name):
    return next(a for a in metric["arms"] if a["arm"] == name)


def _rewards(sent, arm):
    return np.array([s.reward for s in sent if s.arm == arm])


def test_a_report_over_one_day_counts_only_the_trials_opened_that_day(traffic):
    client, day_a, day_b = traffic
    for sent, (since, until) in ((day_a, (DAY_A, DAY_A)), (day_b, (DAY_B, DAY_B))):
        response = client.get(f"/v1/experiments/win/report?from={since}&to={until}")
        assert response.status_code == 200, response.text[:500]
        report = response.json()
        assert report["window"] == [since, until]
        assert f"figures cover trials opened from {since} to {until} (UTC days)" in report["notes"]
        for arm in ARMS:
            values = _rewards(sent, arm)
            figures = _arm(report["primary"], arm)
            assert (figures["trials"], figures["n"]) == (values.size, values.size)
            assert figures["mean"] == pytest.approx(values.mean(), rel=1e-12)  # rewarded the next day too
            lo, hi = proportion_confint(values.sum(), values.size, alpha=0.05, method="wilson")
            assert figures["confidence_interval"] == pytest.approx([lo, hi], rel=1e-9)
    whole = client.get("/v1/experiments/win/report").json()
    assert whole["window"] is None
    assert [_arm(whole["primary"], a)["trials"] for a in ARMS] == [
        sum(1 for s in day_a + day_b if s.arm == a) for a in ARMS
    ]
    # An open end: from the experiment's first day, or up to today (the clock's day B).
    assert client.get(f"/v1/experiments/win/report?from={DAY_B}").json()["window"] == [DAY_B, DAY_B]
    assert client.get(f"/v1/experiments/win/report?to={DAY_A}").json()["window"] == [DAY_A, DAY_A]
    text = client.get(f"/v1/experiments/win/report?from={DAY_A}&to={DAY_A}&format=text").text
    assert f"Trials opened from {DAY_A} to {DAY_A} (UTC days)" in text.splitlines()[1]
    empty = client.get("/v1/experiments/win/report?from=2027-02-01").json()
    assert "no decisions logged yet: every figure is empty" in empty["notes"]


def test_a_segmented_report_over_a_window_names_it_in_every_segment(traffic):
    client, day_a, _ = traffic
    report = client.get(f"/v1/experiments/win/report?segment=none&to={DAY_A}").json()
    [entry] = report["segments"]  # no decision has the attribute: one segment, "(none)"
    assert entry["report"]["window"] == [DAY_A, DAY_A]
    assert sum(a["trials"] for a in entry["report"]["primary"]["arms"]) == len(day_a)


def test_the_daily_series_sums_to_the_whole_report_and_matches_each_day(traffic):
    client, day_a, day_b = traffic
    response = client.get("/v1/experiments/win/timeseries")
    assert response.status_code == 200, response.text[:500]
    series = response.json()
    assert (series["arms"], series["days"], series["window"], series["level"]) == (
        list(ARMS),
        [DAY_A, DAY_B],
        None,
        0.95,
    )
    rows = {(r["day"], r["arm"]): r for r in series["primary"]}
    for day, sent in ((DAY_A, day_a), (DAY_B, day_b)):
        for arm in ARMS:
            values, row = _rewards(sent, arm), rows[(day, arm)]
            assert (row["trials"], row["units"], row["exposures"], row["rewarded"], row["n"]) == (values.size,) * 5
            assert row["mean"] == pytest.approx(values.mean(), rel=1e-12)
            assert row["std_error"] == pytest.approx(values.std(ddof=1) / np.sqrt(values.size), rel=1e-9)
            lo, hi = proportion_confint(values.sum(), values.size, alpha=0.05, method="wilson")
            assert (row["lower"], row["upper"]) == pytest.approx((lo, hi), rel=1e-9)
    whole = client.get("/v1/experiments/win/report").json()
    for arm in ARMS:
        figures = _arm(whole["primary"], arm)
        assert sum(rows[(d, arm)]["trials"] for d in series["days"]) == figures["trials"]
        assert sum(rows[(d, arm)]["n"] for d in series["days"]) == figures["n"]
    # Latency: a continuous metric, Student t; only day A's first-day rewards carried it.
    latency = {(r["day"], r["arm"]): r for r in series["metrics"] if r["metric"] == "latency_ms"}
    for day, sent in ((DAY_A, day_a), (DAY_B, day_b)):
        for arm in ARMS:
            x = np.array([s.metrics["latency_ms"] for s in sent if s.arm == arm and s.metrics])
            row = latency[(day, arm)]
            half = sps.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
            assert row["n"] == x.size and row["mean"] == pytest.approx(x.mean(), rel=1e-12)
            assert (row["lower"], row["upper"]) == pytest.approx((x.mean() - half, x.mean() + half), rel=1e-9)
    one_day = client.get(f"/v1/experiments/win/timeseries?from={DAY_B}").json()
    assert one_day["days"] == [DAY_B] and one_day["window"] == [DAY_B, DAY_B]
    assert [r for r in one_day["primary"]] == [rows[(DAY_B, a)] for a in ARMS]


def test_the_csv_has_one_row_per_day_arm_and_metric(traffic):
    client, day_a, _ = traffic
    response = client.get(f"/v1/experiments/win/timeseries?to={DAY_A}&format=csv")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    body = [dict(zip(CSV_COLUMNS, r, strict=True)) for r in rows[1:]]
    assert [(r["day"], r["arm"], r["metric"]) for r in body] == [
        (DAY_A, "a", "reward"),
        (DAY_A, "b", "reward"),
        (DAY_A, "a", "latency_ms"),
        (DAY_A, "b", "latency_ms"),
    ]
    for r in body[:2]:
        values = _rewards(day_a, r["arm"])
        assert int(r["trials"]) == values.size and float(r["mean"]) == pytest.approx(values.mean(), rel=1e-12)
    assert body[2]["trials"] == "" and int(body[2]["n"]) > 0  # a metric row has no traffic columns


@pytest.mark.parametrize(
    ("query", "field", "detail"),
    [
        pytest.param("from=2027-13-01", "from", "'2027-13-01' is not a date", id="no-such-month"),
        pytest.param("to=20270115", "to", "is not a date (YYYY-MM-DD)", id="basic-format"),
        pytest.param("from=2027-W03-5", "from", "is not a date", id="week-date"),
        pytest.param("from=yesterday", "from", "is not a date", id="word"),
        pytest.param(f"from={DAY_B}&to={DAY_A}", "from", f"{DAY_B} is after to ({DAY_A})", id="from-after-to"),
    ],
)
@pytest.mark.parametrize("path", ["report", "timeseries"])
def test_bad_dates_are_problems_naming_the_parameter(client, path, query, field, detail):
    started(client, "win")
    response = client.get(f"/v1/experiments/win/{path}?{query}")
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["field"] == field and detail in problem["detail"]


def test_the_series_of_an_unknown_experiment_is_not_found(client):
    response = client.get("/v1/experiments/nope/timeseries")
    assert response.status_code == 404 and response.json()["field"] == "key"


def test_the_series_of_an_experiment_without_traffic_is_empty(client):
    started(client, "quiet")
    series = client.get("/v1/experiments/quiet/timeseries").json()
    assert (series["days"], series["primary"], series["metrics"]) == ([], [], [])
    assert client.get("/v1/experiments/quiet/timeseries?format=csv").text == ",".join(CSV_COLUMNS) + "\n"


def test_the_day_names_follow_utc_not_the_local_zone():
    # The fake clock's start, 1.8e9 s, is 2027-01-15 in UTC (and 2027-01-14 west of UTC-8).
    assert dt.datetime.fromtimestamp(1_800_000_000.0, dt.UTC).date().isoformat() == DAY_A


def test_windows_and_series_agree_on_the_real_databases(client, clock, database_url):
    day_a, day_b = two_days(client, clock)
    series = client.get("/v1/experiments/win/timeseries?format=json").json()
    rows = {(r["day"], r["arm"]): r for r in series["primary"]}
    for day, sent in ((DAY_A, day_a), (DAY_B, day_b)):
        report = client.get(f"/v1/experiments/win/report?from={day}&to={day}").json()
        for arm in ARMS:
            values = _rewards(sent, arm)
            assert _arm(report["primary"], arm)["trials"] == rows[(day, arm)]["trials"] == values.size
            assert _arm(report["primary"], arm)["mean"] == pytest.approx(values.mean(), rel=1e-12)
            assert rows[(day, arm)]["mean"] == pytest.approx(values.mean(), rel=1e-12)
    segmented = client.get(f"/v1/experiments/win/report?segment=none&from={DAY_B}").json()
    assert sum(a["trials"] for a in segmented["segments"][0]["report"]["primary"]["arms"]) == len(day_b)


def test_the_client_sends_the_range_as_dates_or_text(traffic):
    client, _, day_b = traffic
    manage = Management(client)
    typed = manage.report("win", since=dt.date(2027, 1, 16))
    assert isinstance(typed, Report) and typed.window == (DAY_B, DAY_B)
    assert sum(a.trials for a in typed.primary.arms) == len(day_b)
    assert manage.report_json("win", until=DAY_A)["window"] == [DAY_A, DAY_A]
    assert "Trials opened from" in manage.report_text("win", since=DAY_A, until=DAY_B)
    assert manage.segment_report("win", "none", until=DAY_A).segments[0].report.window == (DAY_A, DAY_A)
    assert manage.timeseries("win")["days"] == [DAY_A, DAY_B]
    assert manage.timeseries_csv("win", since=DAY_B).count("\n") == 1 + 2 * 2  # header, 2 arms x 2 metrics
    with pytest.raises(BanditError) as refused:
        manage.timeseries("win", since=DAY_B, until=DAY_A)
    assert (refused.value.status, refused.value.field) == (422, "from")

    async def scenario() -> tuple[object, object]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=client.headers) as http:
            aio = AsyncManagement(http)
            return await aio.timeseries("win", until=dt.date(2027, 1, 15)), await aio.report_json("win", since=DAY_B)

    series, report = client.blocking_portal.call(scenario)
    assert series["days"] == [DAY_A] and report["window"] == [DAY_B, DAY_B]  # type: ignore[index]


def test_the_cli_report_and_timeseries_take_from_and_to(traffic):
    client, _, _ = traffic

    def run(*args: str):
        env = {"BANDIT_API_KEY": None, "BANDIT_URL": None, "NO_COLOR": "1", "COLUMNS": "200"}
        return CliRunner().invoke(cli, list(args), obj=CliState(http=client), env=env)

    text = run("report", "win", "--from", DAY_A, "--to", DAY_A)
    assert text.exit_code == 0, text.stderr
    assert text.stdout.splitlines()[1] == f"Trials opened from {DAY_A} to {DAY_A} (UTC days)"
    assert json.loads(run("report", "win", "--to", DAY_A, "--json").stdout)["window"] == [DAY_A, DAY_A]
    table = run("timeseries", "win")
    assert table.exit_code == 0, table.stderr
    assert "2 days, UTC" in table.stdout and DAY_A in table.stdout and "latency_ms" in table.stdout
    assert sum(1 for line in table.stdout.splitlines() if DAY_B in line) == 4  # 2 arms x (reward, latency_ms)
    as_csv = run("timeseries", "win", "--to", DAY_A, "--csv").stdout
    assert as_csv.splitlines()[0] == ",".join(CSV_COLUMNS) and len(as_csv.splitlines()) == 5
    assert json.loads(run("timeseries", "win", "--from", DAY_B, "--json").stdout)["days"] == [DAY_B]
    bad = run("timeseries", "win", "--from", "2027-13-01")
    assert bad.exit_code == 2 and "--from" in bad.stderr
