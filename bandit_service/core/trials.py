"""Trials: what the policy and the statistics count, and how a trial's rewards make one value.

A *trial* is a unit's first decision and everything it earns while its reward window is open
(`trial: "unit"`, the default of sticky experiments), or a single decision (`trial: "decision"`,
the default without a unit or with `sticky: false`). Later decisions of a unit inside an open
trial are *exposures* of that trial: same arm, same decision id, counted as exposures only.

Several rewards of one unit trial combine by the experiment's `aggregate` rule when its window
closes (the trial settles then, once). A trial that earned nothing counts as `missing` says: a
value (the old `default_reward`) or `"exclude"` (it never enters the statistics).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, assert_never

import msgspec

from bandit_service.core.fields import Finite

__all__ = [
    "AGGREGATES",
    "Aggregate",
    "Missing",
    "MissingValue",
    "TrialKind",
    "combine",
    "default_aggregate",
    "default_trial",
    "missing_value",
]

TrialKind = Literal["unit", "decision"]
Aggregate = Literal["sum", "max", "mean", "last"]
AGGREGATES: tuple[Aggregate, ...] = ("sum", "max", "mean", "last")


class MissingValue(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A trial without a reward counts with this value."""

    value: Finite


Missing = MissingValue | Literal["exclude"]
"""What a trial without a reward becomes: `{"value": x}` or `"exclude"` (left out of the statistics)."""


def default_trial(sticky: bool) -> TrialKind:
    """Sticky experiments count units; the others count decisions."""
    return "unit" if sticky else "decision"


def default_aggregate(reward: Literal["bernoulli", "continuous"]) -> Aggregate:
    """Converted-or-not for 0/1 rewards (`max`); revenue-like totals for numbers (`sum`)."""
    return "max" if reward == "bernoulli" else "sum"


def missing_value(missing: Missing) -> float | None:
    """The value a trial without a reward counts with; None when such trials are excluded."""
    return None if isinstance(missing, str) else missing.value


def combine(aggregate: Aggregate, values: Sequence[float]) -> float:
    """One trial's value from its rewards, in the order they were recorded (at least one)."""
    if not values:
        raise ValueError("a trial's value needs at least one reward")
    match aggregate:
        case "sum":
            return float(sum(values))
        case "max":
            return float(max(values))
        case "mean":
            return float(sum(values)) / len(values)
        case "last":
            return float(values[-1])
        case _:
            assert_never(aggregate)
