"""Why the weights moved: posterior summaries of each weights-history row and its one-line reason."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import integrate, special
from scipy import stats as sps

from bandit_service.core.model import WeightsReason, WeightsRecord
from bandit_service.core.weights_story import DRAWS, EXACT_ARMS, explain, summarize
from policies import ArmStats
from tests.service.api import decide, reward, started
from tests.service.test_cli_commands import invoke

AB = ("a", "b")


def row(
    version: int,
    reason: WeightsReason,
    weights: tuple[float, ...],
    stats: tuple[ArmStats, ...],
    seed: int | None = 7,
) -> WeightsRecord:
    return WeightsRecord(
        experiment_id=1,
        version=version,
        created_at=1_000.0 * version,
        weights=weights,
        stats=stats,
        reason=reason,
        seed=seed,
        churn=None,
    )


def rate(n: int, successes: int) -> ArmStats:
    """0/1 rewards: n trials, `successes` of them 1."""
    return ArmStats(n, successes, successes)


def normal(n: int, mean: float, sd: float) -> ArmStats:
    """Continuous rewards with this sample mean and (population) standard deviation."""
    return ArmStats(n, n * mean, n * (sd * sd + mean * mean))


def beta_b_beats_a(a_a: int, b_a: int, a_b: int, b_b: int) -> float:
    """P(X_b > X_a), X ~ Beta, integer a_b: the closed form of Miller (2015), "Formulas for Bayesian A/B testing"."""
    terms = [
        special.betaln(a_a + i, b_a + b_b) - math.log(b_b + i) - special.betaln(1 + i, b_b) - special.betaln(a_a, b_a)
        for i in range(a_b)
    ]
    return float(np.exp(terms).sum())


def five_arm_prob_best(alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """P(arm i best) = integral f_i(x) prod_{j != i} F_j(x) dx by adaptive quadrature (scipy)."""
    out = []
    for i in range(alpha.size):
        others = [j for j in range(alpha.size) if j != i]

        def f(x: float, i: int = i, others: list[int] = others) -> float:
            return float(sps.beta.pdf(x, alpha[i], beta[i]) * np.prod(sps.beta.cdf(x, alpha[others], beta[others])))

        out.append(integrate.quad(f, 0.0, 1.0, epsabs=1e-10, limit=200)[0])
    return np.array(out)


# --- posterior summaries -------------------------------------------------------------------------


def test_beta_summary_matches_scipy_and_the_closed_form():
    a, b = rate(1_000, 100), rate(1_200, 141)
    arms = summarize((a, b), AB, "bernoulli")
    p_b = beta_b_beats_a(101, 901, 142, 1_060)
    assert [s.n for s in arms] == [1_000, 1_200]
    assert arms[1].mean == pytest.approx(142 / 1_202, rel=1e-12)
    assert arms[1].interval == pytest.approx(sps.beta.ppf([0.025, 0.975], 142, 1_060), rel=1e-9)
    assert arms[1].prob_best == pytest.approx(p_b, abs=1e-9)
    assert arms[0].prob_best == pytest.approx(1.0 - p_b, abs=1e-9)


def test_beta_prob_best_beyond_the_exact_limit_is_monte_carlo_within_its_standard_error():
    k = EXACT_ARMS + 1
    stats = tuple(rate(400, 40 + 3 * i) for i in range(k))
    arms = summarize(stats, [f"arm{i}" for i in range(k)], "bernoulli")
    alpha = np.array([1.0 + s.total for s in stats])
    beta = np.array([1.0 + s.n - s.total for s in stats])
    truth = five_arm_prob_best(alpha, beta)
    # Tolerance from the true probability: 5 standard errors of a share of DRAWS draws.
    tolerance = 5 * np.sqrt(truth * (1 - truth) / DRAWS) + 1e-9
    assert np.all(np.abs([s.prob_best for s in arms] - truth) <= tolerance)
    assert sum(s.prob_best for s in arms) == pytest.approx(1.0)


def test_continuous_summary_matches_the_normal_approximation_and_quadrature():
    a, b = normal(5_000, 10.0, 4.0), normal(5_000, 10.15, 4.0)
    arms = summarize((a, b), AB, "continuous")
    # With 5,000 observations the Student-t posterior is the frequentist normal interval.
    se = 4.0 / math.sqrt(5_000)
    assert arms[1].mean == pytest.approx(10.15, abs=1e-4)
    assert arms[1].interval == pytest.approx((10.15 - 1.96 * se, 10.15 + 1.96 * se), abs=2e-3)
    truth = float(sps.norm.cdf(0.15 / (se * math.sqrt(2))))  # P(mean_b > mean_a)
    assert arms[1].prob_best == pytest.approx(truth, abs=5 * math.sqrt(truth * (1 - truth) / DRAWS))


def test_no_stats_read_as_the_prior():
    for stats in ((), (ArmStats(), ArmStats(), ArmStats())):
        arms = summarize(stats, ("a", "b", "c"), "bernoulli")
        assert [s.n for s in arms] == [0, 0, 0]
        assert all(s.mean == 0.5 and s.interval == pytest.approx((0.025, 0.975)) for s in arms)
        assert [s.prob_best for s in arms] == pytest.approx([1 / 3] * 3, abs=1e-9)


def test_summaries_are_deterministic_and_depend_on_the_stats_only():
    stats = (normal(50, 1.0, 2.0), normal(60, 1.3, 2.0), normal(40, 0.9, 2.0))
    first = summarize(stats, ("a", "b", "c"), "continuous")
    assert summarize(stats, ("a", "b", "c"), "continuous") == first
    rows = [row(2, "schedule", (0.2, 0.5, 0.3), stats, seed=11), row(3, "schedule", (0.2, 0.5, 0.3), stats, seed=99)]
    explained = explain(rows, ("a", "b", "c"), "continuous")
    assert explained[0].arms == explained[1].arms == first


@pytest.mark.parametrize(
    ("level", "arms", "message"),
    [
        pytest.param(1.0, AB, "level: must lie strictly between 0 and 1", id="level-1"),
        pytest.param(0.0, AB, "level: must lie strictly between 0 and 1", id="level-0"),
        pytest.param(0.95, (), "arms: the arm list is empty", id="no-arms"),
    ],
)
def test_bad_arguments_are_refused(level, arms, message):
    with pytest.raises(ValueError, match=message):
        summarize((), arms, "bernoulli", level)


# --- reasons -------------------------------------------------------------------------------------

START = row(1, "start", (0.5, 0.5), (ArmStats(), ArmStats()), seed=None)


def test_start_says_no_data_yet():
    (e,) = explain([START], AB, "bernoulli")
    assert e.because == "initial weights from the policy (no data yet)"
    assert (e.version, e.reason, e.weights, e.created_at) == (1, "start", (0.5, 0.5), 1_000.0)


def test_a_schedule_reweight_names_the_arm_whose_weight_moved_and_its_prob_best():
    before = row(2, "schedule", (0.5, 0.5), (rate(300, 30), rate(300, 33)))
    after = row(3, "schedule", (0.18, 0.82), (rate(900, 90), rate(900, 112)))
    e = explain([before, after], AB, "bernoulli")[1]
    p0 = beta_b_beats_a(31, 271, 34, 268)
    p1 = beta_b_beats_a(91, 811, 113, 789)
    assert p0 < p1 and f"{p0:.2f}" != f"{p1:.2f}"  # the data moves b's P(best) visibly
    # a and b moved as far (0.32): the arm that gained is named.
    assert (
        e.because
        == f"b's P(best) rose from {p0:.2f} to {p1:.2f} after 1,200 new trials; its weight went from 0.50 to 0.82"
    )


def test_the_arm_that_moved_most_is_named_with_thousands_separators():
    abc = ("a", "b", "c")
    before = row(5, "schedule", (0.3, 0.4, 0.3), (rate(1_000, 100), rate(1_000, 110), rate(1_000, 95)))
    after = row(6, "schedule", (0.1, 0.8, 0.1), (rate(2_000, 200), rate(2_300, 275), rate(2_000, 190)))
    e = explain([after], abc, "bernoulli", previous=before)[0]
    p0 = summarize(before.stats, abc, "bernoulli")[1].prob_best
    p1 = summarize(after.stats, abc, "bernoulli")[1].prob_best
    assert (
        e.because
        == f"b's P(best) rose from {p0:.2f} to {p1:.2f} after 3,300 new trials; its weight went from 0.40 to 0.80"
    )


def test_weights_moved_on_the_means_when_prob_best_did_not_move():
    # Rewards so noisy that P(best) stays near 0.50 while the observed leader changes (epsilon-greedy
    # follows it). It crosses a rounding step (0.4951 -> 0.4949): not "fell from 0.50 to 0.49".
    before = row(2, "schedule", (0.95, 0.05), (normal(100, 0.112, 1_000.0), normal(100, 0.098, 1_000.0)))
    after = row(3, "schedule", (0.05, 0.95), (normal(110, 0.107, 1_000.0), normal(110, 0.115, 1_000.0)))
    old, new = explain([before, after], AB, "continuous")
    assert abs(old.arms[1].prob_best - new.arms[1].prob_best) < 0.01
    assert (
        new.because
        == "b now leads on mean reward (0.115 vs 0.107 for a) after 20 new trials; b's weight went from 0.05 to 0.95"
    )


def test_a_weight_move_without_a_new_leader_says_prob_best_stayed():
    before = row(2, "schedule", (0.6, 0.4), (normal(100, 0.5, 1_000.0), normal(100, 0.4, 1_000.0)))
    after = row(3, "schedule", (0.7, 0.3), (normal(100, 0.5, 1_000.0), normal(100, 0.4, 1_000.0)))
    e = explain([before, after], AB, "continuous")[1]
    p = e.arms[0].prob_best
    assert e.because == f"a's weight went from 0.60 to 0.70 with no new trials; its P(best) stayed at {p:.2f}"


def test_unchanged_weights_say_no_change():
    before = row(2, "schedule", (0.5, 0.5), (rate(10, 1), rate(10, 1)))
    after = row(3, "schedule", (0.501, 0.499), (rate(11, 1), rate(10, 1)))
    e = explain([after], AB, "bernoulli", previous=before)[0]
    lead = max(e.arms, key=lambda s: s.prob_best)
    assert (
        e.because
        == f"no change: the weights held after 1 new trial; {lead.arm} leads with P(best) {lead.prob_best:.2f}"
    )


def test_a_first_row_without_its_predecessor_states_the_data():
    e = explain([row(9, "schedule", (0.3, 0.7), (rate(600, 60), rate(600, 80)))], AB, "bernoulli")[0]
    assert e.because == f"the policy's weights from 1,200 trials; b leads with P(best) {e.arms[1].prob_best:.2f}"


def test_manual_shift_and_on_request_reasons():
    stats = (rate(500, 50), rate(500, 60))
    history = [
        row(2, "schedule", (0.5, 0.5), stats),
        row(3, "manual", (0.3, 0.7), stats, seed=None),  # PUT .../weights
        row(4, "manual", (0.3, 0.7), stats, seed=None),
        row(5, "shift", (0.1, 0.9), stats, seed=None),
        row(6, "manual", (0.25, 0.75), (rate(600, 60), rate(600, 75))),  # POST .../reweight
    ]
    p0 = explain(history, AB, "bernoulli")
    assert [e.because for e in p0[1:4]] == [
        "set by an operator: b's weight went from 0.50 to 0.70",
        "set by an operator (weights unchanged)",
        "shifted by a completion step or an automation rule, not the policy: b's weight went from 0.70 to 0.90",
    ]
    a0, a1 = p0[3].arms[0].prob_best, p0[4].arms[0].prob_best
    assert p0[4].because == (
        f"reweighted on request: a's P(best) {'rose' if a1 > a0 else 'fell'} from {a0:.2f} to {a1:.2f} "
        "after 200 new trials; its weight went from 0.10 to 0.25"
    )


def test_a_page_with_its_predecessor_reads_like_the_whole_history():
    history = [
        START,
        row(2, "schedule", (0.4, 0.6), (rate(100, 9), rate(100, 14))),
        row(3, "schedule", (0.2, 0.8), (rate(250, 22), rate(260, 38))),
        row(4, "manual", (0.5, 0.5), (rate(250, 22), rate(260, 38)), seed=None),
    ]
    whole = explain(history, AB, "bernoulli")
    assert explain(history[2:], AB, "bernoulli", previous=history[1]) == whole[2:]
    assert explain(history, AB, "bernoulli") == whole  # deterministic


# --- the API and the CLI -------------------------------------------------------------------------


def test_the_weights_history_explains_every_entry_of_a_page(client):
    started(client, arms=[{"name": "a"}, {"name": "b"}])
    for i in range(40):
        d = decide(client, unit=f"u{i}")
        assert reward(client, d["decision_id"], 1 if d["arm"] == "b" or i % 4 == 0 else 0).status_code == 200
    answer = client.post("/v1/experiments/exp/reweight")
    assert answer.status_code == 200, answer.text
    assert answer.json()["because"].startswith("reweighted on request: ")
    whole = client.get("/v1/experiments/exp/weights").json()["history"]
    page = client.get("/v1/experiments/exp/weights", params={"limit": 1}).json()["history"]
    assert [h["because"] for h in whole] == [whole[0]["because"], answer.json()["because"]]
    assert whole[0]["because"] == "initial weights from the policy (no data yet)"
    assert page == whole[-1:] == [answer.json()]  # the page's first entry is explained against the row before it
    arms = page[0]["arms"]
    stats = page[0]["stats"]
    for name in ("a", "b"):
        n, s = stats[name]["n"], stats[name]["total"]
        assert arms[name]["n"] == n and arms[name]["mean"] == pytest.approx((1 + s) / (2 + n))
        lo, hi = sps.beta.ppf([0.025, 0.975], 1 + s, 1 + n - s)
        assert arms[name]["interval"] == pytest.approx([lo, hi])
    p_b = beta_b_beats_a(
        1 + int(stats["a"]["total"]), 1 + int(stats["a"]["n"] - stats["a"]["total"]),
        1 + int(stats["b"]["total"]), 1 + int(stats["b"]["n"] - stats["b"]["total"]),
    )  # fmt: skip
    assert arms["b"]["prob_best"] == pytest.approx(p_b, abs=1e-9)


def test_manual_weights_answer_with_their_reason(client):
    started(client, key="fixed", policy={"kind": "fixed"})
    answer = client.put("/v1/experiments/fixed/weights", json={"weights": {"a": 0.3, "b": 0.7}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["because"] == "set by an operator: b's weight went from 0.50 to 0.70"
    assert set(answer.json()["arms"]) == {"a", "b"}


def test_the_cli_shows_why_and_the_json_keeps_every_field(client):
    started(client, key="fixed", policy={"kind": "fixed"})
    client.put("/v1/experiments/fixed/weights", json={"weights": {"a": 0.3, "b": 0.7}})
    shown = invoke(["weights", "fixed"], client, env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.stderr
    assert "why" in shown.stdout and "set by an operator: b's weight went from 0.50 to 0.70" in shown.stdout
    rows = json.loads(invoke(["weights", "fixed", "--json"], client).stdout)
    assert [r["because"] for r in rows] == [
        "initial weights from the policy (no data yet)",
        "set by an operator: b's weight went from 0.50 to 0.70",
    ]
    assert set(rows[-1]["arms"]["b"]) == {"n", "mean", "interval", "prob_best"}


def test_the_report_shows_the_latest_moves_as_the_weights_history_explains_them(client):
    started(client, key="fixed", arms=[{"name": "a"}, {"name": "b"}], policy={"kind": "fixed"})
    for i in range(40):
        d = decide(client, key="fixed", unit=f"u{i}")
        assert reward(client, d["decision_id"], 1 if d["arm"] == "b" or i % 4 == 0 else 0).status_code == 200
    for b in (0.6, 0.7, 0.5, 0.9, 0.6, 0.8):  # seven rows in all: the report shows the latest five
        moved = client.put("/v1/experiments/fixed/weights", json={"weights": {"a": 1 - b, "b": b}})
        assert moved.status_code == 200, moved.text
    history = client.get("/v1/experiments/fixed/weights").json()["history"]
    shown = client.get("/v1/experiments/fixed/report").json()["weights_history"]
    assert [h["reason"] for h in history] == ["start", *["manual"] * 6]
    assert [s["version"] for s in shown] == [h["version"] for h in history[-5:]]
    for step, row in zip(shown, history[-5:], strict=True):
        assert step["because"] == row["because"] and step["reason"] == row["reason"]
        assert step["weights"] == pytest.approx([row["weights"]["a"], row["weights"]["b"]])
    assert shown[-1]["because"] == "set by an operator: b's weight went from 0.60 to 0.80"
    text = client.get("/v1/experiments/fixed/report?format=text").text
    assert "== why the weights moved (latest 5) ==" in text
    assert f"v{history[-1]['version']} " in text and "manual: a 0.20 b 0.80; set by an operator" in text
    window = client.get("/v1/experiments/fixed/report", params={"from": "1970-01-01"}).json()
    assert window["weights_history"] == []  # a range report counts the range's trials; the history is the whole's
