"""Local decisions per second on one core against remote decisions through the real service, in the same run.

    python -m benchmarks.local_decisions
    python -m benchmarks.local_decisions --number 500000 --repeat 7 --duration 10 --concurrency 32
    python -m benchmarks.local_decisions --quick

One uvicorn process (one worker) runs the service on a temporary SQLite file. The benchmark creates
a three-arm experiment (fixed weights 0.2/0.3/0.5) and a feature with two experiments (the first
takes half the units with `tier: pro`, the second everyone else), loads the SDK's
`LocalEvaluator` from the service's GET /v1/definitions, and measures:

- local: `LocalEvaluator.decide` in a loop in this process, one thread (one core), for each mix:
  sticky hit (returning units, all in the sticky store: a lookup and two Structs), new unit (one
  blake2b per arm, then the store's insert), and no unit (an independent draw, one hash per arm);
  by experiment and by feature. Each figure is the best of `--repeat` runs of `--number`
  decisions, the least disturbed by the machine's other work. Decision logs are made (every
  in-experiment result carries its `LoggedDecisionIn`) but not sent: sending is the client's
  background work, batched 100 to a request.
- client: `BanditClient(local=True).decide` for `--client-number` returning units, the whole
  SDK path (checks, the evaluator, the log queued), while its background sender delivers every
  decision log to the service (POST /v1/decisions/log, 1,000 per request): decisions per second
  of the app thread, and per CPU-second of this process including the sending (until the service
  has acknowledged every log).
- remote: POST /v1/decisions through httpx (an AsyncClient with `--concurrency` requests in
  flight) for `--duration` seconds, returning units and new units. Two figures: the throughput
  this process drives (the load generator shares the machine's cores), and decisions per second
  of the server's CPU time (its worker's user + system time from /proc), the fair per-core figure.

The ratio is local decisions/s on one core over remote decisions per server core-second; the
ratio to the remote throughput is printed beside it. Needs Linux (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bandit_service.client import BanditClient
from bandit_service.client.local import LocalEvaluator, fetch_definitions
from bandit_service.client.sticky import MemoryStickyStore
from bandit_service.core.definitions import MAX_DECISION_LOG
from benchmarks.http_load import AUTH, BENCH_KEY, SERVICE_APP, servers
from benchmarks.metrics_overhead import Server, worker_pids

__all__ = ["LocalFigure", "RemoteFigure", "main", "measure_local", "measure_remote"]

EXPERIMENT = "local-bench"
FEATURE = "local-feature"
WEIGHTS = (0.2, 0.3, 0.5)
RETURNING = 10_000  # returning units cycled through by the sticky-hit mixes
ATTRIBUTES = {"tier": "pro", "country": "AT"}


@dataclass(frozen=True)
class LocalFigure:
    """One local mix: decisions per second on one core (the best run) and microseconds per decision."""

    target: str
    mix: str
    per_s: float

    @property
    def us(self) -> float:
        return 1e6 / self.per_s


@dataclass(frozen=True)
class RemoteFigure:
    """One remote mix: throughput driven from this process, and decisions per second of server CPU."""

    mix: str
    decisions: int
    seconds: float
    server_cpu_s: float
    errors: int

    @property
    def per_s(self) -> float:
        return self.decisions / self.seconds if self.seconds > 0 else 0.0

    @property
    def per_core_s(self) -> float:
        return self.decisions / self.server_cpu_s if self.server_cpu_s > 0 else 0.0


def setup(url: str) -> None:
    """Create and start the experiment and the feature's two experiments."""
    arms = [{"name": name, "weight": w, "payload": {"variant": name}} for name, w in zip("abc", WEIGHTS, strict=True)]
    bodies: list[dict[str, Any]] = [
        {"key": EXPERIMENT, "name": "Local decisions benchmark", "arms": arms, "policy": {"kind": "fixed"}},
        {
            "key": "feature-first",
            "name": "First rule of the feature",
            "arms": [{"name": "x"}, {"name": "y"}],
            "feature": FEATURE,
            "priority": 0,
            "exposure": 0.5,
            "targeting": {"tier": "pro"},
        },
        {
            "key": "feature-second",
            "name": "Second rule of the feature",
            "arms": [{"name": "x"}, {"name": "y"}, {"name": "z"}],
            "feature": FEATURE,
            "priority": 1,
        },
    ]
    with httpx.Client(base_url=url, headers=AUTH, timeout=10) as http:
        http.put(f"/v1/features/{FEATURE}", json={"default_payload": {"variant": "default"}}).raise_for_status()
        for body in bodies:
            http.post("/v1/experiments", json=body).raise_for_status()
            http.post(f"/v1/experiments/{body['key']}/start").raise_for_status()


def load_definitions(url: str, evaluator: LocalEvaluator) -> None:
    """Load the service's definitions once they show every experiment active (its cache refreshes within 1 s)."""
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=url, headers=AUTH, timeout=10) as http:
        while True:
            definitions = fetch_definitions(http, None)
            if definitions is not None and sum(e.status == "active" for e in definitions.experiments) == 3:
                evaluator.load(definitions)
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url}: the definitions did not show the started experiments within 30 s")
            time.sleep(0.1)


def _best_rate(run: Callable[[list[Any]], None], make_units: Callable[[], list[Any]], repeat: int) -> float:
    """Decisions per second of the fastest of `repeat` runs; the units are made before the clock starts."""
    best, size = float("inf"), 0
    for _ in range(repeat):
        units = make_units()  # an app's unit ids are given, not built: not timed
        size = len(units)
        started = time.perf_counter()
        run(units)
        best = min(best, time.perf_counter() - started)
    return size / best


def measure_local(evaluator: LocalEvaluator, number: int, repeat: int) -> list[LocalFigure]:
    """Decisions per second of each local mix on this thread."""
    decide = evaluator.decide
    returning = [f"returning-{i}" for i in range(RETURNING)]
    for unit in returning:  # every returning unit in the sticky store, for both targets
        decide(experiment=EXPERIMENT, unit=unit, attributes=ATTRIBUTES)
        decide(feature=FEATURE, unit=unit, attributes=ATTRIBUTES)
    fresh = itertools.count()
    mixes: dict[str, Callable[[], list[Any]]] = {
        "sticky hit": lambda: [returning[i % RETURNING] for i in range(number)],
        "new unit": lambda: [f"new-{next(fresh)}" for _ in range(number)],
        "no unit": lambda: [None] * number,
    }

    def by_experiment(units: list[Any]) -> None:
        for unit in units:
            decide(experiment=EXPERIMENT, unit=unit, attributes=ATTRIBUTES)

    def by_feature(units: list[Any]) -> None:
        for unit in units:
            decide(feature=FEATURE, unit=unit, attributes=ATTRIBUTES)

    checks = {
        "experiment": decide(experiment=EXPERIMENT, unit=returning[0], attributes=ATTRIBUTES),
        "feature": decide(feature=FEATURE, unit=returning[0], attributes=ATTRIBUTES),
    }
    for target, check in checks.items():
        if check is None or check.log is None:
            raise RuntimeError(f"the {target} must serve its returning units, or the figure measures a shortcut")
    figures = []
    for target, run in (("experiment", by_experiment), ("feature", by_feature)):
        for mix, make_units in mixes.items():
            figures.append(LocalFigure(target, mix, _best_rate(run, make_units, repeat)))
    return figures


@dataclass(frozen=True)
class ClientFigure:
    """`BanditClient(local=True).decide` with its decision logs delivered to the service by the background sender."""

    decisions: int
    decide_s: float  # wall time of the app thread's decide loop
    delivered_s: float  # wall time until every log was acknowledged by the service
    cpu_s: float  # this process's CPU time over both (the app thread and the sender)

    @property
    def per_s(self) -> float:
        return self.decisions / self.decide_s

    @property
    def per_cpu_s(self) -> float:
        return self.decisions / self.cpu_s


def measure_client(url: str, number: int) -> ClientFigure:
    """Returning units through the whole SDK: decide (local), then every log sent and acknowledged (flush)."""
    with BanditClient(url, api_key=BENCH_KEY, local=True, batch_size=MAX_DECISION_LOG, max_queue=2 * number) as client:
        deadline = time.monotonic() + 30
        while client.decide(experiment=EXPERIMENT, unit="warm-up", attributes=ATTRIBUTES).source != "local":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url}: the client did not load the definitions within 30 s")
            time.sleep(0.1)
        units = [f"returning-{i % RETURNING}" for i in range(number)]
        for unit in units[:RETURNING]:
            client.decide(experiment=EXPERIMENT, unit=unit, attributes=ATTRIBUTES)
        if not client.flush(timeout_s=600):
            raise RuntimeError("the warm-up's decision logs were not delivered")
        cpu, started = time.process_time(), time.perf_counter()
        for unit in units:
            client.decide(experiment=EXPERIMENT, unit=unit, attributes=ATTRIBUTES)
        decided = time.perf_counter()
        if not client.flush(timeout_s=600):
            raise RuntimeError("the decision logs were not delivered within 600 s")
        delivered, cpu = time.perf_counter(), time.process_time() - cpu
        if client.stats.dropped_logs or client.stats.refused_logs:
            raise RuntimeError(f"decision logs lost: {client.stats}")
    return ClientFigure(number, decided - started, delivered - started, cpu)


async def _drive(
    url: str, bodies: Callable[[int], dict[str, Any]], concurrency: int, seconds: float | None, count: int | None = None
) -> tuple[int, int]:
    """POST decisions with `concurrency` in flight for `seconds` (or `count` in all); (answered 200, other answers)."""
    counter = itertools.count()
    ok = errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=10, limits=limits) as http:
        deadline = time.monotonic() + (seconds if seconds is not None else 3_600.0)

        async def worker() -> None:
            nonlocal ok, errors
            while time.monotonic() < deadline:
                i = next(counter)
                if count is not None and i >= count:
                    return
                response = await http.post("/v1/decisions", json=bodies(i))
                if response.status_code == 200:
                    ok += 1
                else:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok, errors


def measure_remote(url: str, concurrency: int, seconds: float, units: int = 1_000) -> list[RemoteFigure]:
    """Remote decisions of `units` returning units and of new units, with the server's CPU time."""
    server = Server(variant="service", url=url, pids=worker_pids(url, 1), scraped=False)
    returning = [f"remote-{i}" for i in range(units)]
    mixes: dict[str, Callable[[int], dict[str, Any]]] = {
        "sticky hit": lambda i: {"experiment": EXPERIMENT, "unit": returning[i % len(returning)]},
        "new unit": lambda i: {"experiment": EXPERIMENT, "unit": f"remote-new-{i}"},
    }
    # Warm-up: the returning units get their assignments (one decision each), the server warms up.
    warm = asyncio.run(_drive(url, mixes["sticky hit"], concurrency, None, len(returning)))
    if warm != (len(returning), 0):
        raise RuntimeError(f"warm-up: {warm[0]} of {len(returning)} decisions answered, {warm[1]} errors")
    figures = []
    for mix, bodies in mixes.items():
        cpu = server.cpu_seconds()
        started = time.perf_counter()
        ok, errors = asyncio.run(_drive(url, bodies, concurrency, seconds))
        elapsed = time.perf_counter() - started
        figures.append(RemoteFigure(mix, ok, elapsed, server.cpu_seconds() - cpu, errors))
    return figures


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Print local and remote decisions/s and their ratios; returns the figures by name."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000, help="local decisions per run")
    parser.add_argument("--repeat", type=int, default=5, help="local runs per mix; the best counts")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of remote load per mix")
    parser.add_argument("--concurrency", type=int, default=16, help="remote requests in flight")
    parser.add_argument("--client-number", type=int, default=50_000, help="decisions through BanditClient")
    parser.add_argument("--quick", action="store_true", help="a tiny run (the smoke test's)")
    args = parser.parse_args(argv)
    if args.quick:
        args.number, args.repeat, args.duration, args.concurrency, args.client_number = 2_000, 1, 0.5, 4, 2_000
    for flag in ("number", "repeat", "concurrency", "client_number"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag}: must be a positive integer")
    if args.duration <= 0:
        parser.error("--duration: must be positive")
    evaluator = LocalEvaluator(sticky=MemoryStickyStore())
    with tempfile.TemporaryDirectory() as tmp:
        env = {"BANDIT_DATABASE_URL": f"sqlite:///{Path(tmp) / 'bench.db'}", "BANDIT_ADMIN_KEY": BENCH_KEY}
        with servers(SERVICE_APP, 1, 1, env, Path(tmp)) as [url]:
            setup(url)
            load_definitions(url, evaluator)
            local = measure_local(evaluator, args.number, args.repeat)
            through_client = measure_client(url, args.client_number)
            remote = measure_remote(url, args.concurrency, args.duration, 50 if args.quick else 1_000)
    print(
        f"# local decisions vs remote, {os.cpu_count()} cores; local: one thread, best of {args.repeat} x {args.number}"
    )
    figures: dict[str, float] = {}
    for f in local:
        print(f"local  {f.target:<10} {f.mix:<10} {f.per_s:>12,.0f}/s {f.us:>8.2f} us per decision")
        figures[f"local {f.target} {f.mix}"] = f.per_s
    c = through_client
    print(
        f"client experiment  sticky hit {c.per_s:>12,.0f}/s {1e6 / c.per_s:>8.2f} us per decision in the app thread;"
        f" {c.per_cpu_s:,.0f} per CPU-second of this process with every log sent"
        f" ({c.decisions:,} logs acknowledged in {c.delivered_s:.1f} s)"
    )
    figures["client sticky hit"] = c.per_s
    figures["client sticky hit per cpu"] = c.per_cpu_s
    print(
        f"# remote: POST /v1/decisions, 1 uvicorn worker on SQLite, {args.concurrency} in flight, {args.duration:g} s"
    )
    for r in remote:
        print(
            f"remote experiment  {r.mix:<10} {r.per_s:>12,.0f}/s {1e6 / max(r.per_s, 1e-9):>8.0f} us per decision"
            f"   {r.per_core_s:,.0f} per server core-second, {r.errors} errors"
        )
        figures[f"remote {r.mix}"] = r.per_s
        figures[f"remote {r.mix} per core"] = r.per_core_s
    for mix in ("sticky hit", "new unit"):
        ours = figures[f"local experiment {mix}"]
        per_core, per_s = figures[f"remote {mix} per core"], figures[f"remote {mix}"]
        print(
            f"ratio {mix}: local / remote = {ours / max(per_core, 1e-9):,.0f}x per core"
            f" ({ours / max(per_s, 1e-9):,.0f}x the remote throughput)"
        )
    return figures


if __name__ == "__main__":
    main()
