"""A real `bandit-service serve` process killed in the middle of a flush and started again on the same SQLite file.

The third reward batch is stored and its answer lost (the process is killed -9 before the SDK
reads it); while the service is down, decisions fall back and rewards wait in the queue; once a
new process serves the same file, the SDK sends the rest and sends the third batch again, with the
same idempotency keys. Nothing is lost and nothing is counted twice, by the service's counters and
by the rows of the rewards table.
"""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from bandit_service.client import BanditClient
from tests.client.helpers import FAST
from tests.multiprocess.replicas import AUTH, Replicas
from tests.service.api import ADMIN_KEY, experiment_body, read_db

UNITS = 60
BATCH = 10
KILL_AT_BATCH = 3


class Restartable(httpx.BaseTransport):
    """Sends to the current replica; kills it -9 right after it has handled reward batch `KILL_AT_BATCH`."""

    def __init__(self, replicas: Replicas) -> None:
        self._inner = httpx.HTTPTransport()
        self.replicas = replicas
        self.url = httpx.URL(replicas[0].url)
        self.batches = 0
        self.killed = threading.Event()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme=self.url.scheme, host=self.url.host, port=self.url.port)
        response = self._inner.handle_request(request)
        response.read()
        if request.url.path == "/v1/rewards/batch" and not self.killed.is_set():
            self.batches += 1
            if self.batches == KILL_AT_BATCH:
                self.replicas.kill(0)
                self.killed.set()
                raise httpx.RemoteProtocolError("server disconnected before the answer was read", request=request)
        return response

    def close(self) -> None:
        self._inner.close()


def test_a_restart_mid_flush_loses_nothing_and_counts_nothing_twice(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'bandit.db'}"
    first = Replicas(database_url, 1, {}, tmp_path / "first")
    second = Replicas(database_url, 1, {}, tmp_path / "second")
    first.start()
    try:
        with httpx.Client(base_url=first[0].url, headers=AUTH) as admin:
            assert admin.post("/v1/experiments", json=experiment_body("exp", reward="continuous")).status_code == 201
            assert admin.post("/v1/experiments/exp/start").status_code == 200
        transport = Restartable(first)
        http = httpx.Client(base_url="http://bandit.test", transport=transport)
        client = BanditClient(
            http=http, api_key=ADMIN_KEY, batch_size=BATCH, flush_interval_s=3600.0, backoff=FAST, timeout_s=2.0
        )
        decisions = [client.decide(experiment="exp", unit=f"u{i}") for i in range(UNITS)]
        assert not any(d.fallback for d in decisions)
        for d in decisions:
            client.reward(d, 1.0)  # full batches go at once: the sender is mid-flush when the process dies
        assert transport.killed.wait(30.0), first.logs()
        while_down = client.decide(experiment="exp", unit="late", fallback="a")
        client.reward(while_down, 1.0)
        assert while_down.fallback and client.stats.pending > 0
        second.start()
        transport.url = httpx.URL(second[0].url)
        assert client.flush(30.0), second.logs()
        client.close(timeout_s=5.0)
        http.close()
        with httpx.Client(base_url=second[0].url, headers=AUTH) as admin:
            stats = admin.get("/v1/experiments/exp").json()["stats"]
        assert sum(arm["rewarded"] for arm in stats.values()) == UNITS
        assert sum(arm["mean"] * arm["n"] for arm in stats.values()) == UNITS  # every unit's trial summed to 1.0
        assert read_db(database_url, "SELECT count(*), count(DISTINCT idempotency_key) FROM rewards") == [
            (UNITS, UNITS)
        ]
        assert (client.stats.sent, client.stats.refused, client.stats.skipped_rewards) == (UNITS, 0, 1)
        assert client.stats.retried >= BATCH
    finally:
        first.stop()
        second.stop()
