"""Rebalancing sticky units after a manual weights change: the fewest moves that reach the new weights.

Sticky units keep the arm they first got, so after a weights change the stored units are still
split by the weights of their day. `PUT .../weights {"rebalance": true}` moves some of them so
that the stored units, too, are split by the new weights, and it moves as few as possible.

Why not simply re-run the rendezvous hash (`choose_arm`) under the new weights for every stored
unit? It moves more units than needed in two ordinary cases (figures from
`benchmarks/rebalance_churn.py`, 20,000 units):
- several arms gain and lose at once: 25/25/25/25 -> 40/30/20/10 moves 23.7% where 20% is enough,
  50/25/25 -> 25/25/50 moves 30% where 25% is enough;
- stored units come from several weights versions (sticky units kept their arm through earlier
  changes): 50/50, then 90/10 for as many new units, then back to 70/30 moves 20% of the units
  although the stored split is already 70/30 and nothing needs to move.

The least share any reassignment can move is the total-variation distance between the stored
split p (counted per arm) and the new weights w, TV = sum_i max(0, p_i - w_i): each arm with a
surplus must lose at least p_i - w_i of the units. This plan moves exactly that in expectation:
from each arm with a surplus it moves a share (p_i - w_i) / p_i of its units, chosen by a hash of
the unit that is fresh for each weights version (so it is independent of how the units got their
arm, and the share that moves is Binomial around its target); each moved unit goes to an arm with
a deficit, chosen with probability proportional to the deficit w_j - p_j by a second hash. The
stored split then matches w, arms that did not lose weight keep every unit, and a rebalance
with an unchanged split moves nothing.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from itertools import accumulate

import msgspec

from bandit_service.core.assignment import unit_uniform

__all__ = ["RebalancePlan", "plan_rebalance"]

_TINY = 1e-12
"""Surpluses below this are float noise of shares and weights that both sum to 1: nothing moves for them."""


class RebalancePlan(msgspec.Struct, frozen=True, kw_only=True):
    """Which stored units move, for the change to weights `version`; `minimum` is the TV distance."""

    salt: str
    version: int
    weights: tuple[float, ...]
    units: int
    """Stored units the plan was computed from (assigned before weights `version`)."""
    leave: tuple[float, ...]
    """Per arm, the share of its stored units that moves out (0 for an arm without a surplus)."""
    gain: tuple[float, ...]
    """Per arm, its deficit w_j - p_j (0 for an arm without one): where moved units go."""
    minimum: float
    """The least share of the stored units any reassignment must move: sum of the surpluses."""

    def destination(self, unit: str, arm: int) -> int | None:
        """The unit's new arm, or None if it stays on `arm`."""
        if arm >= len(self.leave) or self.leave[arm] <= 0.0:
            return None
        if unit_uniform(self.salt, unit, f"rebalance/{self.version}") >= self.leave[arm]:
            return None
        # Inverse CDF of the deficits, from a second, independent hash of the unit.
        bounds = list(accumulate(self.gain))
        target = unit_uniform(self.salt, unit, f"rebalance/{self.version}/to") * bounds[-1]
        return min(bisect.bisect_right(bounds, target), len(bounds) - 1)


def plan_rebalance(salt: str, version: int, counts: Sequence[int], weights: Sequence[float]) -> RebalancePlan:
    """The least-churn plan from stored units per arm (`counts`) to `weights` (one per arm, summing to 1)."""
    if len(counts) != len(weights):
        raise ValueError(f"counts: {len(counts)} counts for {len(weights)} arms")
    total = sum(counts)
    new = tuple(float(w) for w in weights)
    if total == 0:
        zeros = tuple(0.0 for _ in new)
        return RebalancePlan(salt=salt, version=version, weights=new, units=0, leave=zeros, gain=zeros, minimum=0.0)
    shares = [c / total for c in counts]
    surplus = [p - w if p - w > _TINY else 0.0 for p, w in zip(shares, new, strict=True)]
    deficit = [w - p if w - p > _TINY else 0.0 for p, w in zip(shares, new, strict=True)]
    leave = tuple(s / p if p > 0.0 else 0.0 for s, p in zip(surplus, shares, strict=True))
    return RebalancePlan(
        salt=salt,
        version=version,
        weights=new,
        units=total,
        leave=leave,
        gain=tuple(deficit),
        minimum=sum(surplus),
    )
