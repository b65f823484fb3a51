"""What the limits buy: CPU per reweight at and beyond the bounds, and slow clients with the guards off and on.

    python -m benchmarks.limits
    python -m benchmarks.limits --connections 200 --seconds 3 --arms 25 --draws 100000

Two tables, each measured in this run.

CPU per reweight: the CPU seconds (`time.process_time`, median of a few runs) of one
`ThompsonSampling.allocate` at `--arms` (50) arms x `--draws` (1,000,000) Monte Carlo draws, the
configuration the API now refuses with 422 (the policy is called directly, bypassing
`check_arms`, to show what it would have cost), against the largest accepted at that many arms
(arms x draws = MAX_DRAW_VALUES) and 2 arms x `--draws`; and the exact P(best) (quadrature,
`method="integration"`) at `--arms` arms against EXACT_MAX_ARMS (20), the most it now serves. The
API column is `check_arms`'s verdict, asked, not assumed.

Slow clients: a real `bandit-service serve` (auth off, SQLite in a temporary directory) per
variant, under an open-file limit of `--open-files` (1,024), soft and hard, so that `serve`
cannot raise it. Variant `off` turns off every guard against slow clients (read timeout,
connection cap, and the repeated-log-line limit: issue 11 found none of them); `on` runs the
defaults; `conn-off` turns off the read timeout and the connection cap only. Against each, an
attacker keeps `--connections` (1,100) connections open that each sent half a request head and
then stall (it reopens those the server closes) for `--seconds` (12), while a well-behaved client
sends GET /livez on a new connection every 0.2 s with a `--client-timeout` (5 s) timeout (httpx's,
on connecting and on each read). The attack goes on until the last of those requests is answered
or timed out. Per variant: the well-behaved requests answered (2xx, 503) or not (timed out,
failed otherwise), the bytes of log the server wrote during the attack (and the warning it wrote
most), and the server's CPU seconds over it.

Linux only (/proc, RLIMIT_NOFILE); this process must be allowed `--connections` + 200 open files.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import numpy as np

from benchmarks.http_load import free_port
from benchmarks.metrics_overhead import Server as CpuMeter
from policies import ConfigError, StatsArray, ThompsonSampling
from policies.posterior import EXACT_MAX_ARMS
from policies.thompson import MAX_DRAW_VALUES, MAX_DRAWS

__all__ = ["VARIANTS", "main"]

VARIANTS: Mapping[str, Mapping[str, str]] = {
    "off": {"BANDIT_READ_TIMEOUT_S": "0", "BANDIT_MAX_CONNECTIONS": "0", "BANDIT_LOG_REPEAT_LINES": "0"},
    "conn-off": {"BANDIT_READ_TIMEOUT_S": "0", "BANDIT_MAX_CONNECTIONS": "0"},
    "on": {},
}
"""BANDIT_* settings of each slow-client variant, on top of `COMMON` (`on`: the defaults)."""

COMMON = {"BANDIT_AUTH": "off"}
HALF_SENT = b"POST /v1/decisions HTTP/1.1\r\nHost: bandit\r\nContent-Type: application/json\r\n"
"""What each attacking connection sends: a request head without its end, then nothing."""
CLIENT_INTERVAL_S = 0.2
OWN_FILES_RESERVE = 200  # this process's files besides the attack: the client's sockets, logs, libraries
STARTUP_TIMEOUT_S = 60.0
MIN_CPU_S = 0.5  # a cheap configuration is run again until its runs add up to this much CPU
MAX_RUNS = 7
SEED = 20_240_611
STARTED = time.monotonic()


def progress(message: str) -> None:
    """One progress line on stderr (stdout holds the tables)."""
    print(f"[limits {time.monotonic() - STARTED:5.1f} s] {message}", file=sys.stderr, flush=True)


# --- CPU per reweight ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuRow:
    """One configuration of the CPU table: its median CPU per reweight and whether the API takes it."""

    label: str
    arms: int
    draws: int | None  # None: exact quadrature
    accepted: bool
    cpu_s: float
    runs: int


def close_stats(arms: int, rng: np.random.Generator) -> StatsArray:
    """Bernoulli statistics of `arms` arms, 10,000 units each, rates near 10%: a close race, as in a live test."""
    n = np.full(arms, 10_000.0)
    total = rng.binomial(10_000, 0.1, size=arms).astype(np.float64)
    return StatsArray(n, total, total)


def cpu_seconds(work: Callable[[], object]) -> tuple[float, int]:
    """Median CPU seconds of `work` over runs that add up to `MIN_CPU_S` (at most `MAX_RUNS`), and the run count."""
    runs: list[float] = []
    while not runs or (sum(runs) < MIN_CPU_S and len(runs) < MAX_RUNS):
        began = time.process_time()
        work()
        runs.append(time.process_time() - began)
    return float(np.median(runs)), len(runs)


def accepted(policy: ThompsonSampling, arms: int) -> bool:
    """Whether the API takes `policy` for `arms` arms (`check_arms` raises the ConfigError it answers 422 for)."""
    try:
        policy.check_arms(arms)
    except ConfigError:
        return False
    return True


def measure_cpu(arms: int, draws: int) -> list[CpuRow]:
    """The CPU table's rows: Monte Carlo beyond, at and beside the bound; exact P(best) at `arms` and at its bound."""
    rng = np.random.default_rng(SEED)
    largest = MAX_DRAW_VALUES // arms
    configs: list[tuple[str, int, ThompsonSampling]] = [
        ("monte carlo", arms, ThompsonSampling(draws=draws)),
        ("monte carlo", arms, ThompsonSampling(draws=largest)),
        ("monte carlo", 2, ThompsonSampling(draws=draws)),
        ("exact", arms, ThompsonSampling(method="integration")),
        ("exact", EXACT_MAX_ARMS, ThompsonSampling(method="integration")),
    ]
    rows = []
    for label, k, policy in configs:
        stats = close_stats(k, rng)
        shape = f"{k} arms x {policy.draws:,} draws" if label == "monte carlo" else f"{k} arms, exact P(best)"
        progress(f"cpu: {shape}")
        cpu, runs = cpu_seconds(partial(policy.allocate, stats, rng))
        draws_or_none = policy.draws if label == "monte carlo" else None
        rows.append(CpuRow(label, k, draws_or_none, accepted(policy, k), cpu, runs))
    return rows


def print_cpu(rows: Sequence[CpuRow]) -> None:
    """The CPU table (the rows of `measure_cpu`); each row's ratio is to the bound of its method."""
    print("\nCPU per reweight: ThompsonSampling.allocate, called directly (check_arms bypassed)")
    print(f"{'P(best)':<12} {'arms':>4} {'draws':>10} {'API':<9} {'CPU s':>7} {'runs':>4} {'x bound':>8}")
    beyond, bound, two, exact, exact_bound = rows
    bounds = {"monte carlo": bound, "exact": exact_bound}
    for r in rows:
        draws = f"{r.draws:,}" if r.draws is not None else "-"
        verdict = "accepted" if r.accepted else "422"
        ratio = r.cpu_s / bounds[r.label].cpu_s
        print(f"{r.label:<12} {r.arms:>4} {draws:>10} {verdict:<9} {r.cpu_s:>7.3f} {r.runs:>4} {ratio:>8.1f}")
    print(
        f"{beyond.arms} arms x {beyond.draws:,} draws costs {beyond.cpu_s / bound.cpu_s:.1f}x the largest accepted"
        f" {bound.arms}-arm reweight ({bound.draws:,} draws) and {beyond.cpu_s / two.cpu_s:.1f}x"
        f" {two.arms} arms x {two.draws:,}; exact P(best) at {exact.arms} arms costs"
        f" {exact.cpu_s / exact_bound.cpu_s:.1f}x that at {exact_bound.arms}"
    )


# --- slow clients -------------------------------------------------------------------------------


class Served:
    """One `bandit-service serve` under an open-file limit (soft and hard), its output in a log file."""

    def __init__(self, variant: str, directory: Path, open_files: int) -> None:
        self.variant = variant
        self.port = free_port()
        self.log_path = directory / f"serve-{variant}.log"
        env = {name: value for name, value in os.environ.items() if not name.startswith("BANDIT_")}
        env.update({**COMMON, **VARIANTS[variant], "BANDIT_DATABASE_URL": f"sqlite:///{directory / f'{variant}.db'}"})
        command = [sys.executable, "-m", "bandit_service.cli", "serve", "--port", str(self.port)]

        def limit_open_files() -> None:
            # The hard limit too: `serve` raises its soft limit to the hard one (raise_open_file_limit).
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of the benchmark reaches it through `stop` only
                preexec_fn=limit_open_files,
            )
        self.cpu = CpuMeter(variant, self.url, (self.process.pid,), scraped=False)  # one worker: this process

    @property
    def url(self) -> str:
        """Base URL of the HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def log_size(self) -> int:
        """Bytes of output written so far."""
        return self.log_path.stat().st_size

    def top_warning(self, since: int) -> tuple[str, int] | None:
        """The warning or error written most often after byte `since` (one example line) and how often; None: none.

        Lines are told apart with their digits masked: a timestamp does not make a repeated line new.
        """
        with self.log_path.open("rb") as log:
            log.seek(since)
            lines = log.read().decode(errors="replace").splitlines()
        warnings = [line for line in lines if line.startswith(("WARNING", "ERROR", "CRITICAL"))]
        counts = Counter(re.sub(r"\d", "0", line) for line in warnings)
        if not counts:
            return None
        masked, times = counts.most_common(1)[0]
        return next(line for line in warnings if re.sub(r"\d", "0", line) == masked), times

    def wait_ready(self) -> None:
        """Return once GET /livez answers 200; fail with the end of the log if it does not."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/livez", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        tail = self.log_path.read_text(errors="replace")[-2_000:]
        raise RuntimeError(f"bandit-service serve ({self.variant}) did not start on {self.url}:\n{tail}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit within 15 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def served(variants: Sequence[str], directory: Path, open_files: int) -> Iterator[dict[str, Served]]:
    """Start every variant's server at once (their start-ups overlap), wait until each answers, stop them after."""
    with ExitStack() as stack:
        running = {}
        for variant in variants:
            server = Served(variant, directory, open_files)
            stack.callback(server.stop)
            running[variant] = server
        for server in running.values():
            server.wait_ready()
        yield running


class Attacker(threading.Thread):
    """Keeps `connections` half-sent requests open until stopped; reopens those the server closes, and counts them."""

    def __init__(self, port: int, connections: int) -> None:
        super().__init__(daemon=True)
        self._port = port
        self._connections = connections
        self._stopping = threading.Event()
        self.opened = 0
        self.peak = 0
        self.closed_by_server = 0

    def run(self) -> None:
        """Open up to `connections`, send half a request head on each, drop and replace those closed."""
        sockets: list[socket.socket] = []
        try:
            while not self._stopping.is_set():
                while len(sockets) < self._connections and not self._stopping.is_set():
                    try:
                        sock = socket.create_connection(("127.0.0.1", self._port), timeout=5)
                        sock.sendall(HALF_SENT)
                        sock.setblocking(False)
                    except OSError:
                        break  # refused or reset under load: try again on the next round
                    sockets.append(sock)
                    self.opened += 1
                self.peak = max(self.peak, len(sockets))
                sockets = [sock for sock in sockets if self._still_open(sock)]
                self._stopping.wait(0.2)
        finally:
            for sock in sockets:
                sock.close()

    def stop(self) -> None:
        """Stop attacking and close every connection."""
        self._stopping.set()
        self.join()

    def _still_open(self, sock: socket.socket) -> bool:
        try:
            if sock.recv(4_096) == b"":  # the server closed it (or answered and closed)
                raise ConnectionResetError
        except BlockingIOError:
            return True
        except OSError:
            pass
        self.closed_by_server += 1
        sock.close()
        return False


Outcome = int | str
"""A well-behaved request's outcome: its HTTP status, or "timeout" / "failed" when no answer came."""


def ask(url: str, timeout_s: float) -> tuple[Outcome, float]:
    """GET /livez on a new connection: the status (or why none came) and the seconds it took."""
    began = time.monotonic()
    try:
        response = httpx.get(f"{url}/livez", timeout=timeout_s, headers={"Connection": "close"})
    except httpx.TimeoutException:
        return "timeout", time.monotonic() - began
    except httpx.HTTPError:
        return "failed", time.monotonic() - began
    return response.status_code, time.monotonic() - began


@dataclass(frozen=True)
class AttackResult:
    """One variant under attack: the well-behaved client's outcomes, the server's log and CPU over the attack."""

    variant: str
    outcomes: tuple[tuple[Outcome, float], ...]
    log_bytes: int
    top_warning: tuple[str, int] | None  # the warning or error line written most during the attack, and its count
    server_cpu_s: float
    attack_s: float
    opened: int
    peak: int
    closed_by_server: int

    def count(self, match: Callable[[Outcome], bool]) -> int:
        """Requests whose outcome matches."""
        return sum(1 for outcome, _ in self.outcomes if match(outcome))

    @property
    def answered(self) -> int:
        """Requests answered 2xx or 503 (with the guards on, both are the service working as meant)."""
        return self.count(lambda o: isinstance(o, int) and (200 <= o < 300 or o == 503))

    def latency_ms(self, q: float) -> float:
        """The q-quantile of the answered requests' latency, in milliseconds (NaN when none was answered)."""
        seconds = [s for o, s in self.outcomes if isinstance(o, int)]
        return float(np.quantile(seconds, q)) * 1e3 if seconds else float("nan")


def attack(server: Served, connections: int, seconds: float, timeout_s: float) -> AttackResult:
    """Stall `connections` connections for `seconds` while a client asks every 0.2 s; wait for its last answer."""
    log_before, cpu_before = server.log_size(), server.cpu.cpu_seconds()
    attacker = Attacker(server.port, connections)
    began = time.monotonic()
    attacker.start()
    pending: list[Future[tuple[Outcome, float]]] = []
    # Open loop: a request every interval whatever the earlier ones are doing, as independent users would.
    with ThreadPoolExecutor(max_workers=int(timeout_s / CLIENT_INTERVAL_S) + 4) as pool:
        try:
            tick = began
            while tick < began + seconds:
                pending.append(pool.submit(ask, server.url, timeout_s))
                tick += CLIENT_INTERVAL_S
                time.sleep(max(0.0, tick - time.monotonic()))
            outcomes = tuple(f.result() for f in pending)  # the attack holds until the last one is settled
        finally:
            attacker.stop()
    elapsed = time.monotonic() - began
    return AttackResult(
        variant=server.variant,
        outcomes=outcomes,
        log_bytes=server.log_size() - log_before,
        top_warning=server.top_warning(log_before),
        server_cpu_s=server.cpu.cpu_seconds() - cpu_before,
        attack_s=elapsed,
        opened=attacker.opened,
        peak=attacker.peak,
        closed_by_server=attacker.closed_by_server,
    )


def print_attacks(results: Sequence[AttackResult], args: argparse.Namespace) -> None:
    """The slow-client table, then each variant against `on` when both ran."""
    print(
        f"\nslow clients: {args.connections:,} half-sent requests held for {args.seconds:g} s against"
        f" `bandit-service serve` (open files {args.open_files:,}, soft and hard); a client sends GET /livez"
        f" every {CLIENT_INTERVAL_S:g} s, timeout {args.client_timeout:g} s"
    )
    print(
        f"{'variant':<9} {'requests':>8} {'2xx':>5} {'503':>5} {'timeout':>7} {'failed':>6} {'p50 ms':>8}"
        f" {'max ms':>8} {'log bytes':>12} {'server CPU s':>12} {'attack open':>11} {'closed by server':>16}"
    )
    for r in results:
        print(
            f"{r.variant:<9} {len(r.outcomes):>8} {r.count(lambda o: isinstance(o, int) and 200 <= o < 300):>5}"
            f" {r.count(lambda o: o == 503):>5} {r.count(lambda o: o == 'timeout'):>7}"
            f" {r.count(lambda o: o == 'failed' or (isinstance(o, int) and not 200 <= o < 300 and o != 503)):>6}"
            f" {r.latency_ms(0.5):>8.1f} {r.latency_ms(1.0):>8.1f} {r.log_bytes:>12,} {r.server_cpu_s:>12.2f}"
            f" {r.peak:>11,} {r.closed_by_server:>16,}"
        )
    by_variant = {r.variant: r for r in results}
    on = by_variant.get("on")
    for r in results:
        line = (
            f"{r.variant}: {r.answered} of {len(r.outcomes)} well-behaved requests answered;"
            f" {r.log_bytes / max(r.attack_s, 1e-9) / 1e3:,.1f} kB of log per second of attack"
        )
        if on is not None and r is not on:
            line += (
                f"; log bytes {r.log_bytes / max(on.log_bytes, 1):,.0f}x and server CPU"
                f" {r.server_cpu_s / max(on.server_cpu_s, 1e-9):.1f}x those with the guards on"
            )
        print(line)
        if r.top_warning is not None:
            text, times = r.top_warning
            print(f"  its most written warning ({times:,} times): {' '.join(text.split())[:150]}")


def allow_open_files(needed: int, parser: argparse.ArgumentParser) -> None:
    """Raise this process's soft open-file limit to `needed`, or stop with what to do."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        parser.error(f"--connections needs {needed:,} open files here and only {hard:,} are allowed (ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.limits", description=__doc__.split("\n")[0])
    parser.add_argument("--arms", type=int, default=50, help="arms of the costly configurations (default 50)")
    parser.add_argument("--draws", type=int, default=1_000_000, help="Monte Carlo draws beyond the bound (1,000,000)")
    parser.add_argument("--connections", type=int, default=1_100, help="stalled connections (default 1,100)")
    parser.add_argument("--seconds", type=float, default=12.0, help="seconds of attack per variant (default 12)")
    parser.add_argument("--open-files", type=int, default=1_024, help="the server's open-file limit (default 1,024)")
    parser.add_argument("--client-timeout", type=float, default=5.0, help="the client's timeout, s (default 5)")
    parser.add_argument("--variants", default="off,on", help=f"of {', '.join(VARIANTS)} (default off,on)")
    parser.add_argument("--skip-cpu", action="store_true", help="skip the CPU table")
    parser.add_argument("--skip-slow", action="store_true", help="skip the slow-client table")
    args = parser.parse_args(argv)
    if args.arms <= EXACT_MAX_ARMS or args.arms > MAX_DRAW_VALUES:
        parser.error(f"--arms: must be more than {EXACT_MAX_ARMS} (the exact bound) and at most {MAX_DRAW_VALUES:,}")
    if args.draws > MAX_DRAWS or args.draws * args.arms <= MAX_DRAW_VALUES:
        parser.error(
            f"--draws: at most {MAX_DRAWS:,} (the policy's own bound), and arms x draws above {MAX_DRAW_VALUES:,}"
            f" (the bound this table shows); got {args.arms} x {args.draws:,}"
        )
    if min(args.connections, args.open_files) < 1 or min(args.seconds, args.client_timeout) <= 0:
        parser.error("--connections, --open-files, --seconds and --client-timeout must be positive")
    variants = args.variants.split(",")
    if not variants or any(v not in VARIANTS for v in variants) or len(set(variants)) < len(variants):
        parser.error(f"--variants: of {', '.join(VARIANTS)}, each at most once; got {args.variants!r}")
    if not args.skip_slow:
        if not sys.platform.startswith("linux"):
            parser.error("the slow-client table needs Linux (/proc, RLIMIT_NOFILE); use --skip-slow")
        allow_open_files(args.connections + OWN_FILES_RESERVE, parser)
    print(f"# limits: {os.cpu_count()} cores, CPU figures from time.process_time in this process")
    if not args.skip_cpu:
        print_cpu(measure_cpu(args.arms, args.draws))
    if args.skip_slow:
        return 0
    results = []
    progress(f"slow clients: starting {', '.join(variants)}")
    with tempfile.TemporaryDirectory() as tmp, served(variants, Path(tmp), args.open_files) as running:
        for variant in variants:
            progress(f"slow clients: {variant}, {args.connections:,} connections for {args.seconds:g} s")
            results.append(attack(running[variant], args.connections, args.seconds, args.client_timeout))
            running[variant].stop()  # an attacked server must not spin beside the next one's run
    progress("slow clients: servers stopped")
    print_attacks(results, args)
    # With the guards on, every well-behaved request must get an answer: the benchmark doubles as a check.
    return 0 if all(r.answered == len(r.outcomes) for r in results if r.variant == "on") else 1


if __name__ == "__main__":
    raise SystemExit(main())
