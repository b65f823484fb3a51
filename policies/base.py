"""The base of every policy configuration: a frozen, validated, tagged msgspec Struct."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Annotated, ClassVar, Self

import msgspec

from policies.posterior import RewardKind

__all__ = [
    "MAX_COUNT",
    "ConfigError",
    "Count",
    "PolicyBase",
    "Probability",
    "check_count",
    "check_probability",
]

MAX_COUNT = 1_000_000_000

Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]


class ConfigError(ValueError):
    """An invalid policy parameter; `field` names it, and the message starts with `"<field>: "`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class PolicyBase(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="kind"):
    """Common base: configs are immutable values, decoded from `{"kind": ..., ...}`.

    Decoding checks the bounds written as `Meta` on the fields; each config's `__post_init__`
    repeats them (and any rule across fields) for configs built directly in Python.
    """

    # Whether the policy learns from rewards: a service reweights only adaptive policies on schedule.
    adaptive: ClassVar[bool] = True

    def check_arms(self, k: int, *, weighted_arms: bool = False) -> None:
        """Refuse (with ConfigError) a config that cannot serve k arms.

        `weighted_arms` says whether the arms already carry their own starting weights.
        """

    def bind(self, *, reward: RewardKind, weights: Sequence[float]) -> Self:
        """This config for an experiment with this reward kind and these current weights.

        `weights` is empty while the experiment has none yet (a draft). Most policies ignore
        both; the result is built through the constructor, so `__post_init__` checks it.
        """
        return self

    def initial_weights(self, k: int) -> tuple[float, ...]:
        """The weights k arms start with under this config: an equal split."""
        return (1.0 / k,) * k


def check_probability(name: str, value: float) -> None:
    """Refuse a value outside [0, 1] (or NaN) with an error naming the parameter."""
    valid_type = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (valid_type and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ConfigError(name, f"must be a number in [0, 1], got {value!r}")


def check_count(name: str, value: int) -> None:
    """Refuse a count that is not an integer in [0, MAX_COUNT] with an error naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= MAX_COUNT:
        raise ConfigError(name, f"must be a non-negative integer (at most {MAX_COUNT}), got {value!r}")
