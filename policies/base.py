"""The base of every policy configuration: a frozen, validated, tagged msgspec Struct."""

from __future__ import annotations

import math
from typing import Annotated

import msgspec

__all__ = ["NonNegativeInt", "PolicyBase", "Probability", "check_probability"]

Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]


class PolicyBase(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="kind"):
    """Common base: configs are immutable values, decoded from `{"kind": ..., ...}`."""


def check_probability(name: str, value: float) -> None:
    """Refuse a value outside [0, 1] (or NaN) with an error naming the parameter."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name}: must be a number in [0, 1], got {value!r}")


def check_non_negative_int(name: str, value: int) -> None:
    """Refuse a negative or non-integer count with an error naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: must be a non-negative integer, got {value!r}")
