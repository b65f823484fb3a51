"""Where a unit goes: admission (status, targeting, namespace slice, exposure) and the rendezvous arm.

One implementation for the server's decision path and the SDK's local evaluation: this module
and what it imports (assignment, targeting, fields) use only the standard library and msgspec,
so `bandit_service.client` can import it without numpy, scipy, Litestar or SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from bandit_service.core.assignment import choose_arm, in_exposure, namespace_uniform
from bandit_service.core.targeting import matches

__all__ = ["FeatureRole", "Slice", "admits", "in_slice", "place_unit", "role_in_feature"]

FeatureRole = Literal["experiment", "winner", "skip"]
"""What an attached experiment does for a feature: run (admission decides), serve its winner, or nothing."""


class Slice(Protocol):
    """A namespace slice: units whose namespace hash is in [start, end)."""

    @property
    def name(self) -> str: ...
    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...


def in_slice(u: float, start: float, end: float) -> bool:
    """Whether a namespace hash u in [0, 1) falls into the experiment's slice [start, end)."""
    return start <= u < end


def admits(
    *,
    status: str,
    salt: str,
    targeting: Mapping[str, Any],
    namespace: Slice | None,
    exposure: float,
    key: str,
    attributes: Mapping[str, Any],
) -> bool:
    """Whether the experiment takes the unit `key`: active, targeting matches, inside its slice and exposure."""
    if status != "active":
        return False
    if targeting and not matches(targeting, attributes):
        return False
    if namespace is not None and not in_slice(namespace_uniform(namespace.name, key), namespace.start, namespace.end):
        return False
    return in_exposure(salt, key, exposure)


def place_unit(
    *,
    status: str,
    salt: str,
    targeting: Mapping[str, Any],
    namespace: Slice | None,
    exposure: float,
    arms: Sequence[str],
    weights: Sequence[float],
    key: str,
    attributes: Mapping[str, Any],
) -> int | None:
    """The candidate arm's index for the unit `key`, or None if the experiment does not admit it.

    `key` is the unit id, or for a unit-less request the fresh decision id (an independent draw).
    """
    if not admits(
        status=status,
        salt=salt,
        targeting=targeting,
        namespace=namespace,
        exposure=exposure,
        key=key,
        attributes=attributes,
    ):
        return None
    return choose_arm(salt, key, arms, weights)


def role_in_feature(status: str, winner: str | None) -> FeatureRole:
    """What an experiment of this status (and winner) does for its feature.

    active: serves the units it admits, the others fall through; completed with a winner: serves
    the winner to every unit its targeting matches; anything else: skipped.
    """
    if status == "active":
        return "experiment"
    if status == "completed" and winner is not None:
        return "winner"
    return "skip"
