"""The run behind README's "Reading a report": issue 14's trap, through the real service.

An assistant answers in one of two styles, `long` (the control) and `concise`; thumbs-up is the
reward, `latency_ms` and `error` ride along as guardrail metrics and `escalated` (a rare hand-off
to a human) as an extra metric. Concise is 2 points better every day, but the thumbs-up rate
drifts from day to day (20%, then 5% on a bad day, then 40%), and an operator moved the weights
each morning: 50/50, then 10/90 (concise got the bad day), then 90/10 (long got the good day).
The pooled means say long is better; the report's headline, stratified by weights period, says
concise is, and puts the pooled figure beside it, labelled.

The service runs in this process on a temporary SQLite file with a fake clock (a day per period)
and repeatable ids; `seed` seeds the simulated users, so the output is the same on every run.

    python docs/reading_a_report.py            # about 15 s on 2 cores
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from litestar import Litestar
from litestar.testing import TestClient

from bandit_service.app import create_app
from bandit_service.clock import FakeClock
from bandit_service.ids import sequential_ids
from bandit_service.settings import Settings

ADMIN_KEY = "docs-admin-key-0123456789abcdef"
START = 1_795_996_800.0  # 2026-11-30 00:00 UTC
DAY = 86_400.0
ARMS = ("long", "concise")
# Per day: the weights the operator set that morning and each style's true thumbs-up rate.
DAYS = (
    ((0.5, 0.5), (0.20, 0.22)),
    ((0.1, 0.9), (0.05, 0.07)),
    ((0.9, 0.1), (0.40, 0.42)),
)
USERS_PER_DAY = 6_000
EXPERIMENT = {
    "key": "reply-style",
    "name": "Assistant reply style",
    "arms": [{"name": "long", "payload": {"style": "long"}}, {"name": "concise", "payload": {"style": "concise"}}],
    "policy": {"kind": "fixed"},
    "min_sample_size": 5_000,
    "criteria": {
        "primary": {"metric": "reward", "min_improvement": 0.0},
        "guardrails": [
            {"metric": "error", "max_increase": 0.01},
            {"metric": "latency_ms", "max_relative_increase": 0.10},
        ],
    },
}


def _decide_all(client: TestClient[Litestar], bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """POST the decisions concurrently on the app's event loop, as many app servers would."""

    async def run() -> list[dict[str, Any]]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://docs", headers=client.headers) as http:
            limit = asyncio.Semaphore(64)

            async def one(body: dict[str, Any]) -> dict[str, Any]:
                async with limit:
                    response = await http.post("/v1/decisions", json=body)
                response.raise_for_status()
                decision: dict[str, Any] = response.json()
                return decision

            return list(await asyncio.gather(*(one(b) for b in bodies)))

    decisions: list[dict[str, Any]] = client.blocking_portal.call(run)
    return decisions


def _check(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        raise SystemExit(f"{response.request.method} {response.request.url.path}: {response.text}")
    return response


def run(rng: np.random.Generator, database: Path) -> str:
    """Drive the three days through the API and return the text report."""
    clock = FakeClock(START)
    settings = Settings(
        database_url=f"sqlite:///{database}",
        scheduler_enabled=False,
        admin_key=ADMIN_KEY,
        rate_limit_traffic_per_s=0,
        rate_limit_operator_per_s=0,
    )
    app = create_app(settings, clock=clock, ids=sequential_ids("reading-a-report"))
    for noisy in ("httpx", "alembic"):  # a line per request and per migration: not what this shows
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        _check(client.post("/v1/experiments", json=EXPERIMENT))
        _check(client.post("/v1/experiments/reply-style/start"))
        for day, (weights, rates) in enumerate(DAYS):
            clock.advance(8 * 3_600.0)  # the operator moves the weights at 08:00
            body = {"weights": dict(zip(ARMS, weights, strict=True))}
            _check(client.put("/v1/experiments/reply-style/weights", json=body))
            units = [f"user-{day}-{i}" for i in range(USERS_PER_DAY)]
            decisions = _decide_all(client, [{"experiment": "reply-style", "unit": u} for u in units])
            rewards = []
            for decision in decisions:
                arm = ARMS.index(decision["arm"])
                metrics = {
                    "latency_ms": float(rng.gamma(4.0, 60.0 if arm == 0 else 40.0)),
                    "error": float(rng.random() < 0.01),
                    "escalated": float(rng.random() < 0.0008),
                }
                thumbs_up = float(rng.random() < rates[arm])
                rewards.append({"decision_id": decision["decision_id"], "reward": thumbs_up, "metrics": metrics})
            for start in range(0, len(rewards), 1_000):
                _check(client.post("/v1/rewards/batch", json=rewards[start : start + 1_000]))
            clock.advance(DAY - 8 * 3_600.0)
        return _check(client.get("/v1/experiments/reply-style/report", params={"format": "text"})).text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=14, help="seeds the simulated users (default 14)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(run(np.random.default_rng(args.seed), Path(tmp) / "reading-a-report.db"), end="")


if __name__ == "__main__":
    main()
