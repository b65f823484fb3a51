"""False ships and power under continuous monitoring: the report's recommendation read after every batch.

    python -m benchmarks.peeking
    python -m benchmarks.peeking --replicates 2000 --seed 7

An analyst reads the report every `--every` units (half to each arm of a 50/50 two-arm
experiment with a 0/1 reward) from the first batch to 4x the planned horizon, and ships the first
time the recommendation says `ship`, whatever it said before (a `stop_no_winner` does not stop
them: the worst case). The planned horizon is the power calculation for the minimum detectable
effect at alpha = 5% and 80% power. Every look goes through the real report builder, with the
always-valid figures of the earlier looks carried as the service stores them (running minimum
p-value, running intersection of the confidence sequences).

Printed per scenario (null: no difference; alternative: the minimum detectable effect):
the share of replicates that shipped B (false ships under the null, power under the
alternative), with a 95% binomial interval, and, for comparison in the same run, the rule this
project used before (ship on the fixed-horizon p once the horizon is reached) read the same way.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import msgspec
import numpy as np
from scipy import stats as sps

from bandit_service.core.looks import SequentialLook, merge_looks
from bandit_service.core.reporting import Report, ReportInput, build_report
from bandit_service.services.reports import this_look
from policies.power import sample_size_proportions
from policies.stats import StatsArray

__all__ = ["Outcome", "horizon", "main", "monitor", "two_arm_input"]

BASELINE = 0.20
MDE = 0.05
ALPHA = 0.05


class Outcome(msgspec.Struct, frozen=True):
    """Shares of replicates that shipped B under the new rule and under the old fixed-horizon rule."""

    replicates: int
    looks: int
    ships: int
    old_rule_ships: int

    @property
    def rate(self) -> float:
        """Share of replicates that shipped under the report's rule."""
        return self.ships / self.replicates

    @property
    def old_rate(self) -> float:
        """Share that would have shipped on the fixed-horizon p after the horizon (the old rule)."""
        return self.old_rule_ships / self.replicates


def horizon() -> int:
    """Per-arm observations of the planned horizon: the power calculation for MDE at alpha 5%, power 80%."""
    return sample_size_proportions(BASELINE, MDE, alpha=ALPHA, power=0.8, arms=2).treatment


def two_arm_input(successes: np.ndarray, n: int, planned: int, looks: tuple[SequentialLook, ...]) -> ReportInput:
    """A 50/50 two-arm experiment after n units per arm, one weights period, every unit rewarded."""
    stats = StatsArray.from_counts(successes, [n, n])
    counts = (n, n)
    return ReportInput(
        arms=("A", "B"),
        reward="bernoulli",
        weights=(0.5, 0.5),
        units=counts,
        trials=counts,
        rewarded=counts,
        stats=stats,
        period_stats=StatsArray(stats.n[None, :], stats.total[None, :], stats.total_sq[None, :]),
        period_assigned=((float(n), float(n)),),
        period_weights=((0.5, 0.5),),
        min_sample_size=planned,
        seed=1,
        draws=1,
        looks=looks,
    )


def _old_rule_ships(report: Report, n_per_arm: int, planned: int) -> bool:
    c = report.primary.comparisons[0]
    return n_per_arm >= planned and c.difference > 0 and c.p_value < ALPHA


def monitor(
    effect: float,
    replicates: int,
    rng: np.random.Generator,
    every: int = 400,
    progress: Callable[[int], None] | None = None,
) -> Outcome:
    """Simulate `replicates` experiments read every `every` units to 4x the horizon; count ships of B."""
    planned = horizon()
    per_look = every // 2
    looks = int(np.ceil(4 * planned / per_look))
    rates = np.array([BASELINE, BASELINE + effect])
    ships = old_ships = 0
    for r in range(replicates):
        successes = rng.binomial(per_look, rates, size=(looks, 2)).cumsum(axis=0)
        stored: tuple[SequentialLook, ...] = ()
        shipped = old_shipped = False
        for t in range(looks):
            n = per_look * (t + 1)
            report = build_report(two_arm_input(successes[t], n, planned, stored))
            stored = merge_looks(stored, this_look(report, float(t)))
            shipped = shipped or report.recommendation.action == "ship"
            old_shipped = old_shipped or _old_rule_ships(report, n, planned)
            if shipped and old_shipped:
                break
        ships += shipped
        old_ships += old_shipped
        if progress is not None:
            progress(r + 1)
    return Outcome(replicates=replicates, looks=looks, ships=ships, old_rule_ships=old_ships)


def _interval(k: int, n: int) -> str:
    lo, hi = sps.binomtest(k, n).proportion_ci(0.95, method="wilson")
    return f"[{lo:.1%}, {hi:.1%}]"


def main(argv: list[str] | None = None) -> dict[str, Outcome]:
    """Run both scenarios, print the shares and return the outcomes by scenario ("null", "alternative")."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicates", type=int, default=1_000)
    parser.add_argument("--every", type=int, default=400, help="units between two reads of the report")
    parser.add_argument("--seed", type=int, default=20261201)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print(f"baseline {BASELINE}, MDE {MDE}, alpha {ALPHA}: planned horizon {horizon()} per arm")
    outcomes = {}
    for key, name, effect in (("null", "null (no difference)", 0.0), ("alternative", f"alternative (+{MDE})", MDE)):
        start = time.perf_counter()
        out = outcomes[key] = monitor(effect, args.replicates, rng, args.every)
        took = time.perf_counter() - start
        print(
            f"{name}: {out.looks} looks of {args.every} units, {out.replicates} replicates ({took:.0f} s)\n"
            f"  ships, always-valid rule (this report): {out.rate:.2%} {_interval(out.ships, out.replicates)}\n"
            f"  ships, old fixed-horizon rule:          {out.old_rate:.2%} "
            f"{_interval(out.old_rule_ships, out.replicates)}"
        )
    return outcomes


if __name__ == "__main__":
    main()
