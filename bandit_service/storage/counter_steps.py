"""Counter steps: what each event adds to an arm's counters, shared by the SQL storage and the twin.

A step is a tuple in `COUNTER_COLUMNS` order: (units, trials, exposures, rewarded, expired,
excluded, n, total, total_sq). Counters are sufficient statistics, so a unit trial whose value
changes (a second reward combined by its `aggregate`) is corrected by adding the difference.
"""

from __future__ import annotations

__all__ = ["Step", "exposure", "opened", "revalued", "reward", "rewarded", "unrewarded"]

Step = tuple[float, float, float, float, float, float, float, float, float]


def opened(new_unit: bool) -> Step:
    """A trial opened by a decision (its unit's first, if `new_unit`): one trial, one exposure."""
    return (1 if new_unit else 0, 1, 1, 0, 0, 0, 0.0, 0.0, 0.0)


def exposure() -> Step:
    """A decision inside an open unit trial: one more exposure of it."""
    return (0, 0, 1, 0, 0, 0, 0.0, 0.0, 0.0)


def rewarded(value: float) -> Step:
    """A trial's first reward: it leaves pending and counts with `value`."""
    return (0, 0, 0, 1, 0, 0, 1.0, value, value * value)


def revalued(old: float, new: float) -> Step:
    """A rewarded unit trial's value moves from `old` to `new` (a later reward combined with the earlier)."""
    return (0, 0, 0, 0, 0, 0, 0.0, new - old, new * new - old * old)


def unrewarded(value: float | None) -> Step:
    """A trial whose window closed without a reward: counted with `value`, or excluded (None)."""
    if value is None:
        return (0, 0, 0, 0, 0, 1, 0.0, 0.0, 0.0)
    return (0, 0, 0, 0, 1, 0, 1.0, value, value * value)


def reward(before: float | None, after: float) -> Step:
    """A reward that takes its trial's value from `before` (None: it had no reward yet) to `after`."""
    return rewarded(after) if before is None else revalued(before, after)
