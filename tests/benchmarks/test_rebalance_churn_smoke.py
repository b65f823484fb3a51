"""Smoke test of the rebalance churn benchmark: a row per scenario, and the plan moves about the least share."""

from benchmarks.rebalance_churn import SCENARIOS, main, measure


def test_the_table_has_a_row_per_scenario(capsys):
    assert main(["--units", "200"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + len(SCENARIOS)
    assert all(line.startswith(name) for line, name in zip(lines[1:], SCENARIOS, strict=True))


def test_the_plan_moves_about_the_least_share_where_the_hash_moves_more():
    periods, new = SCENARIOS["two periods 50/50, 90/10 -> 70/30"]
    m = measure(periods, new, 2_000)
    assert abs(m["plan"] - m["tv"]) < 4 * max(m["se"], 0.005)
    assert m["rendezvous"] > 0.15  # 0.2 expected
