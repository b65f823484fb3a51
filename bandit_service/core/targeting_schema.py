"""The JSON Schema of the targeting grammar (`core.targeting`), for the OpenAPI document.

msgspec cannot describe objects keyed by `$and` or `$gt`, so the schema is written here, beside
the grammar's limits, as recursive components. It admits everything `check_targeting` accepts;
what it cannot state (nesting depth, the number of tests in all) is a 422 naming the rule.
"""

from __future__ import annotations

from typing import Any

import msgspec

from bandit_service.core.fields import ATTRIBUTE_NAME, AttributeValue, Finite, SafeInt
from bandit_service.core.targeting import MAX_DEPTH, MAX_ITEMS, MAX_KEYS, MAX_TESTS, MAX_VALUES

__all__ = ["TARGETING", "TARGETING_EXAMPLE", "targeting_schemas"]

TARGETING = "Targeting"
"""The component name of a condition (what an experiment's `targeting` is)."""

TARGETING_EXAMPLE: dict[str, Any] = {
    "language": {"$in": ["hi", "bn"]},
    "tier": {"$gte": 2},
    "$or": [{"tenant": "acme"}, {"beta": True}],
}


def targeting_schemas(ref_template: str) -> dict[str, dict[str, Any]]:
    """The components of the grammar by name; `ref_template` makes a reference from `{name}`."""

    def ref(name: str) -> dict[str, Any]:
        return {"$ref": ref_template.format(name=name)}

    # The very schemas msgspec writes for the attribute types: a rule's values are attribute values.
    value = msgspec.json.schema(AttributeValue)
    number = msgspec.json.schema(SafeInt | Finite)
    values = {"type": "array", "minItems": 1, "maxItems": MAX_VALUES, "items": ref("TargetingValue")}
    conditions = {"type": "array", "minItems": 1, "maxItems": MAX_ITEMS, "items": ref(TARGETING)}
    return {
        TARGETING: {
            "type": "object",
            "description": (
                "A targeting condition: every key must hold ({} admits every request). An attribute name maps "
                "to a value (equals), a list of values (equals one of them) or an object of operators; "
                f"$and, $or and $not combine conditions. At most {MAX_DEPTH} levels and {MAX_TESTS} "
                "attribute tests in all. JSON true is not the number 1; an order comparison holds only for "
                "a number attribute; a missing attribute fails every test but $ne, $nin and $exists: false."
            ),
            "maxProperties": MAX_KEYS,
            "properties": {
                "$and": conditions | {"description": "Every condition holds."},
                "$or": conditions | {"description": "At least one condition holds."},
                "$not": ref(TARGETING) | {"description": "The condition does not hold."},
            },
            # Attribute names by pattern rather than `propertyNames`: schemathesis cannot negate
            # `propertyNames` below a recursive reference (it gives up generating the operation).
            "patternProperties": {f"^{ATTRIBUTE_NAME}$": ref("TargetingRule")},
            "additionalProperties": False,
            "examples": [TARGETING_EXAMPLE],
        },
        "TargetingRule": {
            "description": "What an attribute must be: a value, a list of values (one of them), or operators.",
            "anyOf": [ref("TargetingValue"), values, ref("TargetingOperators")],
        },
        "TargetingOperators": {
            "type": "object",
            "description": "Operators on one attribute; every one given must hold.",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": {
                "$eq": ref("TargetingValue") | {"description": "Equals."},
                "$ne": ref("TargetingValue") | {"description": "Does not equal (holds when missing)."},
                "$in": values | {"description": "Equals one of the values."},
                "$nin": values | {"description": "Equals none of the values (holds when missing)."},
                "$gt": number | {"description": "A number above this."},
                "$gte": number | {"description": "A number at or above this."},
                "$lt": number | {"description": "A number below this."},
                "$lte": number | {"description": "A number at or below this."},
                "$exists": {"type": "boolean", "description": "Whether the attribute is present."},
            },
        },
        "TargetingValue": value | {"description": "An attribute value: a string, a number or a boolean."},
    }
