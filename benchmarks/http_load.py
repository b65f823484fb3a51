"""HTTP load benchmark: the real service against a storage-less Litestar ceiling, same load, same run.

    python -m benchmarks.http_load --duration 10 --concurrency 8,32,64 --workers 1,2 --rounds 3
    python -m benchmarks.http_load --database postgresql --replicas 1,2,3 --workers 1 --duration 10

Needs `wrk` (closed loop) and `hey` (open loop at a fixed rate): `apt-get install wrk hey`.
Every server runs with uvicorn on 127.0.0.1 in its own processes; the load generators are
separate processes on the same two cores, so the figures are a lower bound on the server's
capacity and the ratio to the ceiling is the fair headline.

`--replicas N` starts N separate uvicorn processes on N ports sharing one database (a SQLite
file, or a fresh PostgreSQL schema with `--database postgresql`), and the ceiling the same way;
one wrk (and one hey) per replica takes its share of the connections, all at once, and their
results are summed (latencies merged from the full histograms, not averaged percentiles).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import reduce
from operator import add
from pathlib import Path
from typing import Literal, get_args

import httpx
import numpy as np
from numpy.typing import NDArray
from sqlalchemy import column, create_engine, func, select, table
from sqlalchemy.engine import make_url
from sqlalchemy.schema import CreateSchema, DropSchema

__all__ = ["main"]

LUA = Path(__file__).with_name("lua")
SERVICE_APP = "bandit_service.asgi:app"
PEER_APP = "benchmarks.peer_app:app"
EXPERIMENT = "bench"
BENCH_KEY = "bench-admin-key-0123456789abcdefghijklmn"
"""The service starts with this admin key (BANDIT_ADMIN_KEY); every request sends it: auth on, as in production."""
AUTH = {"Authorization": f"Bearer {BENCH_KEY}"}
WRK_THREADS = 2  # load-generator threads in all, whatever the replica count: they share the cores
HEY_WORKERS = 32
ENDPOINTS = ("decisions", "rewards")

DatabaseKind = Literal["sqlite", "postgresql"]


@dataclass(frozen=True)
class Latencies:
    """A latency histogram: distinct values (microseconds) and how many requests took each."""

    values_us: NDArray[np.float64]
    counts: NDArray[np.int64]

    def __add__(self, other: Latencies) -> Latencies:
        return Latencies(np.concatenate([self.values_us, other.values_us]), np.concatenate([self.counts, other.counts]))

    def percentile_ms(self, p: float) -> float:
        """wrk's rule: the smallest value whose cumulative count reaches round(p/100 * n + 0.5)."""
        if not self.counts.sum():
            return math.nan
        order = np.argsort(self.values_us, kind="stable")
        cumulative = np.cumsum(self.counts[order])
        rank = math.floor(p / 100 * cumulative[-1] + 1.0)  # C's round(x + 0.5), x >= 0
        i = min(int(np.searchsorted(cumulative, rank)), cumulative.size - 1)
        return float(self.values_us[order][i]) / 1e3


@dataclass(frozen=True)
class LoadResult:
    """One load run's figures (the sum of one run per replica, run at the same time)."""

    requests: int
    acked: int
    errors: int
    outside: int  # decisions answered outside the experiment (control arm, not stored by design)
    seconds: float
    latency: Latencies
    statuses: Mapping[int, int] = field(default_factory=dict)  # answers other than 2xx, by status

    @property
    def rps(self) -> float:
        return self.acked / self.seconds if self.seconds > 0 else 0.0

    @property
    def p50_ms(self) -> float:
        return self.latency.percentile_ms(50)

    @property
    def p95_ms(self) -> float:
        return self.latency.percentile_ms(95)

    @property
    def p99_ms(self) -> float:
        return self.latency.percentile_ms(99)

    def __add__(self, other: LoadResult) -> LoadResult:
        """Runs against different replicas at the same time: counts add up, the longer clock counts."""
        return LoadResult(
            self.requests + other.requests,
            self.acked + other.acked,
            self.errors + other.errors,
            self.outside + other.outside,
            max(self.seconds, other.seconds),
            self.latency + other.latency,
            dict(Counter(self.statuses) + Counter(other.statuses)),
        )


@dataclass(frozen=True)
class Headline:
    """One endpoint's throughput (best over the concurrencies, each side) and latency at our best."""

    concurrency: int
    ours_rps: float
    peer_rps: float
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class Summary:
    """One configuration's headline figures: a row of the table printed at the end."""

    database: DatabaseKind
    replicas: int
    workers: int
    headlines: Mapping[str, Headline]
    writes: int  # acknowledged writes committed by the service's processes in the last round
    commits: int  # their transactions (writes / commits = the mean group-commit size)
    errors: int
    statuses: Mapping[int, int]
    lost: int


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def split(total: int, parts: int) -> list[int]:
    """`total` divided into `parts` whole shares differing by at most one."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


@contextmanager
def servers(app: str, workers: int, replicas: int, env: Mapping[str, str], log_dir: Path) -> Iterator[list[str]]:
    """Run `replicas` separate `uvicorn app` processes of `workers` workers each; yield their base URLs.

    They start at the same time (several processes opening one new database is part of the test)
    and stop at the same time; each one's stderr goes to a file in `log_dir`, not to a pipe nobody
    reads while it runs (a full pipe would stall the server).
    """
    started: list[tuple[subprocess.Popen[bytes], str, Path]] = []
    try:
        for _ in range(replicas):
            port = free_port()
            cmd = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
            cmd += ["--workers", str(workers), "--log-level", "warning", "--no-access-log"]
            log = log_dir / f"{app.split('.')[0]}-{port}.log"
            with log.open("wb") as stderr:
                proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=stderr)
            started.append((proc, f"http://127.0.0.1:{port}", log))
        for proc, url, log in started:
            _wait_healthy(proc, url, log, app)
        yield [url for _, url, _ in started]
    finally:
        for proc, _, _ in started:
            proc.terminate()
        for proc, _, _ in started:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path, app: str) -> None:
    deadline = time.monotonic() + 60  # the service takes seconds to start on a busy machine
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{app} did not start on {url}: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)


def run_wrk(
    urls: Sequence[str], script: str, concurrency: int, seconds: float, envs: Sequence[Mapping[str, str]]
) -> LoadResult:
    """Closed loop: `concurrency` connections divided over the replicas, each sending its next request
    when answered; one wrk per replica, all at once."""
    procs = []
    for url, connections, env in zip(urls, split(concurrency, len(urls)), envs, strict=True):
        threads = max(1, min(connections, WRK_THREADS // len(urls)))
        cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{round(seconds)}s", "-s", str(LUA / script), url]
        run_env = {**os.environ, **env, "BENCH_THREADS": str(threads), "BENCH_KEY": BENCH_KEY}
        procs.append(subprocess.Popen(cmd, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return reduce(add, [_wrk_result(proc, seconds) for proc in procs])


def _wrk_result(proc: subprocess.Popen[str], seconds: float) -> LoadResult:
    out, err = proc.communicate(timeout=seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err[-2000:]}")
    summary = json.loads(out.strip().splitlines()[-1])
    histogram = np.array(summary["latency"], dtype=np.int64).reshape(-1, 2)
    return LoadResult(
        requests=summary["requests"],
        acked=summary["acked"],
        errors=summary["status_errors"] + summary["socket_errors"],
        outside=summary.get("outside", 0),
        seconds=summary["duration_us"] / 1e6,
        latency=Latencies(histogram[:, 0].astype(np.float64), histogram[:, 1]),
        statuses={int(status): n for status, n in summary["statuses"].items()},
    )


def run_hey(urls: Sequence[str], rate: float, seconds: float, concurrency: int = HEY_WORKERS) -> LoadResult:
    """Open loop at about `rate` requests/s: `concurrency` workers divided over the replicas (one hey
    each, all at once), every worker paced at rate/concurrency."""
    body = json.dumps({"experiment": EXPERIMENT})
    per_worker = max(rate / concurrency, 0.1)
    procs = []
    for url, workers in zip(urls, split(concurrency, len(urls)), strict=True):
        cmd = ["hey", "-z", f"{round(seconds)}s", "-c", str(workers), "-q", f"{per_worker:.2f}", "-m", "POST"]
        cmd += ["-T", "application/json", "-H", f"Authorization: Bearer {BENCH_KEY}"]
        cmd += ["-d", body, "-o", "csv", f"{url}/v1/decisions"]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=seconds + 60)
        if proc.returncode != 0:
            raise RuntimeError(f"hey failed ({proc.returncode}): {err[-2000:]}")
        rows = list(csv.DictReader(io.StringIO(out)))
        latency = np.array([float(r["response-time"]) for r in rows]) * 1e6
        ok = sum(1 for r in rows if r["status-code"].startswith("2"))
        statuses = Counter(int(r["status-code"]) for r in rows if not r["status-code"].startswith("2"))
        latencies = Latencies(latency, np.ones(latency.size, dtype=np.int64))
        results.append(LoadResult(len(rows), ok, len(rows) - ok, 0, seconds, latencies, dict(statuses)))
    return reduce(add, results)


def setup_experiment(urls: Sequence[str], workers: int) -> None:
    """Create and start the experiment the load targets (on one replica; all of them see it)."""
    spec = {
        "key": EXPERIMENT,
        "name": "HTTP load benchmark",
        "arms": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
        "policy": {"kind": "thompson"},
        "reward": "bernoulli",
        # Every decision logged as its own trial (as before trials existed), so the figures stay
        # comparable and every acknowledged decision id can be looked up in the database.
        "trial": "decision",
    }
    httpx.post(f"{urls[0]}/v1/experiments", json=spec, timeout=10, headers=AUTH).raise_for_status()
    httpx.post(f"{urls[0]}/v1/experiments/{EXPERIMENT}/start", timeout=10, headers=AUTH).raise_for_status()
    wait_until_active(urls, workers)


def wait_until_active(urls: Sequence[str], workers: int) -> None:
    """Return once new connections (any worker of any replica) all see the experiment active.

    Each worker caches experiments for up to BANDIT_CACHE_TTL_S (1 s): the worker that served
    the create still sees a draft until then, and so do the other replicas. With one worker a
    replica's first active answer is final; with several, 20 in a row stand for "every worker".
    """
    deadline = time.monotonic() + 30
    for url in urls:
        streak = 0
        while streak < (1 if workers == 1 else 20):
            response = httpx.post(f"{url}/v1/decisions", json={"experiment": EXPERIMENT}, timeout=10, headers=AUTH)
            active = response.status_code == 200 and response.json()["in_experiment"]
            streak = streak + 1 if active else 0
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url}: the workers did not see the started experiment within 30 s")
            time.sleep(0.05)


def group_commit(urls: Sequence[str], workers: int) -> dict[tuple[int, int], tuple[int, int]]:
    """Per (replica, worker process): (acknowledged writes, commits) from /healthz, asked until each answers."""
    seen: dict[tuple[int, int], tuple[int, int]] = {}
    for replica, url in enumerate(urls, start=1):
        for _ in range(1 if workers == 1 else 20):
            health = httpx.get(f"{url}/healthz", timeout=5).json()  # a new connection: any worker may answer
            seen[replica, health["process"]] = (health["writes"], health["commits"])
    return seen


@contextmanager
def fresh_database(kind: DatabaseKind, directory: Path, postgres_url: str | None, label: str) -> Iterator[str]:
    """The SQLAlchemy URL of an empty database for one configuration, removed afterwards.

    SQLite: a new file in `directory`. PostgreSQL: a new schema on the server `postgres_url`
    names, which every connection of the URL yielded uses (search_path); dropped with its tables.
    """
    match kind:
        case "sqlite":
            yield f"sqlite:///{directory / f'bench-{label}.db'}"
        case "postgresql":
            if postgres_url is None:
                raise ValueError("postgresql needs a server URL (--postgres-url or TEST_POSTGRES_URL)")
            schema = f"bench_{label}_{uuid.uuid4().hex[:8]}"
            admin = create_engine(postgres_url)
            with admin.begin() as conn:
                conn.execute(CreateSchema(schema))
            url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
            try:
                yield url.render_as_string(hide_password=False)
            finally:
                with admin.begin() as conn:
                    conn.execute(DropSchema(schema, cascade=True))
                admin.dispose()
        case _:
            raise ValueError(f"unknown database {kind!r}")


def stored(db_url: str, table_name: str, key: str) -> tuple[int, set[str]]:
    """Rows in a table and their keys, read with a fresh connection after the servers have stopped."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = table(table_name, column(key))
            count = int(conn.execute(select(func.count()).select_from(rows)).scalar_one())
            keys = set(conn.execute(select(rows.c[key])).scalars())
    finally:
        engine.dispose()
    return count, keys


def read_ids(dirs: Sequence[Path], pattern: str) -> set[str]:
    """The ids the Lua scripts wrote (one a line) into files matching `pattern` in `dirs`."""
    return {line for d in dirs for f in d.glob(pattern) for line in f.read_text().split()}


def drive(urls: Sequence[str], concurrency: int, seconds: float, record_dir: Path) -> tuple[LoadResult, LoadResult]:
    """Decisions (recording their ids), then one reward for each recorded decision.

    With several replicas, replica i's decisions are rewarded through replica i+1: a reward must
    find its decision in the shared database, not in the memory of the process that made it.
    Each replica's directory ends with the ids of its acknowledged decisions and rewards.
    """
    dirs = replica_dirs(record_dir, len(urls))
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    decision_envs = [{"BENCH_EXPERIMENT": EXPERIMENT, "BENCH_RECORD_DIR": str(d)} for d in dirs]
    decisions = run_wrk(urls, "decisions.lua", concurrency, seconds, decision_envs)
    reward_envs = [
        {
            "BENCH_RECORD_DIR": str(d),
            "BENCH_ID_DIR": str(source),
            "BENCH_ID_FILES": str(len(list(source.glob("ids-*")))),
        }
        for d, source in zip(dirs, [*dirs[1:], *dirs[:1]], strict=True)
    ]
    rewards = run_wrk(urls, "rewards.lua", concurrency, seconds, reward_envs)
    return decisions, rewards


def replica_dirs(record_dir: Path, replicas: int) -> list[Path]:
    return [record_dir / f"replica-{i}" for i in range(1, replicas + 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_load", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="whole seconds per load run (default 10)")
    parser.add_argument("--concurrency", default="8,32,64", help="closed-loop connections, comma-separated")
    parser.add_argument("--workers", default="1,2", help="uvicorn worker counts per replica, comma-separated")
    parser.add_argument("--replicas", default="1", help="separate server processes on one database, comma-separated")
    parser.add_argument("--database", default="sqlite", help="sqlite, postgresql or both, comma-separated")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("TEST_POSTGRES_URL"),
        help="SQLAlchemy URL of a PostgreSQL server where each configuration gets a fresh schema, dropped"
        " afterwards (default: $TEST_POSTGRES_URL)",
    )
    parser.add_argument("--open-fraction", type=float, default=0.5, help="open-loop rate as a share of the max")
    parser.add_argument("--rounds", type=int, default=1, help="ceiling/service turns per configuration (medians)")
    args = parser.parse_args(argv)
    for tool in ("wrk", "hey"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed: apt-get install wrk hey")
    if args.rounds < 1:
        parser.error("--rounds: must be a positive integer")
    concurrencies = _positive_ints(parser, "--concurrency", args.concurrency)
    worker_counts = _positive_ints(parser, "--workers", args.workers)
    replica_counts = _positive_ints(parser, "--replicas", args.replicas)
    if min(concurrencies) < max(replica_counts):
        parser.error("--concurrency: each replica needs at least one connection (concurrency >= replicas)")
    databases: list[DatabaseKind] = []
    for name in args.database.split(","):
        if name not in get_args(DatabaseKind):
            parser.error(f"--database: {name!r} is not one of {', '.join(get_args(DatabaseKind))}")
        databases.append(name)
    if "postgresql" in databases and not args.postgres_url:
        parser.error("--database postgresql needs --postgres-url (or TEST_POSTGRES_URL)")
    print(f"# HTTP load, {os.cpu_count()} cores, {args.duration:g} s per run, load generator on the same cores")
    summaries = []
    with tempfile.TemporaryDirectory() as tmp:
        for database in databases:
            for workers in worker_counts:
                for replicas in replica_counts:
                    label = f"w{workers}_r{replicas}"
                    with fresh_database(database, Path(tmp), args.postgres_url, label) as db_url:
                        summaries.append(_measure(database, db_url, workers, replicas, concurrencies, args, Path(tmp)))
    _print_summary(summaries, concurrencies, args.rounds)
    return 0 if all(s.lost == 0 for s in summaries) else 1


def _positive_ints(parser: argparse.ArgumentParser, flag: str, value: str) -> list[int]:
    try:
        numbers = [int(v) for v in value.split(",")]
    except ValueError:
        parser.error(f"{flag}: expected comma-separated integers, got {value!r}")
    if min(numbers) < 1:
        parser.error(f"{flag}: every value must be a positive integer")
    return numbers


def _median(values: list[float]) -> float:
    return float(np.median(values))


def _measure(
    database: DatabaseKind,
    db_url: str,
    workers: int,
    replicas: int,
    concurrencies: list[int],
    args: argparse.Namespace,
    tmp: Path,
) -> Summary:
    """Rounds of (ceiling, service) runs for one configuration; print its table; its summary.

    The ceiling and the service take turns, round after round, so a slow drift of the machine
    (other tenants, clock speed) touches both; the table shows medians over the rounds and, with
    more than one round, the range of the per-round ratios. The ceiling runs as many replicas and
    workers as the service, under the same load generators.
    """
    peer: dict[int, list[tuple[LoadResult, LoadResult]]] = {c: [] for c in concurrencies}
    ours: dict[int, list[tuple[LoadResult, LoadResult]]] = {c: [] for c in concurrencies}
    record_dir, log_dir = tmp / "ids", tmp / f"logs-{database}-w{workers}-r{replicas}"
    log_dir.mkdir()
    acked_decisions = acked_rewards = outside = 0
    decision_ids: set[str] = set()
    reward_ids: set[str] = set()
    for round_no in range(args.rounds):
        with servers(PEER_APP, workers, replicas, {}, log_dir) as urls:
            for c in concurrencies:
                peer[c].append(drive(urls, c, args.duration, record_dir))
        with servers(
            SERVICE_APP, workers, replicas, {"BANDIT_DATABASE_URL": db_url, "BANDIT_ADMIN_KEY": BENCH_KEY}, log_dir
        ) as urls:
            if round_no == 0:
                setup_experiment(urls, workers)
            else:
                wait_until_active(urls, workers)  # the same database: the experiment is there and running
            for c in concurrencies:
                decisions, rewards = drive(urls, c, args.duration, record_dir)
                ours[c].append((decisions, rewards))
                acked_decisions += decisions.acked - decisions.outside
                outside += decisions.outside
                acked_rewards += rewards.acked
                decision_ids |= read_ids(replica_dirs(record_dir, replicas), "ids-*")
                reward_ids |= read_ids(replica_dirs(record_dir, replicas), "acks-*")
            if round_no == args.rounds - 1:
                best = max(_median([r[0].rps for r in runs]) for runs in ours.values())
                open_loop = run_hey(urls, args.open_fraction * best, args.duration)
                acked_decisions += open_loop.acked
                commits = group_commit(urls, workers)
    print(f"\n{database}, {replicas} replica(s) x {workers} worker(s), one shared database")
    headlines = _print_table(workers, concurrencies, ours, peer, args)
    print(
        f"{workers:>7} {'open loop':<10} {'':>5} {open_loop.rps:>8.0f} {'':>8} {'':>6}"
        f" {open_loop.p50_ms:>6.2f} {open_loop.p95_ms:>6.2f} {open_loop.p99_ms:>6.2f} {open_loop.errors:>6}"
        f"   (decisions at {args.open_fraction:.0%} of max: {args.open_fraction * best:.0f}/s)"
    )
    for (replica, pid), (writes, n_commits) in sorted(commits.items()):
        print(
            f"group commit, replica {replica} worker {pid}{' (last round)' if args.rounds > 1 else ''}: {writes} writes"
            f" in {n_commits} transactions ({writes / max(n_commits, 1):.1f} writes per commit)"
        )
    total_writes, total_commits = (sum(v) for v in zip(*commits.values(), strict=True))
    runs = [r for c in concurrencies for pair in ours[c] for r in pair] + [open_loop]
    statuses: dict[int, int] = dict(reduce(add, (Counter(r.statuses) for r in runs), Counter()))
    errors = sum(r.errors for r in runs)
    if errors:
        by_status = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))
        print(f"errors: {errors} answers other than 2xx or socket errors ({by_status or 'no HTTP status'})")
    stored_decisions, stored_decision_ids = stored(db_url, "decisions", "id")
    stored_rewards, stored_reward_ids = stored(db_url, "rewards", "decision_id")
    lost = max(acked_decisions - stored_decisions, 0) + max(acked_rewards - stored_rewards, 0)
    print(
        f"durability: {acked_decisions} decisions and {acked_rewards} rewards acknowledged; "
        f"{stored_decisions} and {stored_rewards} in the database; lost: {lost}"
        f" ({outside} decisions answered outside the experiment, not stored by design)"
    )
    # The counts hide a lost write behind any row stored but not acknowledged (a request cut off by
    # wrk's stop, a 503 after the commit): looking up every acknowledged id does not.
    missing_decisions = len(decision_ids - stored_decision_ids)
    missing_rewards = len(reward_ids - stored_reward_ids)
    print(
        f"durability by id: {len(decision_ids)} acknowledged decision ids and {len(reward_ids)} rewarded ones"
        f" (wrk's) looked up; missing: {missing_decisions} and {missing_rewards}"
    )
    _print_server_logs(log_dir)
    return Summary(
        database=database,
        replicas=replicas,
        workers=workers,
        headlines=headlines,
        writes=total_writes,
        commits=total_commits,
        errors=errors,
        statuses=statuses,
        lost=max(lost, missing_decisions + missing_rewards),
    )


def _print_table(
    workers: int,
    concurrencies: list[int],
    ours: Mapping[int, list[tuple[LoadResult, LoadResult]]],
    peer: Mapping[int, list[tuple[LoadResult, LoadResult]]],
    args: argparse.Namespace,
) -> dict[str, Headline]:
    """The per-concurrency rows and the throughput headlines of one configuration."""
    header = f"{'workers':>7} {'endpoint':<10} {'conc':>5} {'ours/s':>8} {'peer/s':>8} {'ratio':>6}"
    header += f" {'p50ms':>6} {'p95ms':>6} {'p99ms':>6} {'errors':>6}"
    if args.rounds > 1:
        print(f"medians of {args.rounds} rounds (the ceiling and the service take turns); ratio range over the rounds")
    print(f"{header}{'  ratio range' if args.rounds > 1 else ''}")
    for c in concurrencies:
        for i, endpoint in enumerate(ENDPOINTS):
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
    headlines = {}
    for i, endpoint in enumerate(ENDPOINTS):
        rates = {c: _median([r[i].rps for r in ours[c]]) for c in concurrencies}
        o_best = max(concurrencies, key=rates.__getitem__)
        o_rps = rates[o_best]
        p_rps = max(_median([r[i].rps for r in peer[c]]) for c in concurrencies)
        print(
            f"{workers:>7} {endpoint:<10} throughput {o_rps:.0f}/s = {o_rps / p_rps:.2f} of the ceiling's"
            f" {p_rps:.0f}/s (best over concurrencies {','.join(map(str, concurrencies))})"
        )
        p50 = _median([r[i].p50_ms for r in ours[o_best]])
        headlines[endpoint] = Headline(o_best, o_rps, p_rps, p50, _median([r[i].p99_ms for r in ours[o_best]]))
    return headlines


def _print_server_logs(log_dir: Path) -> None:
    """How much the servers logged above INFO (uvicorn runs at --log-level warning, but the scheduler
    logs its start and stop), with the last such line, so that a 503's cause is at hand."""
    for log in sorted(log_dir.glob("*.log")):
        text = log.read_text(errors="replace").splitlines()
        lines = [line for line in text if line.strip() and not line.startswith("INFO")]
        if lines:
            print(f"{log.stem} stderr: {len(lines)} lines above INFO, the last: {lines[-1][:200]}")


def _print_summary(summaries: list[Summary], concurrencies: list[int], rounds: int) -> None:
    """A Markdown table of every configuration, to paste into the README."""
    print(f"\nsummary (throughput: best over concurrencies {','.join(map(str, concurrencies))}", end="")
    print(f"{f', medians of {rounds} rounds' if rounds > 1 else ''}; latency at the service's best concurrency)\n")
    print(
        "| database | replicas x workers | decisions/s | of ceiling | rewards/s | of ceiling"
        " | decisions p50 / p99 ms | rewards p50 / p99 ms | writes per commit | non-2xx | lost |"
    )
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for s in summaries:
        d, r = s.headlines["decisions"], s.headlines["rewards"]
        by_status = ", ".join(f"{status}: {n}" for status, n in sorted(s.statuses.items()))
        print(
            f"| {s.database} | {s.replicas} x {s.workers} | {d.ours_rps:.0f} | {d.ours_rps / d.peer_rps:.2f}"
            f" of {d.peer_rps:.0f} | {r.ours_rps:.0f} | {r.ours_rps / r.peer_rps:.2f} of {r.peer_rps:.0f}"
            f" | {d.p50_ms:.2f} / {d.p99_ms:.2f} | {r.p50_ms:.2f} / {r.p99_ms:.2f}"
            f" | {s.writes / max(s.commits, 1):.1f} ({s.writes} / {s.commits})"
            f" | {s.errors}{f' ({by_status})' if by_status else ''} | {s.lost} |"
        )


if __name__ == "__main__":
    raise SystemExit(main())
