"""Outages against real `bandit-service serve` processes: every request gets an answer while the trouble lasts.

Four outages: an exclusive lock held by another process, a full disk, a stopped PostgreSQL server
and a worker stopped (SIGSTOP) while it holds the SQLite writer lock. While each lasts, decisions,
rewards and creates answer 503 with Retry-After and a detail that names no host, port or file,
reads answer (or 503 likewise), /readyz is 503, /livez is 200 and the process lives; afterwards
everything answers again without a restart, and every write acknowledged before, during or after
is stored.

"Fast" is asserted without clocks: the trouble is still there when the answers arrive (the lock
holder still holds, the disk is still full, the server still down, the worker still stopped), and
no request may take longer than ANSWER_WITHIN_S (a hang fails the test instead of stalling it).
"""

from __future__ import annotations

import fcntl
import functools
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine

from tests.multiprocess import rows
from tests.multiprocess.replicas import AUTH, SOURCE_ROOT, Replica, Replicas, StartReplicas
from tests.multiprocess.traffic import create_experiment, experiment_body, transition

KEY = "outage"
ARMS = ("a", "b")
LOCK_HELD_S = 30.0
"""The longest an outage lasts by itself: the lock holder lets go after this long at the latest."""
ANSWER_WITHIN_S = LOCK_HELD_S + 10.0
"""Client timeout: before the fix, a request waited for the lock and succeeded once it was released."""
RECOVER_WITHIN_S = 30.0
SETTINGS = {
    "BANDIT_SQLITE_BUSY_TIMEOUT_MS": "1000",  # lock waits of 1 s keep the test short; the default is 5 s
    "BANDIT_POSTGRES_LOCK_TIMEOUT_MS": "1000",
    "BANDIT_CACHE_TTL_S": "0.2",
}
PG_LOCKED_TABLES = "experiments, arms, assignments, decisions, rewards, arm_counters, period_counters"
DISK_BYTES = 4 * 1024 * 1024

HOLD_LOCK = f"""
import os, select, sqlite3, sys
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
url, seconds = sys.argv[1], float(sys.argv[2])
if url.startswith("sqlite"):
    conn = sqlite3.connect(make_url(url).database, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
else:
    conn = create_engine(url).connect()
    conn.execute(text("LOCK TABLE {PG_LOCKED_TABLES} IN ACCESS EXCLUSIVE MODE"))
print("locked", flush=True)
select.select([sys.stdin], [], [], seconds)  # until the test closes our stdin, or `seconds`
os._exit(0)  # the lock goes with the process: while it runs, the lock is held
"""
"""Another process: takes the lock, says so, holds it until told (stdin closed) or LOCK_HELD_S, then exits."""


class Ledger:
    """The writes a replica acknowledged (2xx): decisions by id with their arm, rewards by decision id."""

    def __init__(self) -> None:
        self.decisions: dict[str, str] = {}
        self.rewards: dict[str, float] = {}
        self._lock = threading.Lock()

    def decide(self, url: str, unit: str) -> httpx.Response:
        """POST /v1/decisions; an acknowledged decision is recorded."""
        response = post(url, "/v1/decisions", {"experiment": KEY, "unit": unit})
        if response.status_code == 200:
            with self._lock:
                self.decisions[response.json()["decision_id"]] = response.json()["arm"]
        return response

    def reward(self, url: str, decision_id: str, value: float) -> httpx.Response:
        """POST /v1/rewards; an acknowledged reward is recorded."""
        response = post(url, "/v1/rewards", {"decision_id": decision_id, "reward": value})
        if response.status_code == 200:
            with self._lock:
                self.rewards[decision_id] = value
        return response

    def assert_stored(self, engine: Engine) -> None:
        """Every acknowledged decision is stored once on its arm, every acknowledged reward once with its value."""
        experiment_id = rows.experiment(engine, KEY).id
        stored = rows.decisions(engine, experiment_id)
        arm_of = {d.id: ARMS[d.arm] for d in stored}
        assert len(arm_of) == len(stored)
        lost = {i: arm for i, arm in self.decisions.items() if arm_of.get(i) != arm}
        assert not lost, f"{len(lost)} of {len(self.decisions)} acknowledged decisions are not stored as answered"
        rewards = rows.rewards(engine, experiment_id)
        value_of = {r.decision_id: r.value for r in rewards}
        assert len(value_of) == len(rewards)
        missing = {i: v for i, v in self.rewards.items() if value_of.get(i) != v}
        assert not missing, f"{len(missing)} of {len(self.rewards)} acknowledged rewards are not stored: {missing}"


def post(url: str, path: str, body: Any) -> httpx.Response:
    """POST with the admin key; a request that takes longer than ANSWER_WITHIN_S fails the test."""
    return httpx.post(f"{url}{path}", json=body, headers=AUTH, timeout=ANSWER_WITHIN_S)


def get(url: str, path: str) -> httpx.Response:
    """GET with the admin key, within ANSWER_WITHIN_S."""
    return httpx.get(f"{url}{path}", headers=AUTH, timeout=ANSWER_WITHIN_S)


def at_once(*requests: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """Send the requests concurrently (each waits out its own lock timeout); answers in order."""
    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(lambda request: request(), requests))


def assert_503(response: httpx.Response, *secrets: str, detail_start: str = "") -> None:
    """503 problem+json with Retry-After; the detail names none of `secrets` (host, port, path) nor the driver."""
    assert response.status_code == 503, f"{response.request.method} {response.request.url}: {response.text}"
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    detail = response.json()["detail"]
    assert detail.startswith(detail_start), detail
    for secret in (*secrets, "sqlite3", "psycopg", "SQL", "Errno"):
        assert secret not in response.text, f"{secret!r} leaked: {response.text}"


def eventually(check: Callable[[], bool], what: str, replicas: Replicas) -> None:
    """Poll until `check` holds (recovery), at most RECOVER_WITHIN_S."""
    deadline = time.monotonic() + RECOVER_WITHIN_S
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {RECOVER_WITHIN_S} s: {what}\n{replicas.logs()}")
        time.sleep(0.1)


def ready(url: str) -> bool:
    """Whether /readyz answers 200."""
    return get(url, "/readyz").status_code == 200


def start_experiment(url: str) -> None:
    """Create and start the test's experiment."""
    create_experiment(url, experiment_body(KEY, ARMS))
    transition(url, KEY, "start")


@contextmanager
def lock_held_by_another_process(database_url: str) -> Iterator[subprocess.Popen[str]]:
    """A process that holds the database's lock (see HOLD_LOCK); it lets go at exit."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, database_url, str(LOCK_HELD_S)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SOURCE_ROOT)},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n", "the lock holder did not lock"
        yield holder
    finally:
        for pipe in (holder.stdin, holder.stdout):
            if pipe is not None:
                pipe.close()
        holder.wait(timeout=LOCK_HELD_S)


def test_a_lock_held_by_another_process_is_a_fast_503_not_a_hang(
    start_replicas: StartReplicas, engine: Engine, database_url: str
):
    replicas = start_replicas(1, SETTINGS)
    url = replicas[0].url
    start_experiment(url)
    ledger = Ledger()
    first = ledger.decide(url, "before").json()
    with lock_held_by_another_process(database_url) as holder:
        decided, rewarded, created, read, readyz = at_once(
            lambda: ledger.decide(url, "during"),
            lambda: ledger.reward(url, first["decision_id"], 1.0),
            lambda: post(url, "/v1/experiments", experiment_body("other", ARMS)),
            lambda: get(url, f"/v1/experiments/{KEY}"),
            lambda: get(url, "/readyz"),
        )
        live = get(url, "/livez")
        still_held = holder.poll() is None
    assert still_held, "the answers came only after the lock holder let go"
    for response in (decided, rewarded, created):
        assert_503(response, detail_start="the database is locked by another process or connection")
    assert_503(readyz, detail_start="not ready: database: ")
    if database_url.startswith("sqlite"):
        assert read.status_code == 200, read.text  # WAL: readers do not wait for the write lock
    else:
        assert_503(read, detail_start="the database is locked")  # reads wait at most lock_timeout too
    assert live.status_code == 200 and replicas[0].alive()

    eventually(lambda: ready(url), "/readyz 200 after the lock is released", replicas)
    assert ledger.decide(url, "after").status_code == 200
    assert ledger.reward(url, first["decision_id"], 1.0).status_code == 200
    ledger.assert_stored(engine)
    assert "during" not in {d.unit for d in rows.decisions(engine, rows.experiment(engine, KEY).id)}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A DISK_BYTES tmpfs (root, as in CI); unmounted at teardown."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.fail(f"the full-disk test mounts a small tmpfs and needs root (CI runs as root): {mounted.stderr}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Fill the disk with one file, to the last byte."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == 28, exc  # ENOSPC
    finally:
        os.close(fd)
    for size in (512, 1):  # the last partial block
        try:
            with filler.open("ab") as f:
                while True:
                    f.write(b"\0" * size)
                    f.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_is_a_503_and_the_service_recovers_when_space_is_freed(small_disk: Path, tmp_path: Path):
    database = small_disk / "bandit.db"
    url = f"sqlite:///{database}"
    with Replicas(url, 1, SETTINGS, tmp_path / "replicas") as replicas:
        service = replicas[0].url
        start_experiment(service)
        ledger = Ledger()
        first = ledger.decide(service, "before").json()
        filler = fill(small_disk)
        # Writes go on while SQLite finds room in pages and WAL it already has; the first refusal is the test.
        refused = None
        for i in range(2_000):
            response = ledger.decide(service, f"full-{i}")
            if response.status_code != 200:
                refused = response
                break
        assert refused is not None, "2,000 decisions fit on a full disk"
        rewarded, readyz = at_once(
            lambda: ledger.reward(service, first["decision_id"], 1.0), lambda: get(service, "/readyz")
        )
        live = get(service, "/livez")
        assert shutil.disk_usage(small_disk).free < 4096, "the disk is no longer full"
        for response in (refused, rewarded):
            assert_503(response, str(small_disk), "bandit.db", detail_start="the database")
            assert "disk" in response.json()["detail"]
        assert_503(readyz, str(small_disk), "bandit.db", detail_start="not ready: database: ")
        assert live.status_code == 200 and replicas[0].alive()

        filler.unlink()
        eventually(lambda: ready(service), "/readyz 200 once space is freed", replicas)
        assert ledger.decide(service, "after").status_code == 200
        assert ledger.reward(service, first["decision_id"], 1.0).status_code == 200
        engine = create_engine(url)
        try:
            ledger.assert_stored(engine)
        finally:
            engine.dispose()


class PrivateServer:
    """A PostgreSQL cluster of this test's own (`.ci/postgres.sh`), to stop and start again."""

    def __init__(self) -> None:
        made = subprocess.run(
            ["bash", str(SOURCE_ROOT / ".ci" / "postgres.sh")], capture_output=True, text=True, timeout=120
        )
        if made.returncode != 0:
            pytest.fail(f".ci/postgres.sh could not start a private PostgreSQL (it needs root, as in CI): {made}")
        # Its output: `export TEST_POSTGRES_URL=...` and `export TEST_POSTGRES_STOP="su bandit-ci -s /bin/sh
        # -c '<bin>/pg_ctl -D <data> -m fast stop'"`.
        exports = dict(shlex.split(line)[1].split("=", 1) for line in made.stdout.splitlines() if line)
        self.url = exports["TEST_POSTGRES_URL"]
        self._stop = shlex.split(exports["TEST_POSTGRES_STOP"])
        *su_prefix, pg_ctl_command = self._stop
        pg_ctl, _, data = shlex.split(pg_ctl_command)[:3]
        self.data = Path(data)
        # `restart` starts a stopped server with the options of its last start (postmaster.opts).
        self._start = [*su_prefix, f"{pg_ctl} -D {data} -l {self.data.parent / 'log'} -w restart"]
        self.host_port = self.url.split("@", 1)[1].split("/", 1)[0]

    def stop(self) -> None:
        """pg_ctl stop -m fast: the server ends every connection and exits."""
        subprocess.run(self._stop, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        """Start it again on the same port and data."""
        subprocess.run(self._start, check=True, capture_output=True, timeout=60)

    def remove(self) -> None:
        """Stop it if running and delete its files."""
        subprocess.run(self._stop, check=False, capture_output=True, timeout=60)
        shutil.rmtree(self.data.parent, ignore_errors=True)


@pytest.fixture
def private_postgres(postgres_url: str) -> Iterator[PrivateServer]:
    """A private cluster (taking `postgres_url`: skipped, or failed under CI, like every PostgreSQL test)."""
    server = PrivateServer()
    try:
        yield server
    finally:
        server.remove()


def test_a_stopped_database_server_is_a_503_and_the_service_recovers_when_it_is_back(
    private_postgres: PrivateServer, tmp_path: Path
):
    host, port = private_postgres.host_port.split(":")
    with Replicas(private_postgres.url, 1, SETTINGS, tmp_path / "replicas") as replicas:
        service = replicas[0].url
        start_experiment(service)
        ledger = Ledger()
        first = ledger.decide(service, "before").json()
        private_postgres.stop()
        decided, rewarded, created, read, readyz = at_once(
            lambda: ledger.decide(service, "during"),
            lambda: ledger.reward(service, first["decision_id"], 1.0),
            lambda: post(service, "/v1/experiments", experiment_body("other", ARMS)),
            lambda: get(service, f"/v1/experiments/{KEY}"),
            lambda: get(service, "/readyz"),
        )
        live = get(service, "/livez")
        for response in (decided, rewarded, created, read):
            assert_503(response, host, port, detail_start="the database server")
        assert_503(readyz, host, port, detail_start="not ready: database: the database server")
        assert live.status_code == 200 and replicas[0].alive()

        private_postgres.start()
        eventually(lambda: ready(service), "/readyz 200 once the server is back", replicas)
        assert ledger.decide(service, "after").status_code == 200
        assert ledger.reward(service, first["decision_id"], 1.0).status_code == 200
        engine = create_engine(private_postgres.url)
        try:
            ledger.assert_stored(engine)
        finally:
            engine.dispose()


@contextmanager
def stopped_holding_the_writer_lock(replica: Replica, lock_file: Path) -> Iterator[None]:
    """SIGSTOP the replica at a moment it holds the writer lock (stop, look, resume and retry); SIGCONT at exit."""
    fd = os.open(lock_file, os.O_WRONLY)
    try:
        for _ in range(1_000):
            os.kill(replica.pid, signal.SIGSTOP)
            time.sleep(0.005)  # the signal is delivered asynchronously
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # held: by the stopped replica, the only other writer
                break
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.kill(replica.pid, signal.SIGCONT)
            time.sleep(0.002)
        else:
            pytest.fail("the replica was never caught holding the writer lock in 1,000 tries")
        try:
            yield
        finally:
            os.kill(replica.pid, signal.SIGCONT)
    finally:
        os.close(fd)


def lock_is_held(lock_file: Path) -> bool:
    """Whether some process holds the writer lock now."""
    fd = os.open(lock_file, os.O_WRONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases the lock if this took it
    return False


def test_a_worker_stopped_holding_the_writer_lock_does_not_hang_the_other(tmp_path: Path):
    database = tmp_path / "bandit.db"
    with Replicas(f"sqlite:///{database}", 2, SETTINGS, tmp_path / "replicas") as replicas:
        live, stopped = replicas[0].url, replicas[1].url
        start_experiment(live)
        ledger = Ledger()
        first = ledger.decide(live, "before").json()
        burst_over = threading.Event()

        def burst(worker: int) -> None:
            for i in range(100_000):
                if burst_over.is_set():
                    return
                try:
                    ledger.decide(stopped, f"burst-{worker}-{i}")
                except httpx.TransportError:  # no answer: not acknowledged (the test fails on its own answers)
                    return

        workers = [threading.Thread(target=burst, args=(w,)) for w in range(4)]
        for worker in workers:
            worker.start()
        try:
            with stopped_holding_the_writer_lock(replicas[1], Path(f"{database}-writer.lock")):
                burst_over.set()  # its requests in flight answer after SIGCONT
                answers = at_once(
                    *(functools.partial(ledger.decide, live, f"during-{i}") for i in range(4)),
                    lambda: ledger.reward(live, first["decision_id"], 1.0),
                    lambda: get(live, f"/v1/experiments/{KEY}"),
                    lambda: get(live, "/readyz"),
                    lambda: get(live, "/livez"),
                )
                still_held = lock_is_held(Path(f"{database}-writer.lock"))
        finally:
            burst_over.set()
            for worker in workers:
                worker.join()
        assert still_held, "the answers came only after the stopped worker let go of the lock"
        *writes, read, readyz, livez = answers
        for response in writes:  # a write cannot commit while the other holds the lock
            assert_503(response, str(tmp_path), "bandit.db", detail_start="the database is locked")
        assert read.status_code == 200, read.text
        assert_503(readyz, str(tmp_path), detail_start="not ready: database: ")  # the truth: it cannot write
        assert livez.status_code == 200

        for url in (live, stopped):
            eventually(functools.partial(ready, url), f"/readyz 200 at {url} after SIGCONT", replicas)
        assert ledger.decide(live, "after").status_code == 200
        assert ledger.reward(live, first["decision_id"], 1.0).status_code == 200
        engine = create_engine(f"sqlite:///{database}")
        try:
            ledger.assert_stored(engine)
        finally:
            engine.dispose()
