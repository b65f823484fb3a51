"""The clients' local evaluation wiring (local=True): definitions polled, decisions answered in-process and logged.

The evaluation itself is tested in test_local_*.py; here, what the client does around it: no
network on the decision path, decision logs delivered before the rewards that refer to them,
remote decisions for keys the definitions do not know (or before they arrive), fallbacks from the
last known definitions.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import msgspec
from litestar import Litestar
from litestar.testing import TestClient

from bandit_service.client import BanditClient, Fallback
from bandit_service.client.delivery import Delivery
from bandit_service.client.engine import Engine
from bandit_service.client.local import LocalEvaluator
from bandit_service.client.stats import Counters
from bandit_service.core.definitions import ArmDefinition, Definitions, ExperimentDefinition, FeatureDefinition
from tests.client.helpers import FAST, async_client, async_http, run_async, totals, unit_experiment
from tests.client.transports import Faults, Forward, wait_until
from tests.service.api import started

MakeClient = Callable[..., BanditClient]


def local_logged(service: TestClient[Litestar], key: str = "exp") -> int:
    """Decisions the service logged from local evaluation."""
    return sum(arm["local"] for arm in service.get(f"/v1/experiments/{key}").json()["stats"].values())


def test_local_decisions_take_no_request_and_are_logged(service: TestClient[Litestar], make_client: MakeClient) -> None:
    unit_experiment(service)
    counted = Faults(Forward(service), ["ok"], paths=["/v1/decisions"])
    client = make_client(counted, local=True)
    decisions = [client.decide(experiment="exp", unit=f"u{i % 5}") for i in range(20)]
    assert {d.source for d in decisions} == {"local"} and counted.seen["ok"] == 0
    assert all(d.arm == decisions[i % 5].arm for i, d in enumerate(decisions))  # sticky
    for d in decisions[:5]:
        client.reward(d, 1.0)  # unit trials: sent by experiment and unit
    assert client.flush(5.0)
    stats = client.stats
    assert (stats.local_decisions, stats.logged_decisions, stats.sent, stats.refused) == (20, 20, 5, 0)
    assert stats.definitions_version is not None
    assert local_logged(service) == 20
    assert totals(service) == (5, 5.0)


def test_rewards_wait_for_the_logs_of_their_decisions(service: TestClient[Litestar], make_client: MakeClient) -> None:
    """A reward sent before its decision's log would be refused (404): the logs go first, retried or not."""
    started(service, "exp", reward="continuous", sticky=False)  # trial "decision": rewarded by decision id
    failing_logs = Faults(Forward(service), ["503", "refused", "500", "ok"], paths=["/v1/decisions/log"])
    client = make_client(failing_logs, local=True, batch_size=4)
    decisions = [client.decide(experiment="exp", unit=f"u{i}") for i in range(12)]
    for d in decisions:
        assert d.trial == "decision"
        client.reward(d, 1.0)
    assert client.flush(10.0)
    stats = client.stats
    assert (stats.logged_decisions, stats.sent, stats.refused, stats.refused_logs) == (12, 12, 0, 0)
    assert totals(service) == (12, 12.0)


def test_bad_attributes_get_the_fallback_locally_too(service: TestClient[Litestar], make_client: MakeClient) -> None:
    unit_experiment(service)
    client = make_client(local=True)
    d = client.decide(experiment="exp", unit="u1", attributes={"when": object()}, fallback="a")
    assert (d.source, d.arm, client.stats.pending_logs) == ("fallback", "a", 0)
    assert client.decide(experiment="exp", unit="u1", attributes={"plan": "pro"}).source == "local"
    assert client.flush(5.0) and client.stats.logged_decisions == 1
    # The verdicts are remembered per attribute set: the same bad set again is refused again, a good one served.
    for _ in range(2):
        assert client.decide(experiment="exp", unit="u2", attributes={"bad name!": 1}, fallback="a").fallback
        assert client.decide(experiment="exp", unit="u2", attributes={"plan": "pro"}).source == "local"


def test_keys_the_definitions_do_not_know_are_asked_remotely(
    service: TestClient[Litestar], make_client: MakeClient
) -> None:
    client = make_client(local=True)
    started(service, "later")  # after the client's first poll
    d = client.decide(experiment="later", unit="u1")
    unknown = client.decide(experiment="nope", unit="u1", fallback="z")
    assert (d.source, d.in_experiment) == ("service", True)
    assert (unknown.source, unknown.arm) == ("fallback", "z")


def test_definitions_that_arrive_late_switch_decisions_to_local(
    service: TestClient[Litestar], make_client: MakeClient
) -> None:
    unit_experiment(service)
    faults = Faults(Forward(service), ["503", "503"] + ["ok"] * 1000, paths=["/v1/definitions"])
    client = make_client(faults, local=True)
    assert client.decide(experiment="exp", unit="u1").source == "service"  # the first fetch failed
    assert wait_until(lambda: client.decide(experiment="exp", unit="u1").source == "local")


def test_a_change_reaches_local_decisions_within_the_poll_interval(
    service: TestClient[Litestar], make_client: MakeClient
) -> None:
    unit_experiment(service)
    client = make_client(local=True)
    assert client.decide(experiment="exp", unit="u1").in_experiment
    assert service.post("/v1/experiments/exp/pause").status_code == 200
    assert wait_until(lambda: not client.decide(experiment="exp", unit="u2").in_experiment)


def test_async_local_decisions(service: TestClient[Litestar]) -> None:
    unit_experiment(service)

    async def scenario() -> None:
        async with async_http(service) as http, async_client(http, local=True) as client:
            d = await client.decide(experiment="exp", unit="u1")  # the first decide waits for the definitions
            assert d.source == "local"
            client.reward(d, 2.0)
            assert await client.flush(5.0)
            assert (client.stats.logged_decisions, client.stats.sent) == (1, 1)

    run_async(service, scenario)
    assert (local_logged(service), totals(service)) == (1, (1, 2.0))


def definitions(*experiments: ExperimentDefinition, features: tuple[FeatureDefinition, ...] = ()) -> Definitions:
    """Definitions built by hand, with a version made from their content."""
    version = str(abs(hash(msgspec.json.encode([experiments, features]))))
    return Definitions(version=version, experiments=list(experiments), features=list(features), poll_interval_s=1.0)


def experiment(key: str, **changes: object) -> ExperimentDefinition:
    """A two-arm experiment definition (control a)."""
    base = ExperimentDefinition(
        key=key,
        status="active",
        salt=key,
        arms=[ArmDefinition(name="a", payload={"v": 1}), ArmDefinition(name="b", payload={"v": 2})],
        control="a",
        weights=[0.5, 0.5],
        weights_version=1,
        exposure=1.0,
    )
    return msgspec.structs.replace(base, **changes)


def make_engine(**options: object) -> Engine:
    """An engine with local evaluation, for the fallback rules (no I/O involved)."""
    counters = Counters()
    delivery = Delivery(
        batch_size=10,
        max_queue=10,
        interval_s=1.0,
        send_timeout_s=1.0,
        backoff=FAST,
        counters=counters,
        clock=lambda: 0.0,
        rng=random.Random(1),
    )
    settings: dict[str, object] = {"fallbacks": None, "on_unknown": "fallback"} | options
    return Engine(
        timeout_s=1.0,
        evaluator=LocalEvaluator(),
        delivery=delivery,
        backoff=FAST,
        counters=counters,
        clock=lambda: 0.0,
        rng=random.Random(1),
        **settings,  # type: ignore[arg-type]
    )


def test_fallbacks_from_the_last_known_definitions() -> None:
    engine = make_engine(fallbacks={"given": Fallback(arm="b", payload="mine")})
    engine.polled(
        definitions(
            experiment("exp"),
            experiment("done", status="completed", winner="b"),
            experiment("given"),
            features=(FeatureDefinition(key="model", default_payload="default", experiments=["exp"]),),
        )
    )
    engine.polled(definitions())  # every key left the definitions since: their last known fallbacks stay
    assert engine.fallback_for("exp", is_feature=False) == Fallback(arm="a", payload={"v": 1})
    assert engine.fallback_for("done", is_feature=False) == Fallback(arm="b", payload={"v": 2})
    assert engine.fallback_for("model", is_feature=True) == Fallback(payload="default")
    assert engine.fallback_for("given", is_feature=False) == Fallback(arm="b", payload="mine")
    assert engine.fallback_for("exp", is_feature=False, given="b") == Fallback(arm="b", payload={"v": 2})
    assert engine.fallback_for("never", is_feature=False) == Fallback()
