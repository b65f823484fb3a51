"""The sticky store: a bounded LRU shared by threads, and the protocol an app backs with Redis."""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Callable

import pytest

import bandit_service.client.sticky as sticky_module
from bandit_service.client.sticky import DEFAULT_MAX_UNITS, MemoryStickyStore, StickyStore


def test_it_keeps_the_most_recently_used_assignments_up_to_its_bound() -> None:
    store = MemoryStickyStore(max_units=3)
    for unit in ("u1", "u2", "u3"):
        store.set("exp", unit, f"arm-{unit}")
    assert store.get("exp", "u1") == "arm-u1"  # u1 is now the most recently used
    store.set("exp", "u4", "arm-u4")  # evicts u2, the least recently used
    assert store.get("exp", "u2") is None
    assert [store.get("exp", u) for u in ("u1", "u3", "u4")] == ["arm-u1", "arm-u3", "arm-u4"]
    assert len(store) == 3


def test_assignments_are_per_experiment_and_a_set_replaces_the_arm() -> None:
    store = MemoryStickyStore()
    store.set("one", "u1", "a")
    store.set("two", "u1", "b")
    assert (store.get("one", "u1"), store.get("two", "u1"), store.get("three", "u1")) == ("a", "b", None)
    store.set("one", "u1", "c")
    assert store.get("one", "u1") == "c" and len(store) == 2
    store.clear()
    assert store.get("one", "u1") is None and len(store) == 0


def test_the_default_bound_and_a_bad_one() -> None:
    assert MemoryStickyStore().max_units == DEFAULT_MAX_UNITS == 100_000
    with pytest.raises(ValueError, match="max_units"):
        MemoryStickyStore(max_units=0)


def test_threads_sharing_a_store_never_break_it_or_exceed_its_bound() -> None:
    store = MemoryStickyStore(max_units=500)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work(worker: int) -> None:
        try:
            start.wait()
            for i in range(5_000):
                unit = f"u{(i * 7 + worker) % 1_000}"  # overlapping units: gets, sets and evictions interleave
                arm = store.get("exp", unit)
                if arm is None:
                    store.set("exp", unit, f"arm-{unit}")
                else:
                    assert arm == f"arm-{unit}"  # never another unit's arm
        except BaseException as exc:  # reported to the test thread, which fails on it
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store) == 500


def _redis_example() -> type:
    """The Redis-backed store shown in the module's docstring, as written there."""
    doc = sticky_module.__doc__
    assert doc is not None
    start = doc.index("    class RedisStickyStore:")
    end = doc.index("\nA store is asked")
    namespace: dict[str, object] = {}
    exec(textwrap.dedent(doc[start:end]), namespace)
    example = namespace["RedisStickyStore"]
    assert isinstance(example, type)
    return example


class FakeRedis:
    """The three redis-py calls the example uses, over dicts (bytes out, as redis-py answers)."""

    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, bytes]] = {}
        self.ttl: dict[str, int] = {}

    def hget(self, key: str, field: str) -> bytes | None:
        return self.hashes.get(key, {}).get(field)

    def hset(self, key: str, field: str, value: str) -> int:
        self.hashes.setdefault(key, {})[field] = value.encode()
        return 1

    def expire(self, key: str, seconds: int) -> bool:
        self.ttl[key] = seconds
        return True


@pytest.mark.parametrize(
    "make",
    [pytest.param(MemoryStickyStore, id="memory"), pytest.param(lambda: _redis_example()(FakeRedis()), id="redis")],
)
def test_the_memory_store_and_the_documented_redis_store_are_sticky_stores(make: Callable[[], StickyStore]) -> None:
    store = make()
    assert isinstance(store, StickyStore)
    assert store.get("exp", "u1") is None
    store.set("exp", "u1", "b")
    assert store.get("exp", "u1") == "b" and store.get("other", "u1") is None
