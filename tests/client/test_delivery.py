"""The sending rules without I/O: the outbox, the backoff, Retry-After, and how each batch answer settles its items."""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import msgspec
import pytest

from bandit_service.client.delivery import Delivery
from bandit_service.client.outbox import Outbox
from bandit_service.client.retry import Backoff, parse_retry_after
from bandit_service.client.stats import Counters
from bandit_service.client.wire import Answer, HttpCall, Outcome, RewardItem
from bandit_service.core.definitions import LoggedDecisionIn


def test_the_outbox_drops_the_oldest_and_logs_at_powers_of_two(caplog: pytest.LogCaptureFixture) -> None:
    box: Outbox[int] = Outbox("reward", 3, itertools.count().__next__)
    with caplog.at_level(logging.WARNING, "bandit_service.client"):
        for i in range(8):
            box.put(i)
    assert [e.item for e in box.take(10)] == [5, 6, 7]
    assert box.dropped == 5
    assert [r.getMessage().rsplit(";", 1)[1] for r in caplog.records] == [
        " 1 dropped so far",
        " 2 dropped so far",
        " 4 dropped so far",
    ]


def test_the_outbox_puts_retries_back_in_order_and_counts_what_is_in_flight() -> None:
    box: Outbox[str] = Outbox("reward", 10, itertools.count().__next__)
    for item in "abcde":
        box.put(item)
    taken = box.take(3)
    assert (len(box), box.queued, box.oldest()) == (5, 2, 0)
    box.settle(taken, retry=[taken[0], taken[2]])
    assert [e.item for e in box.take(10)] == ["a", "c", "d", "e"]


def test_rewards_are_taken_only_below_the_logs_watermark() -> None:
    sequence = itertools.count().__next__
    logs: Outbox[str] = Outbox("decision log", 10, sequence)
    rewards: Outbox[str] = Outbox("reward", 10, sequence)
    rewards.put("r0")
    logs.put("log1")
    rewards.put("r1 (for log1)")
    assert [e.item for e in rewards.take(10, below=logs.watermark())] == ["r0"]
    logs.settle(logs.take(10))
    assert [e.item for e in rewards.take(10, below=logs.watermark())] == ["r1 (for log1)"]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        pytest.param("7", 7.0, id="seconds"),
        pytest.param(" 0 ", 0.0, id="zero"),
        pytest.param(None, None, id="absent"),
        pytest.param("soon", None, id="garbage"),
        pytest.param("-3", None, id="negative"),
    ],
)
def test_retry_after_seconds(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now.timestamp) == 0.0


def test_backoff_is_full_jitter_under_a_growing_cap() -> None:
    backoff = Backoff(base_s=0.1, max_s=1.0, max_retry_after_s=60.0)
    rng = random.Random(7)
    for attempt, cap in [(0, 0.1), (1, 0.2), (3, 0.8), (4, 1.0), (100, 1.0)]:
        waits = [backoff.delay(attempt, rng) for _ in range(200)]
        assert min(waits) >= 0.0 and max(waits) <= cap
        assert max(waits) > cap / 2  # spread over the range, not a fixed wait
    assert backoff.delay(0, rng, retry_after_s=5.0) == 5.0  # the service's word is a floor
    assert backoff.delay(0, rng, retry_after_s=1e6) == 60.0  # capped


@pytest.mark.parametrize(
    "options", [{"base_s": 0.0}, {"base_s": 2.0, "max_s": 1.0}, {"max_retry_after_s": -1.0}], ids=str
)
def test_bad_backoffs_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="_s"):
        Backoff(**options)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_delivery(clock: Clock, batch_size: int = 4) -> tuple[Delivery, Counters]:
    counters = Counters()
    delivery = Delivery(
        batch_size=batch_size,
        max_queue=100,
        interval_s=1.0,
        send_timeout_s=5.0,
        backoff=Backoff(base_s=1.0, max_s=8.0),
        counters=counters,
        clock=clock,
        rng=random.Random(3),
    )
    return delivery, counters


def reward(i: int) -> RewardItem:
    return RewardItem(decision_id=f"d{i}", reward=1.0, idempotency_key=f"k{i}")


def answer(status: int, body: object = None, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, httpx.Headers(headers or {}), msgspec.json.encode(body))


def results(*statuses: int) -> Answer:
    return answer(200, {"results": [{"status": s} for s in statuses]})


def run(cycle: Generator[HttpCall, Outcome, None], *outcomes: Outcome) -> list[HttpCall]:
    """Drive one cycle, answering its calls with `outcomes` in turn; the calls it made."""
    calls = []
    try:
        calls.append(next(cycle))
        for outcome in outcomes:
            calls.append(cycle.send(outcome))
    except StopIteration:
        return calls
    raise AssertionError(f"the cycle wants more answers after {len(calls)} calls")


def test_retry_after_is_honoured_even_by_a_flush() -> None:
    clock = Clock()
    delivery, counters = make_delivery(clock)
    delivery.put_reward(reward(0))
    delivery.request_flush()
    assert delivery.due()
    run(delivery.cycle(), answer(429, {}, {"Retry-After": "30"}))
    delivery.request_flush()
    assert not delivery.due()
    assert delivery.sleep_s() == pytest.approx(30.0)
    clock.now += 30.0
    assert delivery.due()
    run(delivery.cycle(), results(200))
    assert (counters.snapshot().sent, counters.snapshot().retried, len(delivery.rewards)) == (1, 1, 0)


def test_a_flush_skips_the_backoff_of_a_network_error() -> None:
    clock = Clock()
    delivery, _ = make_delivery(clock)
    delivery.put_reward(reward(0))
    delivery.request_flush()
    run(delivery.cycle(), httpx.ConnectError("down"))
    run(delivery.cycle(), httpx.ConnectError("down"))
    assert not delivery.due()  # backing off, and no interval has passed
    delivery.request_flush()
    assert delivery.due()


def test_the_interval_and_a_full_batch_make_a_cycle_due() -> None:
    clock = Clock()
    delivery, _ = make_delivery(clock, batch_size=2)
    assert not delivery.due() and delivery.sleep_s() is None
    delivery.put_reward(reward(0))
    assert not delivery.due() and delivery.sleep_s() == pytest.approx(1.0)
    delivery.put_reward(reward(1))
    assert delivery.due()
    run(delivery.cycle(), results(200, 200))
    delivery.put_reward(reward(2))
    clock.now += 1.0
    assert delivery.due()


def test_each_item_settles_on_its_own_status(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    delivery, counters = make_delivery(clock)
    for i in range(4):
        delivery.put_reward(reward(i))
    delivery.request_flush()
    refusal = {"status": 404, "problem": {"detail": "no decision with id 'd1'"}}
    body = {"results": [{"status": 200}, refusal, {"status": 503}, {"status": 200}]}
    with caplog.at_level(logging.ERROR, "bandit_service.client"):
        run(delivery.cycle(), answer(200, body))
    stats = counters.snapshot()
    assert (stats.sent, stats.refused, stats.retried) == (2, 1, 1)
    assert [e.item.decision_id for e in delivery.rewards.take(10)] == ["d2"]
    assert "no decision with id 'd1'" in caplog.text


def test_a_batch_refused_whole_is_halved_until_the_bad_item_stands_alone() -> None:
    clock = Clock()
    delivery, counters = make_delivery(clock, batch_size=4)
    for i in range(5):
        delivery.put_reward(reward(i))
    delivery.request_flush()
    refused = answer(422, {"detail": "bad"})
    calls = run(delivery.cycle(), refused, results(200, 200), refused, results(200), refused, results(200))
    sent = [[item["decision_id"] for item in msgspec.json.decode(c.body)] for c in calls]
    assert sent == [["d0", "d1", "d2", "d3"], ["d0", "d1"], ["d2", "d3"], ["d2"], ["d3"], ["d4"]]
    stats = counters.snapshot()
    assert (stats.sent, stats.refused, len(delivery.rewards)) == (4, 1, 0)


def test_an_answer_without_results_is_retried() -> None:
    clock = Clock()
    delivery, counters = make_delivery(clock)
    delivery.put_reward(reward(0))
    delivery.request_flush()
    run(delivery.cycle(), answer(200, {"accepted": 1}))
    assert (len(delivery.rewards), counters.snapshot().retried) == (1, 1)


def test_decision_logs_go_first_and_count_logged_duplicates_and_contradictions() -> None:
    clock = Clock()
    delivery, counters = make_delivery(clock)
    for i in range(3):
        delivery.put_log(
            LoggedDecisionIn(decision_id=f"l{i}", experiment="exp", arm="a", propensity=0.5, weights_version=1)
        )
    delivery.put_reward(reward(0))
    delivery.request_flush()
    logged = answer(200, {"results": [{"status": 201}, {"status": 200}, {"status": 201, "contradicts": True}]})
    calls = run(delivery.cycle(), logged, results(200))
    assert [c.path for c in calls] == ["/v1/decisions/log", "/v1/rewards/batch"]
    stats = counters.snapshot()
    assert (stats.logged_decisions, stats.duplicates, stats.contradictions, stats.sent) == (2, 1, 1, 1)


def test_rewards_wait_while_the_logs_fail() -> None:
    clock = Clock()
    delivery, _ = make_delivery(clock)
    delivery.put_log(LoggedDecisionIn(decision_id="l0", experiment="exp", arm="a", propensity=0.5, weights_version=1))
    delivery.put_reward(reward(0))
    delivery.request_flush()
    calls = run(delivery.cycle(), answer(503, {}))
    assert [c.path for c in calls] == ["/v1/decisions/log"]
    assert (len(delivery.logs), len(delivery.rewards)) == (1, 1)


def test_a_full_batch_cycle_sends_full_batches_and_leaves_the_rest_to_the_interval() -> None:
    """Else under steady traffic the sender chases the newest items with a request for every few of them."""
    clock = Clock()
    delivery, counters = make_delivery(clock, batch_size=2)
    for i in range(5):
        delivery.put_reward(reward(i))
    assert delivery.due() and delivery.sleep_s() == 0.0  # a full batch waits for nothing
    calls = run(delivery.cycle(), results(200, 200), results(200, 200))
    assert [len(msgspec.json.decode(c.body)) for c in calls] == [2, 2]
    assert not delivery.due() and delivery.sleep_s() == pytest.approx(1.0)
    clock.now += 1.0
    calls = run(delivery.cycle(), results(200))
    assert [len(msgspec.json.decode(c.body)) for c in calls] == [1]
    assert counters.snapshot().sent == 5


def test_a_cycle_sends_only_what_was_queued_when_it_began() -> None:
    clock = Clock()
    delivery, _ = make_delivery(clock, batch_size=2)
    for i in range(2):
        delivery.put_reward(reward(i))
    cycle = delivery.cycle()
    first = next(cycle)
    for i in range(2, 6):
        delivery.put_reward(reward(i))  # arrive while the first batch is on its way
    with pytest.raises(StopIteration):
        cycle.send(results(200, 200))
    assert [item["decision_id"] for item in msgspec.json.decode(first.body)] == ["d0", "d1"]
    assert delivery.rewards.queued == 4 and delivery.sleep_s() == 0.0  # the next cycle takes them
