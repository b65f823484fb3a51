"""Targeting rules: the grammar's meaning, its refusals (422 naming the rule), its schema, and a decision."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient

from bandit_service.app import create_app
from bandit_service.clock import FakeClock
from bandit_service.core.errors import InvalidFieldError
from bandit_service.core.targeting import ATTRIBUTE_OPERATORS, MAX_DEPTH, MAX_TESTS, compile_targeting, matches
from bandit_service.core.targeting_schema import TARGETING, TARGETING_EXAMPLE, targeting_schemas
from bandit_service.ids import sequential_ids
from bandit_service.storage.memory import MemoryStorage
from tests.service.api import TEST_SETTINGS, api_client, decide, experiment_body, started

HI_3 = {"language": "hi", "tier": 3}

MATCHES = [
    # today's form: a value, or a list of values; every attribute must match
    pytest.param({}, {}, True, id="empty-admits-all"),
    pytest.param({"language": "hi"}, HI_3, True, id="equals"),
    pytest.param({"language": "hi"}, {"language": "bn"}, False, id="equals-other"),
    pytest.param({"language": "hi"}, {}, False, id="equals-missing"),
    pytest.param({"language": ["hi", "bn"]}, {"language": "bn"}, True, id="list-is-in"),
    pytest.param({"language": ["hi", "bn"], "tier": 3}, {"language": "bn", "tier": 2}, False, id="all-keys"),
    pytest.param({"tier": 1}, {"tier": 1.0}, True, id="int-equals-float"),
    pytest.param({"beta": True}, {"beta": 1}, False, id="true-is-not-1"),
    pytest.param({"tier": 1}, {"tier": True}, False, id="1-is-not-true"),
    pytest.param({"tier": [1, 2]}, {"tier": True}, False, id="true-not-in-numbers"),
    pytest.param({"beta": [True, "yes"]}, {"beta": 1}, False, id="1-not-in-true"),
    pytest.param({"beta": [False, 7]}, {"beta": False}, True, id="false-in-list"),
    pytest.param({"tier": "3"}, {"tier": 3}, False, id="string-is-not-number"),
    # $eq, $ne, $in, $nin
    pytest.param({"language": {"$eq": "hi"}}, HI_3, True, id="eq"),
    pytest.param({"language": {"$ne": "hi"}}, HI_3, False, id="ne"),
    pytest.param({"language": {"$ne": "hi"}}, {}, True, id="ne-missing-holds"),
    pytest.param({"beta": {"$ne": True}}, {"beta": 1}, True, id="ne-true-vs-1"),
    pytest.param({"language": {"$in": ["hi", "bn"]}}, HI_3, True, id="in"),
    pytest.param({"language": {"$in": ["hi", "bn"]}}, {}, False, id="in-missing"),
    pytest.param({"language": {"$nin": ["hi", "bn"]}}, HI_3, False, id="nin"),
    pytest.param({"language": {"$nin": ["hi", "bn"]}}, {"language": "en"}, True, id="nin-other"),
    pytest.param({"language": {"$nin": ["hi", "bn"]}}, {}, True, id="nin-missing-holds"),
    # order comparisons: numbers only
    pytest.param({"tier": {"$gt": 2}}, HI_3, True, id="gt"),
    pytest.param({"tier": {"$gt": 3}}, HI_3, False, id="gt-equal"),
    pytest.param({"tier": {"$gte": 3}}, HI_3, True, id="gte-equal"),
    pytest.param({"tier": {"$lt": 3.5}}, HI_3, True, id="lt-float-bound"),
    pytest.param({"tier": {"$lte": 2.99}}, HI_3, False, id="lte"),
    pytest.param({"tier": {"$gt": 2}}, {"tier": "3"}, False, id="gt-string-attribute-false"),
    pytest.param({"tier": {"$gte": 0}}, {"tier": True}, False, id="gte-bool-attribute-false"),
    pytest.param({"tier": {"$lt": 10}}, {}, False, id="lt-missing"),
    pytest.param({"tier": {"$gte": 2, "$lt": 5}}, HI_3, True, id="range"),
    pytest.param({"tier": {"$gte": 2, "$lt": 3}}, HI_3, False, id="range-all-operators-hold"),
    # $exists
    pytest.param({"tier": {"$exists": True}}, HI_3, True, id="exists"),
    pytest.param({"tier": {"$exists": True}}, {}, False, id="exists-missing"),
    pytest.param({"tier": {"$exists": False}}, {}, True, id="not-exists-missing"),
    pytest.param({"tier": {"$exists": False}}, HI_3, False, id="not-exists-present"),
    # $and, $or, $not
    pytest.param({"$or": [{"language": "bn"}, {"tier": {"$gt": 2}}]}, HI_3, True, id="or"),
    pytest.param({"$or": [{"language": "bn"}, {"tier": {"$gt": 5}}]}, HI_3, False, id="or-none"),
    pytest.param({"$and": [{"language": "hi"}, {"tier": {"$gt": 5}}]}, HI_3, False, id="and"),
    pytest.param({"$not": {"language": "hi"}}, HI_3, False, id="not"),
    pytest.param({"$not": {"language": "hi"}}, {}, True, id="not-missing"),
    pytest.param({"$not": {}}, {}, False, id="not-empty-condition"),
    pytest.param(
        {"language": "hi", "$or": [{"tier": {"$gte": 3}}, {"$and": [{"beta": True}, {"$not": {"tier": 1}}]}]},
        {"language": "hi", "tier": 2, "beta": True},
        True,
        id="nested",
    ),
]


@pytest.mark.parametrize(("rule", "attributes", "expected"), MATCHES)
def test_a_rule_matches_the_attributes_it_says(rule, attributes, expected):
    assert matches(rule, attributes) is expected
    assert compile_targeting(rule)(attributes) is expected


def test_a_compiled_rule_is_kept_for_its_object_and_a_new_object_is_compiled_anew():
    rule = {"language": ["hi", "bn"]}
    assert matches(rule, {"language": "hi"}) and matches(rule, {"language": "bn"})
    other = {"language": ["en"]}  # an equal-looking object elsewhere never borrows the first's predicate
    assert matches(other, {"language": "en"}) and not matches(other, {"language": "hi"})


def _nested_not(depth: int) -> dict[str, Any]:
    rule: dict[str, Any] = {"tier": 1}
    for _ in range(depth - 1):
        rule = {"$not": rule}
    return rule


def test_the_limits_are_inclusive():
    compile_targeting(_nested_not(MAX_DEPTH))
    compile_targeting({"$and": [{f"a{i}": {"$gt": 0, "$lt": 5}} for i in range(MAX_TESTS // 2)]})
    with pytest.raises(InvalidFieldError, match=f"at most {MAX_DEPTH} levels"):
        compile_targeting(_nested_not(MAX_DEPTH + 1))


# A rule the grammar accepts, and an interpreter written straight from the README's table (the oracle).
NAMES = ("language", "tier", "beta")
VALUES = st.sampled_from(["hi", "bn", "1", "", 0, 1, 2, 1.0, 2.5, -3, True, False])
NUMBERS = st.sampled_from([0, 1, 2, 1.5, -3, 2.0])
OPERATOR = st.one_of(
    st.tuples(st.sampled_from(["$eq", "$ne"]), VALUES),
    st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(VALUES, min_size=1, max_size=4)),
    st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), NUMBERS),
    st.tuples(st.just("$exists"), st.booleans()),
)
ATTRIBUTE_RULE = st.one_of(
    VALUES, st.lists(VALUES, min_size=1, max_size=4), st.lists(OPERATOR, min_size=1, max_size=2).map(dict)
)
ATTRIBUTES = st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=3)


def conditions(depth: int = 3) -> st.SearchStrategy[dict[str, Any]]:
    """Conditions up to `depth` levels: attribute rules and one of $and, $or, $not (28 tests at most)."""
    flat = st.dictionaries(st.sampled_from(NAMES), ATTRIBUTE_RULE, max_size=2)
    if depth == 1:
        return flat
    inner = conditions(depth - 1)
    logical = st.one_of(
        st.just({}),
        st.fixed_dictionaries({"$and": st.lists(inner, min_size=1, max_size=2)}),
        st.fixed_dictionaries({"$or": st.lists(inner, min_size=1, max_size=2)}),
        st.fixed_dictionaries({"$not": inner}),
    )
    return st.tuples(flat, logical).map(lambda parts: parts[0] | parts[1])


def _same(a: Any, b: Any) -> bool:
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _holds(op: str, operand: Any, name: str, attributes: dict[str, Any]) -> bool:
    present, value = name in attributes, attributes.get(name)
    number = present and type(value) in (int, float)
    match op:
        case "$eq":
            return present and _same(value, operand)
        case "$ne":
            return not _holds("$eq", operand, name, attributes)
        case "$in":
            return present and any(_same(value, option) for option in operand)
        case "$nin":
            return not _holds("$in", operand, name, attributes)
        case "$gt":
            return number and value > operand
        case "$gte":
            return number and value >= operand
        case "$lt":
            return number and value < operand
        case "$lte":
            return number and value <= operand
        case "$exists":
            return present == operand
    raise AssertionError(op)


def oracle(rule: dict[str, Any], attributes: dict[str, Any]) -> bool:
    """The README's table, read literally."""
    for key, sub in rule.items():
        if key == "$and":
            ok = all(oracle(c, attributes) for c in sub)
        elif key == "$or":
            ok = any(oracle(c, attributes) for c in sub)
        elif key == "$not":
            ok = not oracle(sub, attributes)
        elif isinstance(sub, dict):
            ok = all(_holds(op, operand, key, attributes) for op, operand in sub.items())
        else:
            ok = _holds("$in" if isinstance(sub, list) else "$eq", sub, key, attributes)
        if not ok:
            return False
    return True


@settings(max_examples=50)
@given(conditions(), ATTRIBUTES)
def test_the_compiled_rule_agrees_with_the_table_read_literally(rule, attributes):
    assert compile_targeting(rule)(attributes) is oracle(rule, attributes)


@settings(max_examples=50)
@given(conditions(), ATTRIBUTES)
def test_not_negates_and_a_one_rule_and_or_is_the_rule(rule, attributes):
    result = compile_targeting(rule)(attributes)
    assert compile_targeting({"$not": rule})(attributes) is not result
    assert compile_targeting({"$and": [rule]})(attributes) is result
    assert compile_targeting({"$or": [rule]})(attributes) is result


@settings(max_examples=50)
@given(conditions(), conditions(), ATTRIBUTES)
def test_de_morgan(first, second, attributes):
    left = compile_targeting({"$not": {"$or": [first, second]}})
    right = compile_targeting({"$and": [{"$not": first}, {"$not": second}]})
    assert left(attributes) is right(attributes)


# The schema the OpenAPI document shows, as one document of its own.
SCHEMA = jsonschema_rs.Draft202012Validator(
    {
        "$ref": f"#/components/schemas/{TARGETING}",
        "components": {"schemas": targeting_schemas("#/components/schemas/{name}")},
    }
)
# Near misses of the grammar: junk values, unknown operators, bad names, empty or scalar combinations.
JUNK = st.one_of(VALUES, st.none(), st.integers(-(2**60), 2**60), st.floats(allow_nan=False), st.text(max_size=3))
LOOSE_RULE = st.one_of(
    JUNK,
    st.lists(JUNK, max_size=3),
    st.dictionaries(
        st.sampled_from([*ATTRIBUTE_OPERATORS, *ATTRIBUTE_OPERATORS, "$not", "$regex", "tier"]),
        st.one_of(JUNK, st.lists(JUNK, max_size=3)),
        max_size=2,
    ),
)


def loose(depth: int = 3) -> st.SearchStrategy[dict[str, Any]]:
    """Rule-shaped values, most of them malformed somewhere."""
    flat = st.dictionaries(st.sampled_from(["tier", "beta", "bad key", "x\n", "$in", "$nor"]), LOOSE_RULE, max_size=2)
    if depth == 1:
        return flat
    inner = loose(depth - 1)
    logical = st.one_of(
        st.just({}),
        st.fixed_dictionaries({"$and": st.lists(inner, max_size=2)}),
        st.fixed_dictionaries({"$or": st.one_of(st.lists(inner, max_size=2), inner)}),
        st.fixed_dictionaries({"$not": st.one_of(inner, JUNK)}),
    )
    return st.tuples(flat, logical).map(lambda parts: parts[0] | parts[1])


def _accepts(rule: Any) -> bool:
    try:
        compile_targeting(rule)
    except InvalidFieldError:
        return False
    return True


@settings(max_examples=50)
@given(conditions())
def test_the_schema_admits_every_rule_of_the_grammar(rule):
    assert SCHEMA.is_valid(rule)


@settings(max_examples=150)  # most near misses are refused: enough examples that some are accepted
@given(loose())
def test_whatever_the_service_accepts_the_schema_admits(rule):
    # The contract test's negative cases rely on it: a body the schema refuses must be refused.
    if _accepts(rule):
        assert SCHEMA.is_valid(rule), rule


def test_the_schema_example_is_a_valid_rule():
    assert SCHEMA.is_valid(TARGETING_EXAMPLE) and _accepts(TARGETING_EXAMPLE)


# Refused on the API, naming the rule's path.
def _deep() -> dict[str, Any]:
    return _nested_not(MAX_DEPTH + 1)


INVALID = [
    pytest.param({"language": {"$regex": "h.*"}}, "targeting.language.$regex", "unknown operator", id="unknown-op"),
    pytest.param({"$nor": [{"tier": 1}]}, "targeting.$nor", "unknown operator", id="unknown-logical"),
    pytest.param({"$in": ["hi"]}, "targeting.$in", "belongs to an attribute", id="attribute-op-at-top"),
    pytest.param({"language": {"$not": {"$eq": "hi"}}}, "targeting.language.$not", "around", id="not-inside"),
    pytest.param({"$or": []}, "targeting.$or", "non-empty list", id="empty-or"),
    pytest.param({"$and": {"tier": 1}}, "targeting.$and", "list of conditions", id="and-not-list"),
    pytest.param(
        {"$or": [{"language": "hi"}, {"tier": {"$gt": "2"}}]},
        "targeting.$or[1].tier.$gt",
        "compares numbers, got a string",
        id="gt-string",
    ),
    pytest.param({"tier": {"$gte": True}}, "targeting.tier.$gte", "got a boolean", id="gte-bool"),
    pytest.param({"tier": {"$lt": 1e16}}, "targeting.tier.$lt", "<= 1000000000000000", id="lt-out-of-range"),
    pytest.param({"language": {"$in": "hi"}}, "targeting.language.$in", "list of values", id="in-not-list"),
    pytest.param({"language": {"$nin": []}}, "targeting.language.$nin", "non-empty", id="nin-empty"),
    pytest.param({"language": {"$in": ["hi", None]}}, "targeting.language.$in[1]", "null", id="in-null"),
    pytest.param({"language": {"$in": [["hi"]]}}, "targeting.language.$in[0]", "got a list", id="in-nested"),
    pytest.param({"language": {"$in": list(range(101))}}, "targeting.language.$in", "at most 100", id="in-101"),
    pytest.param({"language": {"$eq": ["hi"]}}, "targeting.language.$eq", "use a list or $in", id="eq-list"),
    pytest.param({"language": {"$ne": {"x": 1}}}, "targeting.language.$ne", "got an object", id="ne-object"),
    pytest.param({"language": {"$exists": 1}}, "targeting.language.$exists", "true or false", id="exists-number"),
    pytest.param({"language": {}}, "targeting.language", "at least one operator", id="no-operator"),
    pytest.param({"language": None}, "targeting.language", "$exists", id="null-value"),
    pytest.param({"language": "x" * 257}, "targeting.language", "256", id="long-string"),
    pytest.param({"language": ["hi", "a\u0000"]}, "targeting.language[1]", "", id="nul-in-list"),
    pytest.param({"bad name": 1}, "targeting.bad name", "not an attribute name", id="bad-name"),
    pytest.param({"$not": "hi"}, "targeting.$not", "a condition is an object", id="not-a-condition"),
    pytest.param({"$or": [{"tier": 1}, 3]}, "targeting.$or[1]", "got a number", id="or-item-not-object"),
    pytest.param(_deep(), "targeting" + ".$not" * MAX_DEPTH, f"at most {MAX_DEPTH} levels", id="too-deep"),
    pytest.param({"$or": [{"tier": i} for i in range(33)]}, "targeting.$or", "at most 32 conditions", id="or-33-items"),
    pytest.param(
        {"$and": [{f"a{i}": {"$gt": 0, "$lt": 5, "$ne": 3}} for i in range(22)]},
        "targeting.$and[21].a21.$lt",  # the 65th test
        f"at most {MAX_TESTS} attribute tests",
        id="too-many-tests",
    ),
]


@pytest.fixture(scope="module")
def refusing() -> Iterator[TestClient[Litestar]]:
    """One app on the in-memory twin for the whole table: a refused request changes nothing."""
    app = create_app(TEST_SETTINGS, storage=MemoryStorage(), clock=FakeClock(), ids=sequential_ids("targeting"))
    with api_client(app) as client:
        yield client


@pytest.mark.parametrize(("rule", "field", "message"), INVALID)
def test_a_malformed_rule_is_a_422_naming_it(refusing, rule, field, message):
    response = refusing.post("/v1/experiments", json=experiment_body(targeting=rule))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["field"] == field and message in problem["detail"], problem
    assert refusing.get("/v1/experiments/exp").status_code == 404


def test_a_malformed_patch_is_refused_and_the_rule_stays(client):
    started(client, targeting={"language": ["hi"]})
    response = client.patch("/v1/experiments/exp", json={"targeting": {"tier": {"$between": [1, 2]}}})
    assert (response.status_code, response.json()["field"]) == (422, "targeting.tier.$between")
    assert client.get("/v1/experiments/exp").json()["targeting"] == {"language": ["hi"]}


def test_a_targeted_experiment_admits_only_the_units_its_rule_names(client):
    rule = {"language": {"$in": ["hi", "bn"]}, "tier": {"$gte": 2}}
    assert started(client, targeting=rule)["targeting"] == rule
    assert decide(client, unit="u1", attributes={"language": "hi", "tier": 3})["in_experiment"]
    for attributes in ({"language": "hi", "tier": 1}, {"language": "en", "tier": 3}, {"language": "hi"}):
        outside = decide(client, unit="u2", attributes=attributes)
        assert not outside["in_experiment"] and outside["arm"] == "a", attributes
    widened = client.patch("/v1/experiments/exp", json={"targeting": {"$or": [rule, {"tier": {"$gte": 5}}]}})
    assert widened.status_code == 200, widened.text
    assert decide(client, unit="u3", attributes={"language": "en", "tier": 5})["in_experiment"]
