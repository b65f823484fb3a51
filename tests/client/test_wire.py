"""What a reward is sent as, how a decision answer is read, and what `import bandit_service.client` pulls in."""

from __future__ import annotations

import subprocess
import sys

import httpx
import msgspec
import pytest

from bandit_service.client import ClientDecision
from bandit_service.client.wire import Answer, Refusal, RewardItem, read_decision, reward_item


def decision(**fields: object) -> ClientDecision:
    base = ClientDecision(experiment="exp", unit="u1", arm="a", decision_id="d1", in_experiment=True)
    return msgspec.structs.replace(base, **fields)


@pytest.mark.parametrize(
    ("target", "sent"),
    [
        pytest.param(decision(), {"decision_id": "d1"}, id="service-decision"),
        pytest.param(
            decision(source="local", trial="unit"), {"experiment": "exp", "unit": "u1"}, id="local-unit-trial"
        ),
        pytest.param(decision(source="local", trial="decision"), {"decision_id": "d1"}, id="local-decision-trial"),
        pytest.param(decision(source="local", trial="unit", unit=None), {"decision_id": "d1"}, id="local-unitless"),
        pytest.param(("exp", "u9"), {"experiment": "exp", "unit": "u9"}, id="by-unit"),
        pytest.param("d7", {"decision_id": "d7"}, id="decision-id"),
        pytest.param(decision(source="fallback", decision_id=None, in_experiment=False), None, id="fallback"),
        pytest.param(decision(in_experiment=False, decision_id="out_1"), None, id="outside"),
        pytest.param(decision(decision_id=None), None, id="no-id"),
        pytest.param(None, None, id="none"),
    ],
)
def test_what_a_reward_is_sent_as(target: object, sent: dict[str, str] | None) -> None:
    item = reward_item(target, 1, {"cost": 2}, None)  # type: ignore[arg-type]
    if sent is None:
        assert item is None
        return
    assert item is not None
    assert msgspec.structs.asdict(item) | {"idempotency_key": "k"} == {
        "decision_id": None,
        "experiment": None,
        "unit": None,
        **sent,
        "reward": 1.0,
        "metrics": {"cost": 2.0},
        "idempotency_key": "k",
    }
    assert isinstance(item, RewardItem) and len(item.idempotency_key) == 32


def test_idempotency_keys_are_made_per_reward_unless_given() -> None:
    keys = {reward_item("d1", 1.0, None, None).idempotency_key for _ in range(3)}  # type: ignore[union-attr]
    assert len(keys) == 3
    assert reward_item("d1", 1.0, None, "mine").idempotency_key == "mine"  # type: ignore[union-attr]


def answer(status: int, body: object) -> Answer:
    return Answer(status, httpx.Headers(), msgspec.json.encode(body))


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        pytest.param(404, {"detail": "no experiment", "field": "experiment"}, "unknown", id="unknown-experiment"),
        pytest.param(404, {"detail": "no feature", "field": "feature"}, "unknown", id="unknown-feature"),
        pytest.param(404, {"detail": "no route POST /v1/decisions"}, "fault", id="wrong-url"),
        pytest.param(503, {"detail": "database busy"}, "fault", id="unavailable"),
        pytest.param(429, {"detail": "slow down"}, "fault", id="rate-limited"),
        pytest.param(500, "not json at all", "fault", id="server-error"),
        pytest.param(422, {"detail": "attributes: bad", "field": "attributes"}, "refused", id="bad-input"),
        pytest.param(401, {"detail": "no key"}, "refused", id="no-key"),
        pytest.param(200, {"decision_id": 3}, "fault", id="unreadable-200"),
    ],
)
def test_how_a_decision_answer_is_read(status: int, body: object, kind: str) -> None:
    read = read_decision(answer(status, body), "u1")
    assert isinstance(read, Refusal) and (read.kind, read.status) == (kind, status)


def test_a_decision_answer_is_read_leniently() -> None:
    body = {
        "decision_id": "d1",
        "experiment": "exp",
        "arm": "b",
        "payload": [1],
        "propensity": 0.5,
        "weights_version": 2,
        "in_experiment": True,
        "new_field_of_a_newer_service": 1,
    }
    read = read_decision(answer(200, body), "u1")
    assert read == ClientDecision(
        experiment="exp", unit="u1", arm="b", payload=[1], decision_id="d1", propensity=0.5, weights_version=2,
        in_experiment=True, source="service",
    )  # fmt: skip


def test_the_client_imports_no_server_stack() -> None:
    """Issue 13: importing the old client pulled in numpy, scipy, Litestar, SQLModel and APScheduler."""
    heavy = ["numpy", "scipy", "litestar", "sqlalchemy", "sqlmodel", "apscheduler", "policies"]
    code = f"import sys, bandit_service.client; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
