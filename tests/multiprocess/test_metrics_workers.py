"""`bandit-service serve --workers 2`: any worker's /metrics reports the sums over both workers.

A real server with two uvicorn worker processes on one SQLite file. Decisions go out on new
connections until both workers have served some (each worker's /healthz reports its own commits),
then every scrape, whichever worker answers it, must count all the decisions: the request histogram
from prometheus-client's multi-process files, the per-arm counters from the database. The commit
histogram must sum to both workers' commits. With JSON logs on, every request line on the server's
output is a JSON object. When the server stops, the metrics directory `serve` made is gone.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.multiprocess.replicas import SOURCE_ROOT

KEY = "0123456789abcdefghijklmnopqrstuvwxyzABCD"  # BANDIT_ADMIN_KEY: 40 characters
HEADERS = {"Authorization": f"Bearer {KEY}"}
BATCH = 20


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def two_workers(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`bandit-service serve --workers 2` on a SQLite file; its URL and its output file; stopped at exit."""
    port = _free_port()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {name: value for name, value in os.environ.items() if not name.startswith(("BANDIT_", "PROMETHEUS_"))}
    env.update(
        BANDIT_DATABASE_URL=f"sqlite:///{tmp_path / 'bandit.db'}",
        BANDIT_ADMIN_KEY=KEY,
        BANDIT_CACHE_TTL_S="0",
        BANDIT_SCHEDULER_TICK_S="0.2",
        BANDIT_LOG_FORMAT="json",
        TMPDIR=str(tmp),  # where `serve` makes the metrics directory
        PYTHONPATH=os.pathsep.join(p for p in (str(SOURCE_ROOT), os.environ.get("PYTHONPATH")) if p),
    )
    output = tmp_path / "serve.log"
    command = [sys.executable, "-m", "bandit_service.cli", "serve", "--port", str(port), "--workers", "2"]
    with output.open("wb") as log:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, output.read_text(errors="replace")[-3000:]
            time.sleep(0.1)
        yield url, output
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """One scrape on a new connection (either worker may answer)."""
    response = httpx.get(f"{url}/metrics", headers=HEADERS, timeout=10)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def worker_commits(url: str) -> dict[int, int]:
    """Commits per worker process, from /healthz asked on new connections until both workers answered."""
    seen: dict[int, int] = {}
    for _ in range(200):
        health = httpx.get(f"{url}/healthz", timeout=5).json()
        seen[health["process"]] = health["commits"]
        if len(seen) == 2:
            return seen
    raise AssertionError(f"200 new connections reached one worker only: {seen}")


def test_every_worker_scrapes_the_sums_of_both(tmp_path: Path):
    with two_workers(tmp_path) as (url, output):
        spec = {"key": "exp", "name": "Workers", "arms": [{"name": "a"}, {"name": "b"}]}
        assert httpx.post(f"{url}/v1/experiments", json=spec, headers=HEADERS, timeout=10).status_code == 201
        assert httpx.post(f"{url}/v1/experiments/exp/start", headers=HEADERS, timeout=10).status_code == 200
        baseline = worker_commits(url)
        sent = 0
        # Decisions on new connections until each worker has committed some of them.
        while True:
            for _ in range(BATCH):
                body = {"experiment": "exp", "unit": f"u{sent}"}
                answer = httpx.post(f"{url}/v1/decisions", json=body, headers=HEADERS, timeout=10)
                assert answer.status_code == 200 and answer.json()["in_experiment"], answer.text
                sent += 1
            commits = worker_commits(url)
            if all(commits[pid] > baseline[pid] for pid in baseline):
                break
            assert sent < 20 * BATCH, f"one worker served every decision: {baseline} -> {commits}"
        decisions = frozenset({"method": "POST", "route": "/v1/decisions", "status": "200"}.items())
        committed = frozenset({("outcome", "committed")})
        for _ in range(10):  # whichever worker answers
            before = sum(worker_commits(url).values())
            samples = scrape(url)
            after = sum(worker_commits(url).values())
            assert samples["bandit_http_request_duration_seconds_count", decisions] == sent
            assert sum(v for (name, _), v in samples.items() if name == "bandit_arm_decisions_total") == sent
            # Each worker observes each transaction it commits: the histogram counts both workers' commits.
            assert before <= samples["bandit_commit_batch_writes_count", committed] <= after
    logged = [json.loads(line) for line in output.read_text().splitlines() if line.strip()]  # every line is JSON
    requests = [line for line in logged if line["logger"] == "bandit_service.requests"]
    served = [r for r in requests if r["route"] == "/v1/decisions"]
    assert len(served) == sent and all(r["decision_id"] and r["request_id"] for r in served)
    assert len({r["request_id"] for r in requests}) == len(requests)
    assert not list((tmp_path / "tmp").glob("bandit-metrics-*")), "serve left its metrics directory behind"
