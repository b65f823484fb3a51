"""The base of every policy configuration: a frozen, validated, tagged msgspec Struct."""

from __future__ import annotations

import math
import numbers
from typing import Annotated

import msgspec

__all__ = ["NonNegativeInt", "PolicyBase", "Probability", "check_non_negative_int", "check_probability"]

Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]


class PolicyBase(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="kind"):
    """Common base: configs are immutable values, decoded from `{"kind": ..., ...}`."""


def check_probability(name: str, value: float) -> None:
    """Refuse a value outside [0, 1] (or NaN) with an error naming the parameter."""
    valid_type = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (valid_type and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name}: must be a number in [0, 1], got {value!r}")


def check_non_negative_int(name: str, value: int) -> None:
    """Refuse a negative or non-integer count with an error naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{name}: must be a non-negative integer, got {value!r}")
