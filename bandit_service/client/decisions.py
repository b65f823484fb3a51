"""What the SDK answers: the arm and payload to use, wherever they came from, and the fallback to use when none."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = ["ClientDecision", "Fallback", "Source"]

Source = Literal["service", "local", "fallback"]
"""Who chose the arm: the service (remote), this process (local evaluation), or the app's fallback."""


class Fallback(msgspec.Struct, frozen=True, kw_only=True):
    """The arm and payload an app uses when the service cannot decide (down, slow, unknown key)."""

    arm: str | None = None
    payload: Any = None


class ClientDecision(msgspec.Struct, frozen=True, kw_only=True):
    """The arm to use and its payload; `source` says who chose it. Always usable, never None.

    A fallback decision has no `decision_id`; a reward for it is counted and not sent.
    `trial` is known for local decisions: a local decision of a `trial: "unit"` experiment is
    rewarded by experiment and unit, since the service may count it as an exposure of the unit's
    open trial.
    """

    experiment: str | None
    feature: str | None = None
    unit: str | None = None
    arm: str | None
    payload: Any = None
    decision_id: str | None = None
    propensity: float | None = None
    weights_version: int | None = None
    in_experiment: bool = False
    source: Source = "service"
    trial: Literal["unit", "decision"] | None = None

    @property
    def fallback(self) -> bool:
        """True when the service could not decide and this is the app's fallback."""
        return self.source == "fallback"
