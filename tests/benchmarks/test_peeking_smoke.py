"""Smoke test of the peeking benchmark: a tiny run prints both scenarios' shares under both rules."""

import re

from benchmarks.peeking import horizon, main


def test_a_tiny_run_prints_both_scenarios(capsys):
    outcomes = main(["--replicates", "4", "--every", "1200", "--seed", "3"])
    out = capsys.readouterr().out
    assert set(outcomes) == {"null", "alternative"}
    for outcome in outcomes.values():
        assert outcome.replicates == 4 and 0 <= outcome.ships <= 4 and 0 <= outcome.old_rule_ships <= 4
        assert outcome.looks == -(-4 * 2 * horizon() // 1200)  # reads to 4x the horizon (both arms)
    assert f"planned horizon {horizon()} per arm" in out
    assert len(re.findall(r"ships, always-valid rule \(this report\): +[\d.]+% \[", out)) == 2, out
    assert len(re.findall(r"ships, old fixed-horizon rule: +[\d.]+% \[", out)) == 2, out
