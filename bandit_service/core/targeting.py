"""Targeting: which requests an experiment admits, as a small condition grammar over their attributes.

The grammar is GrowthBook's (MongoDB's) condition language, cut down to what targeting needs
(README, "Targeting rules", has the table):

- A condition is an object and every key in it must hold; `{}` holds for every request.
- `"attr": value` holds when the attribute equals the value; `"attr": [v1, v2]` when it equals one
  of them (unlike GrowthBook, where a list is compared as a list: this was the rule form before).
- `"attr": {"$eq" | "$ne": value, "$in" | "$nin": [values], "$gt" | "$gte" | "$lt" | "$lte":
  number, "$exists": bool}`: every operator in the object must hold.
- `"$and": [conditions]`, `"$or": [conditions]`, `"$not": condition`.

Values are what attributes can be: strings, numbers and booleans, and JSON `true` is not the
number 1. An order comparison holds only for a number attribute (the string "3" is not above 2;
not an error). A missing attribute fails every test but `$ne`, `$nin` and `$exists: false`,
which hold (as in GrowthBook: a missing value equals nothing). `$not` negates what it wraps.

`compile_targeting` checks a rule and turns it into a tree of closures; a malformed rule is an
`InvalidFieldError` whose field is the rule's path (`targeting.$or[1].language.$gt`). `matches`,
on the decision path, compiles each targeting object once and keeps the predicate by identity.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from bandit_service.core.errors import InvalidFieldError
from bandit_service.core.fields import ATTRIBUTE_NAME, AttributeValue, Finite, SafeInt

__all__ = [
    "ATTRIBUTE_OPERATORS",
    "LOGICAL_OPERATORS",
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_KEYS",
    "MAX_TESTS",
    "MAX_VALUES",
    "Predicate",
    "check_targeting",
    "compile_targeting",
    "matches",
]

Predicate = Callable[[Mapping[str, Any]], bool]
"""A compiled condition: request attributes -> admitted."""

MAX_DEPTH = 8
"""Deepest nesting of conditions: the top one is level 1, each $and, $or, $not goes one deeper."""
MAX_TESTS = 64
"""Attribute tests in one rule, all levels together (each operator, bare value or bare list is one)."""
MAX_KEYS = 32
"""Keys in one condition object (the bound of `fields.Targeting` too)."""
MAX_ITEMS = 32
"""Conditions in one $and or $or."""
MAX_VALUES = 100
"""Values in one $in, $nin or bare list."""

LOGICAL_OPERATORS = ("$and", "$or", "$not")
ATTRIBUTE_OPERATORS = ("$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists")
_NAME = re.compile(ATTRIBUTE_NAME)
_NUMBERS: frozenset[type[Any]] = frozenset({int, float})  # a bool's class is bool: true is not a number here
_Number = SafeInt | Finite


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# Leaves: one closure per test, specialised so the decision path does a dict lookup and a compare.


def _equals(name: str, expected: Any) -> Predicate:
    if isinstance(expected, bool):

        def test_bool(attributes: Mapping[str, Any]) -> bool:
            return attributes.get(name) is expected  # True and False are singletons; 1 is neither

        return test_bool

    def test(attributes: Mapping[str, Any]) -> bool:
        value = attributes.get(name)
        return value == expected and value.__class__ is not bool

    return test


def _one_of(name: str, values: list[Any]) -> Predicate:
    if len(values) == 1:
        return _equals(name, values[0])
    # Two sets, so that True never meets 1 (Python hashes them alike): a value looks in its own kind.
    flags = frozenset(v for v in values if isinstance(v, bool))
    others = frozenset(v for v in values if not isinstance(v, bool))

    def test(attributes: Mapping[str, Any]) -> bool:
        value = attributes.get(name)  # None when missing: in neither set
        return value in (flags if value.__class__ is bool else others)

    return test


def _order(name: str, op: str, bound: float) -> Predicate:
    # One closure per operator: an `operator.gt` call would cost as much as the whole test.
    def gt(attributes: Mapping[str, Any]) -> bool:
        value: Any = attributes.get(name)
        return value.__class__ in _NUMBERS and value > bound

    def gte(attributes: Mapping[str, Any]) -> bool:
        value: Any = attributes.get(name)
        return value.__class__ in _NUMBERS and value >= bound

    def lt(attributes: Mapping[str, Any]) -> bool:
        value: Any = attributes.get(name)
        return value.__class__ in _NUMBERS and value < bound

    def lte(attributes: Mapping[str, Any]) -> bool:
        value: Any = attributes.get(name)
        return value.__class__ in _NUMBERS and value <= bound

    return {"$gt": gt, "$gte": gte, "$lt": lt, "$lte": lte}[op]


def _exists(name: str, present: bool) -> Predicate:
    def test(attributes: Mapping[str, Any]) -> bool:
        return (name in attributes) is present

    return test


def _always(attributes: Mapping[str, Any]) -> bool:
    return True


def _negation(inner: Predicate) -> Predicate:
    def test(attributes: Mapping[str, Any]) -> bool:
        return not inner(attributes)

    return test


def _all(parts: list[Predicate]) -> Predicate:
    if not parts:
        return _always
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        first, second = parts

        def both(attributes: Mapping[str, Any]) -> bool:
            return first(attributes) and second(attributes)

        return both
    tests = tuple(parts)

    def every(attributes: Mapping[str, Any]) -> bool:
        for test in tests:  # noqa: SIM110 (a plain loop: all() over a generator takes twice as long)
            if not test(attributes):
                return False
        return True

    return every


def _any(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    tests = tuple(parts)

    def some(attributes: Mapping[str, Any]) -> bool:
        for test in tests:  # noqa: SIM110 (a plain loop: any() over a generator takes twice as long)
            if test(attributes):
                return True
        return False

    return some


class _Compiler:
    """Checks a rule and builds its predicate in one walk, counting the attribute tests."""

    def __init__(self) -> None:
        self.tests = 0

    def condition(self, node: Any, path: str, depth: int) -> Predicate:
        if not isinstance(node, dict):
            raise InvalidFieldError(
                f"a condition is an object of attribute names and $and, $or, $not; got {_kind(node)}", field=path
            )
        if depth > MAX_DEPTH:
            raise InvalidFieldError(f"conditions nest at most {MAX_DEPTH} levels deep", field=path)
        if len(node) > MAX_KEYS:
            raise InvalidFieldError(f"at most {MAX_KEYS} keys in one condition, got {len(node)}", field=path)
        parts: list[Predicate] = []
        for key, rule in node.items():
            if not isinstance(key, str):
                raise InvalidFieldError(f"keys are strings, got {_kind(key)}", field=path)
            where = f"{path}.{key}"
            if key in ("$and", "$or"):
                parts.append(self.combination(key, rule, where, depth))
            elif key == "$not":
                parts.append(_negation(self.condition(rule, where, depth + 1)))
            elif key.startswith("$"):
                hint = (
                    f' (it belongs to an attribute: {{"name": {{"{key}": ...}}}})' if key in ATTRIBUTE_OPERATORS else ""
                )
                raise InvalidFieldError(
                    f"unknown operator {key!r}{hint}; a condition holds attribute names and "
                    f"{', '.join(LOGICAL_OPERATORS)}",
                    field=where,
                )
            elif _NAME.fullmatch(key) is None:
                raise InvalidFieldError(
                    f"{key!r} is not an attribute name (a letter or _, then letters, digits, _.:-; 64 at most)",
                    field=where,
                )
            else:
                parts.append(self.attribute(key, rule, where))
        return _all(parts)

    def combination(self, op: str, rule: Any, path: str, depth: int) -> Predicate:
        if not isinstance(rule, list) or not rule:
            raise InvalidFieldError(f"{op} takes a non-empty list of conditions, got {_kind(rule)}", field=path)
        if len(rule) > MAX_ITEMS:
            raise InvalidFieldError(f"at most {MAX_ITEMS} conditions in one {op}, got {len(rule)}", field=path)
        parts = [self.condition(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(rule)]
        return _all(parts) if op == "$and" else _any(parts)

    def attribute(self, name: str, rule: Any, path: str) -> Predicate:
        if isinstance(rule, dict):
            if not rule:
                raise InvalidFieldError(
                    f"give at least one operator ({', '.join(ATTRIBUTE_OPERATORS)}), or a value", field=path
                )
            return _all([self.operator(name, op, operand, f"{path}.{op}") for op, operand in rule.items()])
        self.count(path)
        if isinstance(rule, list):
            return _one_of(name, self.values(rule, path, "the list"))
        return _equals(name, self.value(rule, path, "the value"))

    def operator(self, name: str, op: Any, operand: Any, path: str) -> Predicate:
        self.count(path)
        match op:
            case "$eq":
                return _equals(name, self.value(operand, path, op))
            case "$ne":
                return _negation(_equals(name, self.value(operand, path, op)))
            case "$in":
                return _one_of(name, self.values(operand, path, op))
            case "$nin":
                return _negation(_one_of(name, self.values(operand, path, op)))
            case "$gt" | "$gte" | "$lt" | "$lte":
                return _order(name, op, self.number(operand, path, op))
            case "$exists":
                if not isinstance(operand, bool):
                    raise InvalidFieldError(f"$exists takes true or false, got {_kind(operand)}", field=path)
                return _exists(name, operand)
            case _:
                hint = " (put it around the attribute's condition)" if op in LOGICAL_OPERATORS else ""
                raise InvalidFieldError(
                    f"unknown operator {op!r}{hint}; an attribute takes {', '.join(ATTRIBUTE_OPERATORS)}", field=path
                )

    def count(self, path: str) -> None:
        self.tests += 1
        if self.tests > MAX_TESTS:
            raise InvalidFieldError(f"at most {MAX_TESTS} attribute tests in one targeting rule", field=path)

    @staticmethod
    def value(operand: Any, path: str, what: str) -> Any:
        if operand is None:
            raise InvalidFieldError(
                f'{what}: null is not a value; match a missing attribute with {{"$exists": false}}', field=path
            )
        if isinstance(operand, list | dict):
            several = isinstance(operand, list) and not what.startswith("each value")
            hint = "; for several values use a list or $in" if several else ""
            raise InvalidFieldError(
                f"{what} takes one string, number or boolean, got {_kind(operand)}{hint}", field=path
            )
        try:
            # The attribute's own type: a value no attribute can have is a mistake, not a rule.
            return msgspec.convert(operand, AttributeValue)
        except msgspec.ValidationError as exc:
            raise InvalidFieldError(f"{what}: {exc}", field=path) from exc

    @classmethod
    def values(cls, operand: Any, path: str, what: str) -> list[Any]:
        if not isinstance(operand, list) or not operand:
            raise InvalidFieldError(f"{what} takes a non-empty list of values, got {_kind(operand)}", field=path)
        if len(operand) > MAX_VALUES:
            raise InvalidFieldError(f"at most {MAX_VALUES} values in {what}, got {len(operand)}", field=path)
        return [cls.value(item, f"{path}[{i}]", f"each value of {what}") for i, item in enumerate(operand)]

    @staticmethod
    def number(operand: Any, path: str, what: str) -> float:
        if operand.__class__ not in _NUMBERS:
            raise InvalidFieldError(f"{what} compares numbers, got {_kind(operand)}", field=path)
        try:
            number: float = msgspec.convert(operand, _Number)
        except msgspec.ValidationError as exc:
            raise InvalidFieldError(f"{what}: {exc}", field=path) from exc
        return number


def compile_targeting(targeting: Mapping[str, Any], field: str = "targeting") -> Predicate:
    """The predicate of a targeting rule, or an `InvalidFieldError` naming the malformed part's path."""
    return _Compiler().condition(dict(targeting), field, 1)


def check_targeting(targeting: Mapping[str, Any], field: str = "targeting") -> None:
    """Refuse a malformed targeting rule, naming its path (`targeting.$or[1].language.$gt`) and why."""
    compile_targeting(targeting, field)


# Compiled predicates of the targeting objects in use, by identity. A config's targeting is never
# changed in place (a change is a new config), and each entry holds its object, so an id cannot
# be reused while its entry lives. Bounded: when full, it starts over (a compile costs microseconds).
_COMPILED: dict[int, tuple[Mapping[str, Any], Predicate]] = {}
_COMPILED_MAX = 1_024


def matches(targeting: Mapping[str, Any], attributes: Mapping[str, Any]) -> bool:
    """Whether a request's attributes satisfy a targeting rule (compiled on first use, then kept)."""
    entry = _COMPILED.get(id(targeting))
    if entry is None or entry[0] is not targeting:
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.clear()
        entry = (targeting, compile_targeting(targeting))
        _COMPILED[id(targeting)] = entry
    return entry[1](attributes)
