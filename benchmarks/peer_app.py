"""The throughput ceiling: a bare Litestar + msgspec app that decodes the same bodies, stores nothing.

Run as `uvicorn benchmarks.peer_app:app`; `benchmarks.http_load` drives it beside the real service.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Litestar, get, post

__all__ = ["app"]


class DecisionIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    experiment: str
    unit: str | None = None
    attributes: dict[str, Any] | None = None


class DecisionOut(msgspec.Struct, frozen=True):
    decision_id: str
    experiment: str
    arm: str
    payload: Any
    propensity: float
    weights_version: int
    in_experiment: bool


class RewardIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    decision_id: str
    reward: float
    metrics: dict[str, float] | None = None
    idempotency_key: str | None = None


class RewardOut(msgspec.Struct, frozen=True):
    decision_id: str
    accepted: bool


@post("/v1/decisions", status_code=200)
async def decide(data: DecisionIn) -> DecisionOut:
    """Answer with the decision shape, no storage."""
    return DecisionOut(uuid.uuid4().hex, data.experiment, "a", None, 0.5, 1, True)


@post("/v1/rewards", status_code=200)
async def reward(data: RewardIn) -> RewardOut:
    """Answer with the reward shape, no storage."""
    return RewardOut(data.decision_id, True)


@get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar([decide, reward, healthz], openapi_config=None)
