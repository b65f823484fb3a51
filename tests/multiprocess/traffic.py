"""Driving replicas over HTTP: outcomes of requests (status and body, or the transport error) and setup calls."""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from collections.abc import Sequence
from typing import Any

import httpx
import msgspec

from tests.multiprocess.replicas import AUTH

__all__ = ["Answer", "ReplicaClients", "create_experiment", "experiment_body", "summary", "transition"]


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    """One request's outcome at one replica: its status and JSON body, or the transport error (no answer)."""

    replica: int
    status: int | None
    body: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """A 2xx answer: the write it asked for is acknowledged."""
        return self.status is not None and 200 <= self.status < 300


class ReplicaClients:
    """Async HTTP to every replica: per replica, a queue of clients that hold one connection each.

    httpx's own pool rescans its connections for every waiting request on every change, so with
    hundreds of requests waiting the client, not the replicas, set the pace. Taking a one-connection
    client from a queue keeps a wait O(1).
    """

    def __init__(self, urls: Sequence[str], connections: int = 32) -> None:
        tls = ssl.create_default_context()  # unused on http://, but each client would build its own
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self._idle: list[asyncio.Queue[httpx.AsyncClient]] = []
        self._all: list[httpx.AsyncClient] = []
        for url in urls:
            idle: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
            for _ in range(connections):
                client = httpx.AsyncClient(base_url=url, limits=limits, timeout=60.0, verify=tls, headers=AUTH)
                idle.put_nowait(client)
                self._all.append(client)
            self._idle.append(idle)

    async def __aenter__(self) -> ReplicaClients:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.gather(*(client.aclose() for client in self._all))

    def __len__(self) -> int:
        return len(self._idle)

    async def post(self, replica: int, path: str, body: Any = None) -> Answer:
        """POST `body` as JSON to one replica; a connection that fails or breaks is an answer without status."""
        client = await self._idle[replica].get()
        try:
            response = await client.post(path, json=body)
        except httpx.TransportError as exc:
            return Answer(replica=replica, status=None, error=f"{type(exc).__name__}: {exc}")
        finally:
            self._idle[replica].put_nowait(client)
        try:
            parsed: Any = response.json()
        except ValueError:
            parsed = response.text
        return Answer(replica=replica, status=response.status_code, body=parsed)

    async def decide(self, replica: int, experiment: str, unit: str) -> Answer:
        """POST /v1/decisions for one unit."""
        return await self.post(replica, "/v1/decisions", {"experiment": experiment, "unit": unit})

    async def reward(self, replica: int, decision_id: str, value: float) -> Answer:
        """POST /v1/rewards for one decision."""
        return await self.post(replica, "/v1/rewards", {"decision_id": decision_id, "reward": value})


def summary(answers: Sequence[Answer], samples: int = 3) -> str:
    """How many answers had each status (or transport error), with a few bodies of each non-2xx kind."""
    kinds = Counter(a.status if a.status is not None else "no answer" for a in answers)
    lines = [f"{len(answers)} requests: " + ", ".join(f"{kind}: {n}" for kind, n in sorted(kinds.items(), key=str))]
    shown: Counter[object] = Counter()
    for a in answers:
        kind = a.status if a.status is not None else "no answer"
        if not a.ok and shown[kind] < samples:
            shown[kind] += 1
            lines.append(f"  replica {a.replica}, {kind}: {a.error if a.status is None else a.body}")
    return "\n".join(lines)


def experiment_body(key: str, arms: Sequence[str], **overrides: Any) -> dict[str, Any]:
    """A create body: these arms (the first is the control), sticky, bernoulli rewards, default_reward 0.

    Each decision is its own trial (`trial: "decision"`), so the counters can be recounted from the
    rows: a unit trial's exposures are counted, not logged.
    """
    body: dict[str, Any] = {
        "key": key,
        "name": f"multi-process test {key}",
        "arms": [{"name": name, "payload": {"arm": name}} for name in arms],
        "policy": {"kind": "thompson", "min_weight": 0.05},
        "reward": "bernoulli",
        "sticky": True,
        "trial": "decision",
        "default_reward": 0.0,
    }
    body.update(overrides)
    return body


def create_experiment(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/experiments at one replica; anything but 201 fails the test."""
    with httpx.Client(base_url=url, timeout=30.0, headers=AUTH) as client:
        response = client.post("/v1/experiments", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def transition(url: str, key: str, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST /v1/experiments/{key}/{action} (start, pause, complete) at one replica; anything but 200 fails."""
    with httpx.Client(base_url=url, timeout=30.0, headers=AUTH) as client:
        response = client.post(f"/v1/experiments/{key}/{action}", json=body)
    assert response.status_code == 200, f"{action}: {response.status_code} {response.text}"
    changed: dict[str, Any] = response.json()
    return changed
