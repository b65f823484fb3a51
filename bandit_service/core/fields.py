"""Constrained scalar types shared by the commands and the model: each checked once, at decode."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

__all__ = [
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
AttributeKey = Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")]
MetricName = Annotated[str, Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")]
Probability = Annotated[float, Meta(ge=0.0, le=1.0)]
# JSON cannot carry NaN or infinity; the bound also keeps sums of squares finite for 1e9 events.
Finite = Annotated[float, Meta(ge=-1e15, le=1e15, description="A finite number, |x| <= 1e15.")]
Count = Annotated[int, Meta(ge=0, le=1_000_000_000)]
Seconds = Annotated[int, Meta(ge=1, le=366 * 86_400)]
SampleSize = Annotated[int, Meta(ge=1, le=1_000_000_000, description="Observations per arm.")]
AttributeValue = (
    Annotated[str, Meta(max_length=256, pattern=NO_NUL)] | bool | Annotated[int, Meta(ge=-(2**53), le=2**53)] | Finite
)
Attributes = Annotated[dict[AttributeKey, AttributeValue], Meta(max_length=64)]
Targeting = Annotated[
    dict[AttributeKey, AttributeValue | Annotated[list[AttributeValue], Meta(min_length=1, max_length=100)]],
    Meta(max_length=32, description="attribute -> allowed value or list of allowed values; all must match"),
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
