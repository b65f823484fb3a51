"""What the SDK's local evaluation reads and writes: experiment and feature definitions, and logged decisions.

Declared once here (standard library and msgspec only), encoded by the service
(GET /v1/definitions, POST /v1/decisions/log) and decoded by `bandit_service.client`, so the
two sides cannot drift.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from bandit_service.core.fields import Attributes, DecisionId, Key, UnitId

__all__ = [
    "MAX_DECISION_LOG",
    "OUTSIDE_PREFIX",
    "ArmDefinition",
    "DecisionLogIn",
    "Definitions",
    "ExperimentDefinition",
    "FeatureDefinition",
    "LoggedDecisionIn",
    "NamespaceDefinition",
]

OUTSIDE_PREFIX = "out_"
"""Decision ids served outside an experiment start with this (by the service or the SDK); they are never logged."""

MAX_DECISION_LOG = 1_000
"""Most decisions in one POST /v1/decisions/log."""


class ArmDefinition(msgspec.Struct, frozen=True, kw_only=True):
    """An arm's name and the payload the app uses when it is served."""

    name: str
    payload: Any = None


class NamespaceDefinition(msgspec.Struct, frozen=True, kw_only=True):
    """The experiment's slice [start, end) of a namespace (see core/placement.py)."""

    name: str
    start: float
    end: float


class ExperimentDefinition(msgspec.Struct, frozen=True, kw_only=True):
    """What placing a unit needs of an experiment, without the database (drafts are never sent)."""

    key: str
    status: Literal["active", "paused", "completed"]
    salt: str
    arms: list[ArmDefinition]
    control: str
    winner: str | None = None
    weights: list[float]  # in the order of `arms`
    weights_version: int
    exposure: float
    targeting: dict[str, Any] = msgspec.field(default_factory=dict)
    namespace: NamespaceDefinition | None = None
    sticky: bool = True
    trial: Literal["unit", "decision"] = "unit"
    feature: str | None = None
    priority: int = 0


class FeatureDefinition(msgspec.Struct, frozen=True, kw_only=True):
    """A feature's default payload and its experiments' keys in evaluation order (priority, then key)."""

    key: str
    default_payload: Any = None
    experiments: list[str] = msgspec.field(default_factory=list)


class Definitions(msgspec.Struct, frozen=True, kw_only=True):
    """Body of GET /v1/definitions; `version` is also its ETag, so an unchanged poll answers 304."""

    version: str
    experiments: list[ExperimentDefinition]
    features: list[FeatureDefinition]
    poll_interval_s: float  # how often the service suggests polling


class LoggedDecisionIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One locally evaluated decision: the arm the SDK served, with its propensity and weights version.

    `decision_id` is made by the SDK; sending it again is a no-op (idempotent), so a retried
    batch never counts twice.
    """

    decision_id: DecisionId
    experiment: Key
    unit: UnitId | None = None
    arm: Annotated[str, Meta(min_length=1, max_length=64)]
    propensity: Annotated[float, Meta(gt=0.0, le=1.0)]
    weights_version: Annotated[int, Meta(ge=0)]
    attributes: Attributes = msgspec.field(default_factory=dict)


class DecisionLogIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Body of POST /v1/decisions/log."""

    decisions: Annotated[list[LoggedDecisionIn], Meta(min_length=1, max_length=MAX_DECISION_LOG)]
