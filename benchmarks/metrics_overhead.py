"""What metrics cost the decision endpoint: the same load with `metrics` off and on, in the same run.

    python -m benchmarks.metrics_overhead --duration 3 --rounds 10 --concurrency 32
    python -m benchmarks.metrics_overhead --variants off,on,json --workers 2

One server per variant runs for the whole benchmark, each on a SQLite file of its own (`off`:
BANDIT_METRICS=off; `on`: metrics on, the default; `json`: metrics on and JSON request logs). The
variants take turns: every round drives POST /v1/decisions on each in turn with wrk (closed loop,
a new unit per request) for `--duration` seconds, in alternating order from round to round; a
server that metrics are on for is scraped (GET /metrics) once during each of its runs, as
Prometheus would, only more often. Short turns over one long run keep a drift of the shared
machine from favouring one variant.

Two figures per variant, each the median over the rounds of the variant's value divided by `off`'s
in the same round: throughput, and the server's CPU time per decision (its processes' user and
system time from /proc over the run, divided by the decisions answered). The CPU figure is the
steadier one on a shared machine: other tenants slow the throughput of whichever variant runs,
but they do not add to its CPU time. Authentication is off, so the figures are the cost of metrics
alone (with it on, every request costs more, and the same metrics cost a smaller share). With
several workers the metrics run in prometheus-client's multi-process mode (a fresh
PROMETHEUS_MULTIPROC_DIR per server, as `bandit-service serve` makes).

Needs `wrk` (`apt-get install wrk`) and Linux (/proc); the load generator shares the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bandit_service.http.metrics import PrometheusMetrics
from bandit_service.http.request_metrics import RequestMetrics
from bandit_service.http.request_start import RequestStartMiddleware
from benchmarks.http_load import (
    EXPERIMENT,
    SERVICE_APP,
    LoadResult,
    run_wrk,
    servers,
    setup_experiment,
)

__all__ = ["VARIANTS", "main"]

VARIANTS: Mapping[str, Mapping[str, str]] = {
    "off": {"BANDIT_METRICS": "off"},
    "on": {"BANDIT_METRICS": "on"},
    "json": {"BANDIT_METRICS": "on", "BANDIT_LOG_FORMAT": "json"},
}
"""BANDIT_* settings of each variant, on top of `COMMON`."""

COMMON = {"BANDIT_AUTH": "off", "BANDIT_SCHEDULER_TICK_S": "60"}
WARMUP_S = 1
LOAD_ENV = [{"BENCH_EXPERIMENT": EXPERIMENT}]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Server:
    """One running variant: its URL and its worker processes."""

    variant: str
    url: str
    pids: tuple[int, ...]
    scraped: bool

    def cpu_seconds(self) -> float:
        """User and system CPU time of the server's processes so far (/proc/<pid>/stat, fields 14 and 15)."""
        total = 0
        for pid in self.pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14, 15 of the whole line
        return total / CLOCK_TICKS


@dataclass(frozen=True)
class Run:
    """One turn of one variant: the load result and the server's CPU time per answered decision."""

    load: LoadResult
    cpu_us_per_decision: float


def worker_pids(url: str, workers: int) -> tuple[int, ...]:
    """The server's worker processes, from /healthz asked on new connections until each has answered."""
    seen: set[int] = set()
    for _ in range(50 * workers):
        seen.add(int(httpx.get(f"{url}/healthz", timeout=10).json()["process"]))
        if len(seen) == workers:
            return tuple(sorted(seen))
    raise RuntimeError(f"{url}: found {len(seen)} of {workers} workers")


def start(stack: ExitStack, variant: str, args: argparse.Namespace, tmp: Path) -> Server:
    """Start one variant's server (stopped when `stack` closes) with its experiment, and warm it up."""
    env = {**COMMON, **VARIANTS[variant], "BANDIT_DATABASE_URL": f"sqlite:///{tmp / f'{variant}.db'}"}
    metrics = env["BANDIT_METRICS"] == "on"
    if args.workers > 1 and metrics:
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=f"metrics-{variant}-", dir=tmp)
    log_dir = tmp / f"logs-{variant}"
    log_dir.mkdir()
    [url] = stack.enter_context(servers(SERVICE_APP, args.workers, 1, env, log_dir))
    setup_experiment([url], args.workers)
    run_wrk([url], "decisions.lua", args.concurrency, WARMUP_S, LOAD_ENV)
    return Server(variant, url, worker_pids(url, args.workers), scraped=metrics)


def drive(server: Server, args: argparse.Namespace) -> Run:
    """One turn: decisions for `--duration` seconds (and one scrape half-way, metrics on); CPU per decision."""
    scrape = None
    if server.scraped:
        scrape = threading.Timer(args.duration / 2, lambda: httpx.get(f"{server.url}/metrics", timeout=10))
        scrape.start()
    before = server.cpu_seconds()
    load = run_wrk([server.url], "decisions.lua", args.concurrency, args.duration, LOAD_ENV)
    cpu = server.cpu_seconds() - before
    if scrape is not None:
        scrape.join()
    return Run(load, cpu / max(load.acked, 1) * 1e6)


def in_process_cost_us(requests: int = 100_000) -> float:
    """Microseconds per request of the metrics' own request path (start mark and histogram hook), in process.

    The same objects the app uses, driven by a loop without a server, minus the same loop over a
    bare app: a steady figure to set beside the CPU per decision, which the shared machine blurs.
    """

    async def bare(scope: Any, receive: Any, send: Any) -> None:
        return None

    async def nothing(*_: Any) -> Any:
        return None

    async def loop(observed: bool) -> float:
        hook = RequestMetrics(PrometheusMetrics()).before_send
        app = RequestStartMiddleware(bare) if observed else bare
        start: Any = {"type": "http.response.start", "status": 200, "headers": []}
        body: Any = {"type": "http.response.body", "body": b"{}"}
        began = time.perf_counter()
        for _ in range(requests):
            scope: Any = {"type": "http", "method": "POST", "path_template": "/v1/decisions", "state": {}}
            await app(scope, nothing, nothing)
            if observed:
                await hook(start, scope)
                await hook(body, scope)
        return time.perf_counter() - began

    return (asyncio.run(loop(True)) - asyncio.run(loop(False))) / requests * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.metrics_overhead", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=3, help="whole seconds of load per turn (default 3)")
    parser.add_argument("--rounds", type=int, default=10, help="turns of every variant (default 10; medians)")
    parser.add_argument("--concurrency", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers per server (default 1)")
    parser.add_argument("--variants", default="off,on", help=f"of {', '.join(VARIANTS)} (default off,on)")
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    if "off" not in variants or any(v not in VARIANTS for v in variants) or len(set(variants)) < len(variants):
        parser.error(f"--variants: needs off and only {', '.join(VARIANTS)}, each once; got {args.variants!r}")
    if min(args.duration, args.rounds, args.concurrency, args.workers) < 1:
        parser.error("--duration, --rounds, --concurrency and --workers must be positive")
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed: apt-get install wrk")
    print(
        f"# metrics overhead on POST /v1/decisions: {os.cpu_count()} cores, {args.workers} worker(s) per server, "
        f"{args.concurrency} connections, {args.rounds} round(s) of {args.duration} s per variant, SQLite"
    )
    runs: dict[str, list[Run]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        running = {v: start(stack, v, args, Path(tmp)) for v in variants}
        for round_no in range(args.rounds):
            for variant in variants if round_no % 2 == 0 else variants[::-1]:
                run = drive(running[variant], args)
                runs[variant].append(run)
                print(
                    f"round {round_no + 1:>2} {variant:<4} {run.load.rps:>7.0f} decisions/s"
                    f"  {run.cpu_us_per_decision:>6.0f} us CPU/decision  p50 {run.load.p50_ms:.2f} ms"
                    f"  p99 {run.load.p99_ms:.2f} ms  errors {run.load.errors}"
                )
    _print_summary(runs, variants)
    cost = in_process_cost_us()
    base = float(np.median([r.cpu_us_per_decision for r in runs["off"]]))
    print(
        f"in process: the start mark and the request histogram cost {cost:.1f} us per request"
        f" = {cost / base:.1%} of a decision's {base:.0f} us of server CPU (metrics off)"
    )
    return 0 if all(r.load.errors == 0 for turns in runs.values() for r in turns) else 1


def _ratios(runs: Sequence[Run], base: Sequence[Run]) -> tuple[list[float], list[float]]:
    """Per round: throughput over `off`'s, and CPU per decision over `off`'s."""
    throughput = [r.load.rps / b.load.rps for r, b in zip(runs, base, strict=True)]
    cpu = [r.cpu_us_per_decision / b.cpu_us_per_decision for r, b in zip(runs, base, strict=True)]
    return throughput, cpu


def _print_summary(runs: Mapping[str, list[Run]], variants: list[str]) -> None:
    """Per variant: medians of throughput, CPU per decision, latency, and of the per-round ratios to `off`."""
    print(
        f"\n{'variant':<8} {'decisions/s':>11} {'CPU us/dec':>10} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'throughput/off':>14} {'CPU/off':>8}"
    )
    for variant in variants:
        turns = runs[variant]
        throughput, cpu = _ratios(turns, runs["off"])
        print(
            f"{variant:<8} {np.median([r.load.rps for r in turns]):>11.0f}"
            f" {np.median([r.cpu_us_per_decision for r in turns]):>10.0f}"
            f" {np.median([r.load.p50_ms for r in turns]):>7.2f} {np.median([r.load.p99_ms for r in turns]):>7.2f}"
            f" {np.median(throughput):>14.3f} {np.median(cpu):>8.3f}"
        )
    for variant in (v for v in variants if v != "off"):
        throughputs, cpus = _ratios(runs[variant], runs["off"])
        speed, work = float(np.median(throughputs)), float(np.median(cpus))
        print(
            f"\n{variant} / off: throughput {speed:.3f} ({1 - speed:+.1%} cost),"
            f" CPU per decision {work:.3f} ({work - 1:+.1%} cost); medians of {len(runs[variant])} rounds"
        )


if __name__ == "__main__":
    raise SystemExit(main())
