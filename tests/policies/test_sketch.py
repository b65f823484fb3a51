"""The quantile sketch: relative error against numpy.quantile, exact merges, storage round trips."""

import math

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.sketch import QuantileSketch

QS = [0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0]


def assert_within_accuracy(sketch, values, accuracy):
    for q in QS:
        exact = np.quantile(values, q, method="lower")  # the order statistic x_(floor(q (n - 1)))
        got = sketch.quantile(q)
        assert abs(got - exact) <= accuracy * exact * (1 + 1e-9), (q, got, exact)


@pytest.mark.parametrize("accuracy", [0.01, 0.05])
@pytest.mark.parametrize(
    "draw",
    [
        pytest.param(lambda rng: rng.lognormal(4.0, 1.5, 50_000), id="lognormal-latency"),
        pytest.param(lambda rng: rng.exponential(0.003, 20_000), id="exponential-seconds"),
        pytest.param(lambda rng: np.concatenate([np.zeros(500), rng.pareto(1.5, 5_000)]), id="zeros-and-heavy-tail"),
        pytest.param(lambda rng: rng.uniform(100.0, 101.0, 3_000), id="narrow"),
    ],
)
def test_relative_error_bound(rng, draw, accuracy):
    values = draw(rng)
    assert_within_accuracy(QuantileSketch(accuracy).add(values), values, accuracy)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 1e9, allow_subnormal=False), min_size=1, max_size=200))
def test_relative_error_bound_on_any_values(values):
    assert_within_accuracy(QuantileSketch(0.02).add(values), np.asarray(values), 0.02)


def test_merge_is_exact_associative_and_commutative(rng):
    parts = [rng.lognormal(3.0, 1.0, n) for n in (1_000, 1, 2_500)]
    a, b, c = (QuantileSketch().add(p) for p in parts)
    orders = [(a + b) + c, a + (b + c), c + b + a]
    for merged in orders[1:]:  # bucket counts are integers: equal exactly; the float total to rounding
        assert msgspec.structs.replace(merged, total=0.0) == msgspec.structs.replace(orders[0], total=0.0)
        assert merged.total == pytest.approx(orders[0].total, rel=1e-12)
    whole = QuantileSketch().add(np.concatenate(parts))
    assert (a + b + c).counts == whole.counts and (a + b + c).keys == whole.keys
    assert (a + b + c).count == 3_501 and (a + b + c).total == pytest.approx(whole.total)
    assert a + QuantileSketch() == a


def test_adding_returns_a_new_value():
    empty = QuantileSketch()
    one = empty.add(5.0)
    assert empty.count == 0 and one.count == 1
    assert one.quantile(0.5) == 5.0  # clamped to the exact minimum and maximum
    assert math.isnan(empty.quantile(0.5)) and math.isnan(empty.mean)
    assert empty.add([]) is empty


def test_storage_round_trip(rng):
    sketch = QuantileSketch(0.02).add(rng.exponential(50.0, 1_000)).add([0.0, 0.0])
    assert QuantileSketch.from_dict(sketch.to_dict()) == sketch
    assert msgspec.json.decode(msgspec.json.encode(sketch.to_dict()), type=QuantileSketch) == sketch
    assert sketch.mean == pytest.approx(sketch.total / 1_002)


BAD = [
    pytest.param(lambda: QuantileSketch(0.0), "relative_accuracy", id="accuracy-zero"),
    pytest.param(lambda: QuantileSketch(1.0), "relative_accuracy", id="accuracy-one"),
    pytest.param(lambda: QuantileSketch().add([1.0, -2.0]), "values", id="negative"),
    pytest.param(lambda: QuantileSketch().add([float("nan")]), "values", id="nan"),
    pytest.param(lambda: QuantileSketch().add(1.0).quantile(1.5), "q", id="q"),
    pytest.param(lambda: QuantileSketch(0.01).add(1.0) + QuantileSketch(0.02).add(1.0), "relative_accuracy", id="mix"),
    pytest.param(lambda: QuantileSketch.from_dict({"count": 3, "keys": [1], "counts": [2]}), "count", id="count"),
    pytest.param(lambda: QuantileSketch.from_dict({"keys": [2, 1], "counts": [1, 1]}), "keys", id="unsorted"),
    pytest.param(lambda: QuantileSketch.from_dict({"keys": [1], "counts": [1, 2]}), "lengths", id="lengths"),
    pytest.param(lambda: QuantileSketch.from_dict({"bins": {}}), "unknown field", id="unknown-field"),
]


@pytest.mark.parametrize(("call", "message"), BAD)
def test_bad_input_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
