"""Looks at the always-valid figures: the running minimum p-value and running intersection, kept per experiment.

An always-valid p-value is valid at every look only as the minimum over all looks so far, and
a confidence sequence only as the intersection of its intervals (Johari et al., 2017, "Peeking
at A/B tests", KDD; Howard et al., 2021). Each whole-experiment report is a look: the service
merges the look's figures into the stored ones, so the p-value an operator reads never rises
and the interval never widens between reads.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import msgspec

__all__ = ["SequentialLook", "look_settings", "merge_look", "merge_looks"]


def look_settings(level: float, tuning_n: float) -> str:
    """The settings a look was computed under: a running figure is valid only over looks that share them."""
    return f"level {level:g}, tuning_n {tuning_n:g}"


class SequentialLook(msgspec.Struct, frozen=True, kw_only=True):
    """The always-valid figures of one arm against the control on one metric, over the looks so far.

    `p_value` is the running minimum, (`lower`, `upper`) the running intersection of the
    confidence sequences (infinite while an arm carries no evidence yet), `looks` how many
    looks were merged, `first_at` / `last_at` when the first and the latest were taken.
    `settings` (`look_settings`) names the level and the mSPRT tuning the figures were computed
    under: the running minimum and intersection are valid over looks at one level and one mixture
    only (a minimum over several mixtures would let one shop for the smallest), so a look under
    other settings starts the running figures afresh.
    """

    metric: str
    arm: str
    p_value: float
    lower: float
    upper: float
    looks: int = 1
    first_at: float = 0.0
    last_at: float = 0.0
    settings: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """(metric, arm): one stored row per pair."""
        return self.metric, self.arm


def _min(a: float, b: float) -> float:
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return min(a, b)


def _max(a: float, b: float) -> float:
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return max(a, b)


def merge_look(old: SequentialLook | None, new: SequentialLook) -> SequentialLook:
    """`new` merged into `old`: the smaller p-value, the tighter bounds, one more look (NaN never wins).

    Under other settings than `old`'s, `new` replaces it: the running figures start afresh.
    """
    if old is None or old.settings != new.settings:
        return new
    return SequentialLook(
        metric=new.metric,
        arm=new.arm,
        p_value=_min(old.p_value, new.p_value),
        lower=_max(old.lower, new.lower),
        upper=_min(old.upper, new.upper),
        looks=old.looks + new.looks,
        first_at=min(old.first_at, new.first_at) if old.first_at and new.first_at else old.first_at or new.first_at,
        last_at=max(old.last_at, new.last_at),
        settings=new.settings,
    )


def merge_looks(old: Iterable[SequentialLook], new: Iterable[SequentialLook]) -> tuple[SequentialLook, ...]:
    """Every (metric, arm) of `old` and `new`, merged pairwise; sorted by (metric, arm)."""
    merged = {look.key: look for look in old}
    for look in new:
        merged[look.key] = merge_look(merged.get(look.key), look)
    return tuple(merged[key] for key in sorted(merged))
