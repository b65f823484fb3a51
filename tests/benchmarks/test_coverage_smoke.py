"""Smoke test of the coverage benchmark: a tiny run prints every figure (the exact ones are exact)."""

import re

from benchmarks.coverage import main


def test_a_tiny_run_prints_every_figure(capsys):
    figures = main(["--replicates", "20", "--runs", "500", "--seed", "3"])
    out = capsys.readouterr().out
    assert all(0.0 <= figures[k] <= 1.0 for k in ("headline", "pooled", "fieller", "fieller_delta"))
    # The exact grid does not depend on the seed: the figures the README quotes.
    assert round(figures["log_ratio_400"], 4) == 0.9538 and round(figures["delta_400"], 4) == 0.9401
    assert len(re.findall(r"exact: log-ratio [\d.]+%, delta method [\d.]+%", out)) == 2
    assert "IPW (Horvitz-Thompson) SE" in out and "trap (3 periods" in out
