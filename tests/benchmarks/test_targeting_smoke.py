"""Smoke test of the targeting benchmark: a tiny run prints a figure per rule and the ratios (no timing asserts)."""

import re

from benchmarks.targeting import main


def test_a_tiny_run_prints_every_figure(capsys):
    figures = main(["--number", "200", "--repeat", "1"])
    out = capsys.readouterr().out
    assert set(figures) == {"flat", "nested", "before"} and all(ns > 0 for ns in figures.values())
    for name in figures:
        assert re.search(rf"{name}: +[\d.]+ ns per match", out), out
    assert re.search(r"nested / flat: +[\d.]+", out) and re.search(r"flat / before: +[\d.]+", out), out
