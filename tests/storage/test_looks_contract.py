"""The storage contract for stored always-valid looks (memory twin, SQLite with and without speed-ups,
PostgreSQL): the running minimum p-value and running intersection, merged atomically per (metric, arm)."""

from __future__ import annotations

import asyncio
import functools
import math
from typing import Any

import msgspec
import numpy as np
import pytest

from bandit_service.core.looks import SequentialLook, merge_look, merge_looks
from bandit_service.ports import Storage
from bandit_service.settings import Settings
from bandit_service.storage.database import open_database
from bandit_service.storage.sql_storage import SqlStorage
from tests.storage.test_contract import T0, contract, create

INF = math.inf
NAN = math.nan


def look(
    p: float, lower: float, upper: float, *, metric: str = "reward", arm: str = "b", at: float = T0
) -> SequentialLook:
    return SequentialLook(metric=metric, arm=arm, p_value=p, lower=lower, upper=upper, first_at=at, last_at=at)


def rows(looks: tuple[SequentialLook, ...]) -> list[tuple[Any, ...]]:
    """Looks as comparable tuples (NaN as None: NaN != NaN)."""

    def value(x: float) -> float | None:
        return None if math.isnan(x) else x

    return [
        (x.metric, x.arm, value(x.p_value), value(x.lower), value(x.upper), x.looks, x.first_at, x.last_at)
        for x in looks
    ]


@contract
async def test_the_p_value_never_rises_and_the_interval_never_widens(storage: Storage) -> None:
    exp = await create(storage)
    assert await storage.sequential_looks(exp.id) == ()
    first = await storage.record_looks(exp.id, [look(0.2, -1.0, 2.0)])
    assert rows(first) == [("reward", "b", 0.2, -1.0, 2.0, 1, T0, T0)]
    # A higher p-value and a shifted interval: the p-value stays, the bounds intersect.
    second = await storage.record_looks(exp.id, [look(0.3, -0.5, 3.0, at=T0 + 10)])
    assert rows(second) == [("reward", "b", 0.2, -0.5, 2.0, 2, T0, T0 + 10)]
    third = await storage.record_looks(exp.id, [look(0.01, -2.0, 1.5, at=T0 + 20)])
    assert rows(third) == [("reward", "b", 0.01, -0.5, 1.5, 3, T0, T0 + 20)]
    assert rows(await storage.sequential_looks(exp.id)) == rows(third)


@contract
async def test_a_look_under_other_settings_starts_the_running_figures_afresh(storage: Storage) -> None:
    """A running minimum over looks at several levels or mixtures is no always-valid p-value: other
    settings replace the row, and looks under the new settings merge from there."""
    exp = await create(storage)
    at_95 = msgspec.structs.replace(look(0.01, 0.1, 0.5), settings="level 0.95, tuning_n 5000")
    await storage.record_looks(exp.id, [at_95])
    at_99 = msgspec.structs.replace(look(0.2, -0.1, 0.9, at=T0 + 10), settings="level 0.99, tuning_n 5000")
    after = await storage.record_looks(exp.id, [at_99])
    assert rows(after) == [("reward", "b", 0.2, -0.1, 0.9, 1, T0 + 10, T0 + 10)]
    assert after[0].settings == "level 0.99, tuning_n 5000"
    again = msgspec.structs.replace(look(0.3, 0.0, 1.0, at=T0 + 20), settings="level 0.99, tuning_n 5000")
    merged = await storage.record_looks(exp.id, [again])
    assert rows(merged) == [("reward", "b", 0.2, 0.0, 0.9, 2, T0 + 10, T0 + 20)]
    assert rows(merged) == rows((merge_look(merge_look(at_95, at_99), again),))
    assert rows(await storage.sequential_looks(exp.id)) == rows(merged)


@contract
async def test_stored_looks_match_merge_look_over_random_sequences(storage: Storage) -> None:
    """Oracle: `core.looks.merge_look` folded in order, and the closed forms (min p, max lower, min upper)."""
    rng = np.random.default_rng(20_261_201)
    exp = await create(storage)
    keys = [(m, a) for m in ("reward", "latency_ms") for a in ("b", "c", "Arm-2")]
    batches: list[list[SequentialLook]] = []
    for i in range(12):
        batch = []
        for metric, arm in keys:
            if rng.random() < 0.3:
                continue  # not every arm is in every look
            p = NAN if rng.random() < 0.15 else float(rng.uniform(0, 1))
            centre, half = float(rng.normal()), float(rng.exponential())
            lower, upper = (-INF, INF) if rng.random() < 0.15 else (centre - half, centre + half)
            batch.append(look(p, lower, upper, metric=metric, arm=arm, at=T0 + i))
        batches.append(batch)
    expected: tuple[SequentialLook, ...] = ()
    for batch in batches:
        got = await storage.record_looks(exp.id, batch)
        expected = merge_looks(expected, batch)
        assert rows(got) == rows(expected)
    for metric, arm in keys:
        seen = [x for batch in batches for x in batch if x.key == (metric, arm)]
        stored = next(x for x in expected if x.key == (metric, arm))
        ps = [x.p_value for x in seen if not math.isnan(x.p_value)]
        assert stored.p_value == min(ps)
        assert stored.lower == max(x.lower for x in seen) and stored.upper == min(x.upper for x in seen)
        assert stored.looks == len(seen) and stored.first_at == min(x.first_at for x in seen)
    assert rows(await storage.sequential_looks(exp.id)) == rows(expected)


@contract
async def test_infinite_bounds_round_trip_and_narrow(storage: Storage) -> None:
    exp = await create(storage)
    stored = await storage.record_looks(exp.id, [look(1.0, -INF, INF), look(0.5, -INF, 4.0, arm="c")])
    assert rows(stored) == [("reward", "b", 1.0, -INF, INF, 1, T0, T0), ("reward", "c", 0.5, -INF, 4.0, 1, T0, T0)]
    assert rows(await storage.sequential_looks(exp.id)) == rows(stored)
    narrowed = await storage.record_looks(exp.id, [look(0.9, -1.0, INF), look(0.6, -INF, INF, arm="c")])
    assert rows(narrowed) == [("reward", "b", 0.9, -1.0, INF, 2, T0, T0), ("reward", "c", 0.5, -INF, 4.0, 2, T0, T0)]


@contract
async def test_a_nan_p_value_keeps_the_stored_one(storage: Storage) -> None:
    exp = await create(storage)
    first = await storage.record_looks(exp.id, [look(NAN, NAN, NAN)])  # no figure yet: stored as none
    assert rows(first) == [("reward", "b", None, None, None, 1, T0, T0)]
    assert math.isnan((await storage.sequential_looks(exp.id))[0].p_value)
    assert rows(await storage.record_looks(exp.id, [look(0.4, -1.0, 1.0)])) == [
        ("reward", "b", 0.4, -1.0, 1.0, 2, T0, T0)
    ]
    assert rows(await storage.record_looks(exp.id, [look(NAN, NAN, NAN, at=T0 + 5)])) == [
        ("reward", "b", 0.4, -1.0, 1.0, 3, T0, T0 + 5)
    ]


@contract
async def test_unknown_first_times_are_filled_by_later_looks(storage: Storage) -> None:
    exp = await create(storage)
    await storage.record_looks(exp.id, [look(0.5, -1.0, 1.0, at=0.0)])
    assert rows(await storage.record_looks(exp.id, [look(0.5, -1.0, 1.0, at=T0)])) == [
        ("reward", "b", 0.5, -1.0, 1.0, 2, T0, T0)
    ]


@contract
async def test_experiments_keep_their_looks_apart(storage: Storage) -> None:
    one, two = await create(storage, "one"), await create(storage, "two")
    await storage.record_looks(one.id, [look(0.1, -1.0, 1.0)])
    await storage.record_looks(two.id, [look(0.7, -3.0, 3.0), look(0.2, 0.0, 1.0, metric="error")])
    assert rows(await storage.sequential_looks(one.id)) == [("reward", "b", 0.1, -1.0, 1.0, 1, T0, T0)]
    assert rows(await storage.sequential_looks(two.id)) == [
        ("error", "b", 0.2, 0.0, 1.0, 1, T0, T0),
        ("reward", "b", 0.7, -3.0, 3.0, 1, T0, T0),
    ]
    assert await storage.record_looks(two.id, []) == await storage.sequential_looks(two.id)
    assert await storage.sequential_looks(one.id + two.id + 100) == ()


def _concurrent_looks(n: int) -> list[list[SequentialLook]]:
    rng = np.random.default_rng(7)
    return [
        [
            look(float(p), -float(w), float(w), at=T0 + i),
            look(float(q), -float(w) / 2, float(w) * 2, arm="c", at=T0 + i),
        ]
        for i, (p, q, w) in enumerate(rng.uniform(0.001, 1.0, size=(n, 3)))
    ]


@contract
async def test_concurrent_reports_all_merge_and_the_smallest_p_value_wins(storage: Storage) -> None:
    exp = await create(storage)
    reports = _concurrent_looks(24)
    await storage.record_looks(exp.id, reports[0])
    await asyncio.gather(*(storage.record_looks(exp.id, r) for r in reports[1:]))
    expected = functools.reduce(merge_looks, reports, ())
    stored = await storage.sequential_looks(exp.id)
    assert rows(stored) == rows(expected)
    assert stored[0].p_value == min(r[0].p_value for r in reports) and stored[0].looks == 24


@pytest.mark.parametrize("storage", ["sqlite", "sqlite-plain", "postgresql"], indirect=True)  # SQL only: two writers
def test_replicas_recording_at_once_lose_no_look(storage: Storage) -> None:
    """Two SQL storages (two writers, as two replicas have) on one database, recording concurrently."""
    assert isinstance(storage, SqlStorage)
    url = storage.database.write.url.render_as_string(hide_password=False)
    other = SqlStorage(open_database(Settings(database_url=url)))
    reports = _concurrent_looks(40)

    async def run() -> None:
        await storage.open()
        await other.open()
        try:
            exp = await create(storage)
            # The rows exist first, so the racing writers update them (an insert race fails loudly instead).
            await storage.record_looks(exp.id, reports[0])
            await asyncio.gather(
                *(s.record_looks(exp.id, r) for i, r in enumerate(reports[1:]) for s in [(storage, other)[i % 2]])
            )
            stored = await other.sequential_looks(exp.id)
            assert rows(stored) == rows(functools.reduce(merge_looks, reports, ()))
            assert [x.looks for x in stored] == [40, 40]
        finally:
            await other.close()
            await storage.close()

    asyncio.run(run())


def test_merge_look_is_what_the_memory_twin_applies() -> None:
    """The twin's oracle itself, on one case by hand: NaN never wins, bounds intersect, looks add."""
    merged = merge_look(look(0.3, -1.0, 2.0), look(NAN, -INF, 1.0, at=T0 + 1))
    assert rows((merged,)) == [("reward", "b", 0.3, -1.0, 1.0, 2, T0, T0 + 1)]
