"""Drive realistic traffic through the HTTP API for report tests: decisions, then their rewards in batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np
from litestar import Litestar
from litestar.testing import TestClient

from tests.service.api import decide_all

__all__ = ["Sent", "by_arm", "drive", "send_rewards"]

RewardOf = Callable[[str, np.random.Generator], float]
MetricsOf = Callable[[str, np.random.Generator], dict[str, float]]
AttributesOf = Callable[[int, np.random.Generator], dict[str, Any]]


class Sent(msgspec.Struct, frozen=True, kw_only=True):
    """One decision as the test sent it and the reward it reported (None: no reward sent)."""

    decision_id: str
    unit: str
    arm: str
    attributes: dict[str, Any]
    reward: float | None
    metrics: dict[str, float]


def send_rewards(client: TestClient[Litestar], items: list[dict[str, Any]]) -> None:
    """POST the rewards in batches of 1,000 and assert every one was recorded."""
    for start in range(0, len(items), 1_000):
        chunk = items[start : start + 1_000]
        response = client.post("/v1/rewards/batch", json=chunk)
        assert response.status_code == 200, response.text[:500]
        assert response.json()["recorded"] == len(chunk), response.text[:500]


def drive(
    client: TestClient[Litestar],
    key: str,
    units: int,
    rng: np.random.Generator,
    reward_of: RewardOf,
    metrics_of: MetricsOf | None = None,
    attributes_of: AttributesOf | None = None,
    *,
    first_unit: int = 0,
    rewarded: Callable[[str, np.random.Generator], bool] | None = None,
) -> list[Sent]:
    """One decision per new unit, then a reward for each (unless `rewarded` says no); returns what was sent."""
    bodies = [
        {
            "experiment": key,
            "unit": f"u{first_unit + i}",
            "attributes": attributes_of(i, rng) if attributes_of is not None else {},
        }
        for i in range(units)
    ]
    decisions = decide_all(client, bodies)
    sent: list[Sent] = []
    items: list[dict[str, Any]] = []
    for body, decision in zip(bodies, decisions, strict=True):
        assert decision["in_experiment"], decision
        arm = decision["arm"]
        value: float | None = None
        metrics: dict[str, float] = {}
        if rewarded is None or rewarded(arm, rng):
            value = reward_of(arm, rng)
            metrics = metrics_of(arm, rng) if metrics_of is not None else {}
            items.append({"decision_id": decision["decision_id"], "reward": value, "metrics": metrics})
        sent.append(
            Sent(
                decision_id=decision["decision_id"],
                unit=body["unit"],
                arm=arm,
                attributes=body["attributes"],
                reward=value,
                metrics=metrics,
            )
        )
    send_rewards(client, items)
    return sent


def by_arm(sent: list[Sent], arms: tuple[str, ...]) -> dict[str, list[Sent]]:
    """The sent decisions of each arm."""
    return {arm: [s for s in sent if s.arm == arm] for arm in arms}
