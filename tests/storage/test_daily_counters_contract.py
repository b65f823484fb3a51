"""The storage contract of dated counters: each trial counts on the UTC day its opening decision was made.

Exposures, rewards and expiry that come on a later day still count on the trial's day; reports
over a window read only its days, the daily series sums the weights periods of each day, and
segments filter their decisions by the same days. Run on the memory twin, SQLite and PostgreSQL.
"""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from bandit_service.core.model import Decision, Exposure, RewardWrite
from bandit_service.core.report_data import day_of
from bandit_service.ports import Storage
from bandit_service.storage.sketches import SKETCH_ACCURACY
from policies.sketch import QuantileSketch
from tests.storage.test_contract import T0, contract, create, decision, firsts, reward_of, weights, write

DAY = 86_400.0
A = day_of(T0)  # the first day
B = A + 1


def on(d: Decision, day: int) -> Decision:
    """The decision made at 08:00 UTC on `day`, its reward window one hour."""
    at = day * DAY + 8 * 3600
    return msgspec.structs.replace(d, created_at=at, expires_at=at + 3600)


async def two_days(storage: Storage):
    """Trials opened on days A and B, with exposures, rewards and an expiry arriving later."""
    exp = await create(storage, "exp", default_reward=0.25)
    await write(storage, lambda tx: tx.append_weights(weights(exp, 1)))
    await write(storage, lambda tx: tx.append_weights(weights(exp, 2)))
    d1 = on(decision(exp, "d1", 0, lang="en"), A)
    d2 = on(decision(exp, "d2", 1, lang="de"), A)
    d3 = on(decision(exp, "d3", 0, version=2, lang="en"), B)
    d4 = on(decision(exp, "d4", 1, lang="en"), B)
    await write(storage, lambda tx: tx.insert_decisions([d1, d2]))
    await write(storage, lambda tx: tx.insert_decisions([d3, d4]))
    # Two exposures of d1's unit trial, served on day B: they count on day A, the trial's.
    exposure = Exposure(experiment_id=exp.id, arm=0, weights_version=1, trial_id="d1")
    await write(storage, lambda tx: tx.count_exposures([exposure, exposure]))
    rewards = [
        reward_of(exp, d2, 1.0, {"latency_ms": 10.0, "error": 0.0}),  # on day B, for a day-A trial
        reward_of(exp, d3, 1.0, {"latency_ms": 30.0}),
    ]
    await write(storage, lambda tx: tx.insert_rewards(firsts(rewards)))
    await write(storage, lambda tx: tx.expire_decisions(["d4"]))
    return exp


@contract
async def test_a_trial_counts_on_the_day_it_opened(storage: Storage) -> None:
    exp = await two_days(storage)
    daily = await storage.daily_counters(exp)
    assert daily.days == (A, B)
    assert daily.trials.tolist() == [[1, 1], [1, 1]]
    assert daily.exposures.tolist() == [[3, 1], [1, 1]]
    assert daily.units.tolist() == [[1, 1], [1, 1]]
    assert daily.rewarded.tolist() == [[0, 1], [1, 0]]
    assert daily.reward.n.tolist() == [[0, 1], [1, 1]]
    assert daily.reward.total.tolist() == [[0.0, 1.0], [1.0, 0.25]]  # d4 expired with the default
    assert sorted(daily.metrics) == ["error", "latency_ms"]
    assert daily.metrics["latency_ms"].total.tolist() == [[0.0, 10.0], [30.0, 0.0]]
    assert daily.metrics["error"].n.tolist() == [[0, 1], [0, 0]]

    only_a = await storage.daily_counters(exp, A, A)
    assert only_a.days == (A,) and only_a.trials.tolist() == [[1, 1]]
    assert (await storage.daily_counters(exp, B, None)).days == (B,)
    assert (await storage.daily_counters(exp, None, A - 1)).days == ()
    assert (await storage.daily_counters(exp, B + 1, None)).trials.shape == (0, 2)


@contract
async def test_a_report_over_a_window_counts_only_the_trials_opened_in_it(storage: Storage) -> None:
    exp = await two_days(storage)
    whole = await storage.report_data(exp)
    first = await storage.report_data(exp, until_day=A)
    second = await storage.report_data(exp, since_day=B)
    assert whole.counters.versions == (1, 2)
    assert first.counters.versions == (1,)
    assert (first.counters.trials.tolist(), first.counters.exposures.tolist()) == ([[1, 1]], [[3, 1]])
    assert second.counters.versions == (1, 2)  # still stratified by weights period
    assert second.counters.trials.tolist() == [[0, 1], [1, 0]]
    assert second.counters.expired.tolist() == [[0, 1], [0, 0]]
    # The two days partition the whole: every counter adds up.
    for name in ("trials", "units", "rewarded", "expired"):
        total = getattr(first.counters, name).sum(axis=0) + getattr(second.counters, name).sum(axis=0)
        np.testing.assert_array_equal(total, getattr(whole.counters, name).sum(axis=0))
    np.testing.assert_array_equal(
        first.counters.reward.total.sum(axis=0) + second.counters.reward.total.sum(axis=0),
        whole.counters.reward.total.sum(axis=0),
    )
    assert first.history == second.history == whole.history  # the weights of every version
    # Sketches are not dated: a window's are made from its trials' rewards.
    empty = QuantileSketch(relative_accuracy=SKETCH_ACCURACY)
    assert whole.counters.sketches == {"latency_ms": (empty.add([30.0]), empty.add([10.0]))}
    assert first.counters.sketches == {"latency_ms": (empty, empty.add([10.0]))}
    assert second.counters.sketches == {"latency_ms": (empty.add([30.0]), empty)}
    both = await storage.report_data(exp, since_day=A, until_day=B)
    assert both.counters.sketches == whole.counters.sketches
    np.testing.assert_array_equal(both.counters.trials, whole.counters.trials)
    assert (await storage.report_data(exp, since_day=B + 1)).counters.versions == ()


@contract
async def test_segments_over_a_window_filter_their_decisions_by_day(storage: Storage) -> None:
    exp = await two_days(storage)
    data = await storage.segment_data(exp, "lang", 10, B, None)
    assert list(data.segments) == ["en"]  # d2, the one "de" decision, opened on day A
    en = data.segments["en"]
    assert en.versions == (1, 2) and en.trials.tolist() == [[0, 1], [1, 0]]
    assert en.reward.total.tolist() == [[0.0, 0.25], [1.0, 0.0]]
    assert en.metrics["latency_ms"].total.tolist() == [[0.0, 0.0], [30.0, 0.0]]
    first = await storage.segment_data(exp, "lang", 10, None, A)
    assert list(first.segments) == ["de", "en"]
    assert first.segments["de"].metrics["latency_ms"].total.tolist() == [[0.0, 10.0]]
    whole = await storage.segment_data(exp, "lang", 10)
    np.testing.assert_array_equal(
        whole.segments["en"].trials.sum(axis=0), en.trials.sum(axis=0) + first.segments["en"].trials.sum(axis=0)
    )


@contract
async def test_a_later_reward_of_an_unknown_decision_has_no_day(storage: Storage) -> None:
    exp = await create(storage, "exp")
    ghost = reward_of(exp, decision(exp, "ghost", 0), 1.0)
    with pytest.raises(RuntimeError, match="no decision 'ghost'"):
        await write(storage, lambda tx: tx.insert_rewards([RewardWrite(reward=ghost, before=0.0, after=1.0)]))
    assert (await storage.daily_counters(exp)).days == ()
