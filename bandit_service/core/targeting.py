"""Targeting: does a unit's request match an experiment's attribute rules?"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["matches"]


def _same(a: Any, b: Any) -> bool:
    # JSON true is not the number 1, even though Python says True == 1.
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def matches(targeting: Mapping[str, Any], attributes: Mapping[str, Any]) -> bool:
    """True iff every rule's attribute is present and equals the allowed value (or one of the list)."""
    for name, allowed in targeting.items():
        if name not in attributes:
            return False
        value = attributes[name]
        options = allowed if isinstance(allowed, list) else (allowed,)
        if not any(_same(value, option) for option in options):
            return False
    return True
