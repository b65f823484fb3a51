"""HTTP load benchmark: the real service against a storage-less Litestar ceiling, same load, same run.

    python -m benchmarks.http_load --duration 10 --concurrency 8,32,64 --workers 1,2 --rounds 3

Needs `wrk` (closed loop) and `hey` (open loop at a fixed rate): `apt-get install wrk hey`.
Every server runs with uvicorn on 127.0.0.1 in its own processes; the load generators are
separate processes on the same two cores, so the figures are a lower bound on the server's
capacity and the ratio to the ceiling is the fair headline.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

__all__ = ["main"]

LUA = Path(__file__).with_name("lua")
SERVICE_APP = "bandit_service.asgi:app"
PEER_APP = "benchmarks.peer_app:app"
EXPERIMENT = "bench"


@dataclass(frozen=True)
class LoadResult:
    """One load run's figures."""

    requests: int
    acked: int
    errors: int
    outside: int  # decisions answered outside the experiment (control arm, not stored by design)
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.acked / self.seconds if self.seconds > 0 else 0.0


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(app: str, workers: int, env: Mapping[str, str]) -> Iterator[str]:
    """Run `uvicorn app` on 127.0.0.1 with `workers` processes; yield its base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"{app} did not start: {err[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_wrk(url: str, script: str, concurrency: int, seconds: float, env: Mapping[str, str]) -> LoadResult:
    """Closed loop: `concurrency` connections, each sending its next request when answered."""
    threads = min(2, concurrency)
    cmd = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{round(seconds)}s", "-s", str(LUA / script), url]
    out = subprocess.run(
        cmd,
        env={**os.environ, **env, "BENCH_THREADS": str(threads)},
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    summary = json.loads(out.strip().splitlines()[-1])
    return LoadResult(
        requests=summary["requests"],
        acked=summary["acked"],
        errors=summary["status_errors"] + summary["socket_errors"],
        outside=summary.get("outside", 0),
        seconds=summary["duration_us"] / 1e6,
        p50_ms=summary["p50_us"] / 1e3,
        p95_ms=summary["p95_us"] / 1e3,
        p99_ms=summary["p99_us"] / 1e3,
    )


def run_hey(url: str, rate: float, seconds: float, concurrency: int = 32) -> LoadResult:
    """Open loop at about `rate` requests/s: `concurrency` workers, each paced at rate/concurrency."""
    body = json.dumps({"experiment": EXPERIMENT})
    per_worker = max(rate / concurrency, 0.1)
    cmd = ["hey", "-z", f"{round(seconds)}s", "-c", str(concurrency), "-q", f"{per_worker:.2f}", "-m", "POST"]
    cmd += ["-T", "application/json", "-d", body, "-o", "csv", f"{url}/v1/decisions"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    latency = np.array([float(r["response-time"]) for r in rows]) * 1e3
    ok = sum(1 for r in rows if r["status-code"].startswith("2"))
    p50, p95, p99 = np.percentile(latency, [50, 95, 99]) if latency.size else (np.nan,) * 3
    return LoadResult(len(rows), ok, len(rows) - ok, 0, seconds, float(p50), float(p95), float(p99))


def setup_experiment(url: str) -> None:
    """Create and start the experiment the load targets."""
    spec = {
        "key": EXPERIMENT,
        "name": "HTTP load benchmark",
        "arms": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
        "policy": {"kind": "thompson"},
        "reward": "bernoulli",
    }
    httpx.post(f"{url}/v1/experiments", json=spec, timeout=10).raise_for_status()
    httpx.post(f"{url}/v1/experiments/{EXPERIMENT}/start", timeout=10).raise_for_status()
    wait_until_active(url)


def wait_until_active(url: str) -> None:
    """Return once new connections (any worker) all see the experiment active.

    Each worker caches experiments for up to BANDIT_CACHE_TTL_S (1 s): the worker that served
    the create still sees a draft until then.
    """
    deadline = time.monotonic() + 30
    streak = 0
    while streak < 20:
        decision = httpx.post(f"{url}/v1/decisions", json={"experiment": EXPERIMENT}, timeout=10).json()
        streak = streak + 1 if decision["in_experiment"] else 0
        if time.monotonic() > deadline:
            raise RuntimeError("the workers did not see the started experiment within 30 s")
        time.sleep(0.05)


def group_commit(url: str, probes: int = 20) -> dict[int, tuple[int, int]]:
    """Per worker process: (acknowledged writes, commits) from /healthz, asked until each answers."""
    seen: dict[int, tuple[int, int]] = {}
    for _ in range(probes):
        health = httpx.get(f"{url}/healthz", timeout=5).json()  # a new connection: any worker may answer
        seen[health["process"]] = (health["writes"], health["commits"])
    return seen


def count_rows(db: Path, table: str) -> int:
    """Rows in a table, read with a fresh connection after the server has stopped."""
    with sqlite3.connect(db) as con:
        return int(con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def drive(url: str, concurrency: int, seconds: float, record_dir: Path) -> tuple[LoadResult, LoadResult]:
    """Decisions (recording their ids), then one reward for each recorded decision."""
    for f in record_dir.glob("ids-*.txt"):
        f.unlink()
    env = {"BENCH_EXPERIMENT": EXPERIMENT, "BENCH_RECORD_DIR": str(record_dir)}
    decisions = run_wrk(url, "decisions.lua", concurrency, seconds, env)
    files = len(list(record_dir.glob("ids-*.txt")))
    rewards = run_wrk(url, "rewards.lua", concurrency, seconds, {**env, "BENCH_ID_FILES": str(files)})
    return decisions, rewards


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_load", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="whole seconds per load run (default 10)")
    parser.add_argument("--concurrency", default="8,32,64", help="closed-loop connections, comma-separated")
    parser.add_argument("--workers", default="1,2", help="uvicorn worker counts, comma-separated")
    parser.add_argument("--open-fraction", type=float, default=0.5, help="open-loop rate as a share of the max")
    parser.add_argument("--rounds", type=int, default=1, help="ceiling/service turns per worker count (medians)")
    args = parser.parse_args(argv)
    for tool in ("wrk", "hey"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed: apt-get install wrk hey")
    if args.rounds < 1:
        parser.error("--rounds: must be a positive integer")
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    worker_counts = [int(w) for w in args.workers.split(",")]
    print(f"# HTTP load, {os.cpu_count()} cores, {args.duration:g} s per run, load generator on the same cores")
    header = f"{'workers':>7} {'endpoint':<10} {'conc':>5} {'ours/s':>8} {'peer/s':>8} {'ratio':>6}"
    header += f" {'p50ms':>6} {'p95ms':>6} {'p99ms':>6} {'errors':>6}"
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        record_dir = Path(tmp)
        for workers in worker_counts:
            ok &= _measure(workers, concurrencies, args, record_dir, header)
    return 0 if ok else 1


def _median(values: list[float]) -> float:
    return float(np.median(values))


def _measure(workers: int, concurrencies: list[int], args: argparse.Namespace, record_dir: Path, header: str) -> bool:
    """Rounds of (ceiling, service) runs for one worker count; print the table; True if nothing was lost.

    The ceiling and the service take turns, round after round, so a slow drift of the machine
    (other tenants, clock speed) touches both; the table shows medians over the rounds and, with
    more than one round, the range of the per-round ratios.
    """
    peer: dict[int, list[tuple[LoadResult, LoadResult]]] = {c: [] for c in concurrencies}
    ours: dict[int, list[tuple[LoadResult, LoadResult]]] = {c: [] for c in concurrencies}
    db = record_dir / f"bench-{workers}.db"
    acked_decisions = acked_rewards = outside = 0
    for round_no in range(args.rounds):
        with server(PEER_APP, workers, {}) as url:
            for c in concurrencies:
                peer[c].append(drive(url, c, args.duration, record_dir))
        with server(SERVICE_APP, workers, {"BANDIT_DATABASE_URL": f"sqlite:///{db}"}) as url:
            if round_no == 0:
                setup_experiment(url)
            else:
                wait_until_active(url)  # the same database: the experiment is there and running
            for c in concurrencies:
                decisions, rewards = drive(url, c, args.duration, record_dir)
                ours[c].append((decisions, rewards))
                acked_decisions += decisions.acked - decisions.outside
                outside += decisions.outside
                acked_rewards += rewards.acked
            if round_no == args.rounds - 1:
                best = max(_median([r[0].rps for r in runs]) for runs in ours.values())
                open_loop = run_hey(url, args.open_fraction * best, args.duration)
                acked_decisions += open_loop.acked
                commits = group_commit(url)
    print()
    if args.rounds > 1:
        print(f"medians of {args.rounds} rounds (the ceiling and the service take turns); ratio range over the rounds")
    print(f"{header}{'  ratio range' if args.rounds > 1 else ''}")
    for c in concurrencies:
        for i, endpoint in enumerate(("decisions", "rewards")):
            o = [r[i] for r in ours[c]]
            p = [r[i] for r in peer[c]]
            o_rps, p_rps = _median([r.rps for r in o]), _median([r.rps for r in p])
            line = (
                f"{workers:>7} {endpoint:<10} {c:>5} {o_rps:>8.0f} {p_rps:>8.0f} {o_rps / p_rps:>6.2f}"
                f" {_median([r.p50_ms for r in o]):>6.2f} {_median([r.p95_ms for r in o]):>6.2f}"
                f" {_median([r.p99_ms for r in o]):>6.2f} {sum(r.errors for r in o):>6}"
            )
            if args.rounds > 1:
                ratios = [a.rps / b.rps for a, b in zip(o, p, strict=True)]
                line += f"   {min(ratios):.2f}-{max(ratios):.2f}"
            print(line)
    # The headline: throughput is the best rate over the concurrencies, for each side.
    for i, endpoint in enumerate(("decisions", "rewards")):
        o_best = max(_median([r[i].rps for r in ours[c]]) for c in concurrencies)
        p_best = max(_median([r[i].rps for r in peer[c]]) for c in concurrencies)
        print(
            f"{workers:>7} {endpoint:<10} throughput {o_best:.0f}/s = {o_best / p_best:.2f} of the ceiling's"
            f" {p_best:.0f}/s (best over concurrencies {','.join(map(str, concurrencies))})"
        )
    print(
        f"{workers:>7} {'open loop':<10} {'':>5} {open_loop.rps:>8.0f} {'':>8} {'':>6}"
        f" {open_loop.p50_ms:>6.2f} {open_loop.p95_ms:>6.2f} {open_loop.p99_ms:>6.2f} {open_loop.errors:>6}"
        f"   (decisions at {args.open_fraction:.0%} of max: {args.open_fraction * best:.0f}/s)"
    )
    for pid, (writes, n_commits) in sorted(commits.items()):
        print(
            f"group commit, worker {pid}{' (last round)' if args.rounds > 1 else ''}: {writes} writes in"
            f" {n_commits} transactions ({writes / max(n_commits, 1):.1f} writes per commit)"
        )
    stored_decisions = count_rows(db, "decisions")
    stored_rewards = count_rows(db, "rewards")
    lost = max(acked_decisions - stored_decisions, 0) + max(acked_rewards - stored_rewards, 0)
    print(
        f"durability: {acked_decisions} decisions and {acked_rewards} rewards acknowledged; "
        f"{stored_decisions} and {stored_rewards} in the database; lost: {lost}"
        f" ({outside} decisions answered outside the experiment, not stored by design)"
    )
    return lost == 0


if __name__ == "__main__":
    raise SystemExit(main())
