"""The feature cache: what another process changes reaches this one within the cache's bound, through the
change feed the experiment cache polls (features created, replaced, deleted; experiments joining and leaving)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from bandit_service.clock import FakeClock
from bandit_service.core.model import Experiment, Feature
from bandit_service.ports import WriteTx
from bandit_service.services.cache import ExperimentCache
from bandit_service.services.features import FeatureCache, FeatureDeletion, delete_features, save_features
from bandit_service.storage.memory import MemoryStorage
from tests.storage.test_contract import new_experiment, write

BOUND_S = 1.0


class Replica:
    """This process's caches over a storage that 'another process' writes to directly."""

    def __init__(self, storage: MemoryStorage, clock: FakeClock) -> None:
        self.storage = storage
        self.clock = clock
        self.experiments = ExperimentCache(storage, clock, BOUND_S)
        self.features = FeatureCache(storage, self.experiments)

    async def served_by(self, key: str) -> list[str] | None:
        found = await self.features.lookup(key)
        return None if found is None else [e.key for e in found[1]]

    async def later(self) -> None:
        self.clock.advance(BOUND_S)


def feature(key: str, default: Any = None) -> Feature:
    return Feature(key=key, description="", default_payload=default, created_at=1.0, updated_at=1.0)


async def attach(storage: MemoryStorage, key: str, serves: str | None, priority: int = 0) -> Experiment:
    def change(tx: WriteTx) -> Experiment:
        current = tx.experiment(key)
        if current is None:
            made = new_experiment(key, status="active")
            config = msgspec.structs.replace(made.config, feature=serves, priority=priority, targeting={})
            return tx.insert_experiment(msgspec.structs.replace(made, config=config))
        config = msgspec.structs.replace(current.config, feature=serves, priority=priority)
        updated = tx.update_experiment(msgspec.structs.replace(current, config=config))
        assert updated is not None
        return updated

    experiment: Experiment = await write(storage, change)
    return experiment


def run(scenario: Callable[[MemoryStorage, FakeClock], Awaitable[None]]) -> None:
    async def opened() -> None:
        storage = MemoryStorage()
        await storage.open()
        await scenario(storage, FakeClock())

    asyncio.run(opened())


def test_changes_by_another_process_arrive_within_the_bound() -> None:
    async def scenario(storage: MemoryStorage, clock: FakeClock) -> None:
        here = Replica(storage, clock)
        assert await here.served_by("nmt") is None  # unknown, and remembered as unknown
        await storage.write(save_features, feature("nmt", {"model": "v1"}))
        assert await here.served_by("nmt") is None  # within the bound: the cached answer
        await here.later()
        assert await here.served_by("nmt") == []
        found = await here.features.lookup("nmt")
        assert found is not None and found[0].default_payload == {"model": "v1"}

        await storage.write(save_features, feature("nmt", {"model": "v2"}))  # replaced elsewhere
        await attach(storage, "first", "nmt", priority=1)  # joins
        await attach(storage, "second", "nmt", priority=0)
        await here.later()
        found = await here.features.lookup("nmt")
        assert found is not None and found[0].default_payload == {"model": "v2"}
        assert [e.key for e in found[1]] == ["second", "first"]  # priority order

        await attach(storage, "second", "nmt", priority=2)  # reordered
        await attach(storage, "first", None)  # leaves
        await attach(storage, "third", "asr")  # serves another feature
        await here.later()
        assert await here.served_by("nmt") == ["second"]
        assert await here.served_by("asr") is None  # `asr` does not exist: the experiment names it in vain

        await attach(storage, "second", None)
        await storage.write(delete_features, FeatureDeletion(key="nmt", now=2.0))
        await here.later()
        assert await here.served_by("nmt") is None  # the tombstone reached this process

    run(scenario)


def test_a_change_reported_while_reading_a_feature_makes_the_read_start_again() -> None:
    async def scenario(storage: MemoryStorage, clock: FakeClock) -> None:
        await storage.write(save_features, feature("nmt"))
        here = Replica(storage, clock)
        await here.experiments.fresh()  # the first poll
        reads = []
        plain = storage.feature_experiments

        async def slow_read(key: str) -> list[Experiment]:
            found = await plain(key)
            reads.append([e.key for e in found])
            if len(reads) == 1:  # meanwhile another process attaches one, and a poll reports it
                await attach(storage, "late", "nmt")
                await here.later()
                await here.experiments.fresh()
            return found

        storage.feature_experiments = slow_read  # type: ignore[method-assign]
        assert await here.served_by("nmt") == ["late"]
        assert reads == [[], ["late"]]  # the first read was not kept
        assert await here.served_by("nmt") == ["late"]
        assert len(reads) == 2  # the second one was

    run(scenario)


def test_a_change_this_process_makes_is_seen_at_once() -> None:
    async def scenario(storage: MemoryStorage, clock: FakeClock) -> None:
        here = Replica(storage, clock)
        assert await here.served_by("nmt") is None
        await storage.write(save_features, feature("nmt"))
        here.features.forget("nmt")  # as FeatureService does after its own write
        assert await here.served_by("nmt") == []
        here.experiments.put(await attach(storage, "mine", "nmt"))  # as ExperimentService does
        assert await here.served_by("nmt") == ["mine"]

    run(scenario)
