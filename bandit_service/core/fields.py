"""Constrained scalar types shared by the commands and the model: each checked once, at decode."""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta

__all__ = [
    "ATTRIBUTE_NAME",
    "NO_NUL",
    "ArmName",
    "AttributeKey",
    "AttributeValue",
    "Attributes",
    "Count",
    "DecisionId",
    "Description",
    "Finite",
    "HoldSeconds",
    "IdempotencyKey",
    "Key",
    "MetricName",
    "Metrics",
    "Name",
    "Priority",
    "Probability",
    "SafeInt",
    "SampleSize",
    "Seconds",
    "Targeting",
    "UnitId",
    "WebhookUrl",
]

NO_NUL = r"^[^\x00]*$"

Key = Annotated[
    str,
    Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="Slug: lowercase letters, digits, '-' and '_'."),
]
ArmName = Annotated[
    str,
    Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@/+-]{0,63}$", description="1-64 characters: letters, digits, _.:@/+-"),
]
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)]
Description = Annotated[str, Meta(max_length=4_000, pattern=NO_NUL)]
UnitId = Annotated[str, Meta(min_length=1, max_length=256, pattern=NO_NUL, description="User, tenant or request id.")]
DecisionId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
IdempotencyKey = Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)]
# An attribute's name, unanchored (the targeting grammar matches it whole, beside its operators).
ATTRIBUTE_NAME = r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}"
AttributeKey = Annotated[str, Meta(pattern=f"^{ATTRIBUTE_NAME}$")]
MetricName = Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")]
Probability = Annotated[float, Meta(ge=0.0, le=1.0)]
# JSON cannot carry NaN or infinity; the bound also keeps sums of squares finite for 1e9 events.
Finite = Annotated[float, Meta(ge=-1e15, le=1e15, description="A finite number, |x| <= 1e15.")]
Count = Annotated[int, Meta(ge=0, le=1_000_000_000)]
Seconds = Annotated[int, Meta(ge=1, le=366 * 86_400)]
SampleSize = Annotated[int, Meta(ge=1, le=1_000_000_000, description="Observations per arm.")]
SafeInt = Annotated[int, Meta(ge=-(2**53), le=2**53)]  # exact in a JSON number (a double)
AttributeValue = Annotated[str, Meta(max_length=256, pattern=NO_NUL)] | bool | SafeInt | Finite
Attributes = Annotated[dict[AttributeKey, AttributeValue], Meta(max_length=64)]
# Decoded permissively: `core.targeting.check_targeting` checks the grammar and names the rule
# (`targeting.$or[1].language.$gt`); http/openapi.py documents it (`core.targeting_schema`).
Targeting = Annotated[
    dict[str, Any],
    Meta(max_length=32, description="A condition: attribute tests, $and, $or, $not (README: Targeting rules)."),
]
Metrics = Annotated[dict[MetricName, Finite], Meta(max_length=32)]

Priority = Annotated[int, Meta(ge=-1_000_000, le=1_000_000, description="Lower is evaluated first.")]
WebhookUrl = Annotated[
    str,
    Meta(
        pattern=r"^https?://[^\s/?#]+[^\s]*$",
        max_length=2_000,
        description="An http(s) URL that receives signed JSON lifecycle events.",
    ),
]
HoldSeconds = Annotated[int, Meta(ge=1, le=10 * 365 * 86_400, description="Seconds to hold a step.")]
