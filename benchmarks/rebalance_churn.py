"""How many sticky units a manual rebalance moves: rendezvous recomputation against the least-churn plan.

    python -m benchmarks.rebalance_churn --units 20000

For each scenario, stored units get their arms as the service gives them (weighted rendezvous
hashing under the weights of their day, sticky through later changes); then the weights change
with `rebalance: true`. Printed per scenario: the total-variation distance between the stored
split and the new weights (the least share any reassignment must move), the share that
re-running `choose_arm` under the new weights would move, the share the plan of
`core/rebalance.py` moves, its binomial standard error, and the largest gap between the stored
split after the plan and the new weights.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

import numpy as np

from bandit_service.core.assignment import choose_arm
from bandit_service.core.rebalance import plan_rebalance

__all__ = ["SCENARIOS", "main", "measure"]

SALT = "5e1f0c3a9b7d4e2f8a6c1b0d3e5f7a9c"

SCENARIOS: dict[str, tuple[tuple[tuple[float, ...], ...], tuple[float, ...]]] = {
    # name: (weights of the periods in which equal numbers of new units arrived, new weights)
    "two arms 50/50 -> 60/40": (((0.5, 0.5),), (0.6, 0.4)),
    "three arms 1/3 each -> 50/25/25": (((1 / 3, 1 / 3, 1 / 3),), (0.5, 0.25, 0.25)),
    "four arms 25 each -> 40/30/20/10": (((0.25, 0.25, 0.25, 0.25),), (0.4, 0.3, 0.2, 0.1)),
    "three arms 50/25/25 -> 25/25/50": (((0.5, 0.25, 0.25),), (0.25, 0.25, 0.5)),
    "an arm switched off 40/30/30 -> 0/50/50": (((0.4, 0.3, 0.3),), (0.0, 0.5, 0.5)),
    "two periods 50/50, 90/10 -> 70/30": (((0.5, 0.5), (0.9, 0.1)), (0.7, 0.3)),
    "two periods 50/50, 80/20 -> 50/50": (((0.5, 0.5), (0.8, 0.2)), (0.5, 0.5)),
}


def measure(periods: Sequence[Sequence[float]], new: Sequence[float], units: int) -> dict[str, float]:
    """Shares moved by both methods, and the TV distance, for `units` units per period."""
    k = len(new)
    names = tuple(f"arm{i}" for i in range(k))
    stored: list[tuple[str, int]] = []
    for p, weights in enumerate(periods):
        stored += [(f"p{p}-u{i}", choose_arm(SALT, f"p{p}-u{i}", names, weights)) for i in range(units)]
    counts = np.bincount([arm for _, arm in stored], minlength=k)
    plan = plan_rebalance(SALT, len(periods) + 1, counts.tolist(), new)
    rendezvous = np.mean([choose_arm(SALT, unit, names, new) != arm for unit, arm in stored])
    after = [plan.destination(unit, arm) for unit, arm in stored]
    moved = np.mean([d is not None for d in after])
    final = np.bincount([arm if d is None else d for (_, arm), d in zip(stored, after, strict=True)], minlength=k)
    n = len(stored)
    return {
        "tv": plan.minimum,
        "rendezvous": float(rendezvous),
        "plan": float(moved),
        "se": math.sqrt(max(plan.minimum * (1 - plan.minimum), 1e-12) / n),
        "split_gap": float(np.max(np.abs(final / n - np.asarray(new)))),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=20_000, help="new units per weights period")
    args = parser.parse_args(argv)
    print(f"{'scenario':42} {'TV (least)':>10} {'rendezvous':>10} {'plan':>8} {'plan SE':>8} {'split gap':>9}")
    for name, (periods, new) in SCENARIOS.items():
        m = measure(periods, new, args.units)
        print(
            f"{name:42} {m['tv']:10.4f} {m['rendezvous']:10.4f} {m['plan']:8.4f} {m['se']:8.4f} {m['split_gap']:9.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
