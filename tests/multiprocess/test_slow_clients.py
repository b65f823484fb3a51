"""Slow clients against a real `bandit-service serve`: they cannot starve others, nor flood the log.

The defect: 1,100 half-sent requests from one client made the service unavailable and wrote
80 MB of log in 25 s. On a host whose open-file limit is 1,024 (a common default) uvicorn kept
every stalled connection open for ever, ran out of file descriptors, and asyncio's accept loop
then logged a traceback thousands of times a second while no new client was accepted. Here the
server runs under that limit (soft and hard, so `serve` cannot raise it), and one client keeps
1,100 half-sent requests open while another asks for /healthz on a fresh connection each time:
every one of its requests gets an answer (200, or 503 with Retry-After), the server closes the
stalled connections itself, and the log grows by less than 1 MB. The other tests check the cap:
a newcomer closes the connection that stalled longest, or gets 503 when all are busy.

The server is started here rather than by `Replicas`, which cannot lower a child's open-file
limit; it runs on a SQLite file (the database plays no part).
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from benchmarks.limits import HALF_SENT, Attacker  # the benchmark's attack: one implementation
from tests.multiprocess.replicas import PREFIX, SOURCE_ROOT

OPEN_FILES = 1_024
ATTACK_CONNECTIONS = 1_100
ATTACK_S = 10.0
CLIENT_TIMEOUT_S = 20.0  # generous: the test asserts that an answer comes, not how fast
LOG_BOUND_BYTES = 1_000_000
STARTUP_TIMEOUT_S = 120.0


class Server:
    """One `bandit-service serve` process with an open-file limit, writing its output to `log_path`."""

    def __init__(self, tmp_path: Path, settings: Mapping[str, str], open_files: int = OPEN_FILES) -> None:
        self.port = _free_port()
        self.log_path = tmp_path / "serve.log"
        env = {name: value for name, value in os.environ.items() if not name.startswith(PREFIX)}
        env.update(settings)
        env["BANDIT_DATABASE_URL"] = f"sqlite:///{tmp_path / 'bandit.db'}"
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SOURCE_ROOT), os.environ.get("PYTHONPATH")) if p)
        command = [sys.executable, "-m", "bandit_service.cli", "serve", "--port", str(self.port)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=tmp_path,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files)),
            )

    @property
    def url(self) -> str:
        """Base URL of the HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def log_size(self) -> int:
        """Bytes of output written so far."""
        return self.log_path.stat().st_size

    def log_tail(self) -> str:
        """The end of the output, for failure messages."""
        return self.log_path.read_text(errors="replace")[-3_000:]

    def wait_ready(self) -> None:
        """Return once GET /healthz answers 200."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"the server did not come up\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not exit within 15 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with a short read deadline under a 1,024 open-file limit."""
    server = Server(tmp_path_factory.mktemp("guarded"), {"BANDIT_AUTH": "off", "BANDIT_READ_TIMEOUT_S": "2"})
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with a cap of 4 connections and a deadline too long to matter here."""
    settings = {"BANDIT_AUTH": "off", "BANDIT_MAX_CONNECTIONS": "4", "BANDIT_READ_TIMEOUT_S": "60"}
    server = Server(tmp_path_factory.mktemp("capped"), settings)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def open_files_for_the_attack() -> Iterator[None]:
    """This process may open the attacker's sockets (raise the soft limit for the test, restore it after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = ATTACK_CONNECTIONS + 500
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.fail(f"the test needs {needed} open files; this process may open {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _answer(url: str) -> tuple[int, str | None] | str:
    """A well-behaved request on a fresh connection: (status, Retry-After), or the error if none came."""
    try:
        response = httpx.get(f"{url}/healthz", timeout=CLIENT_TIMEOUT_S, headers={"Connection": "close"})
    except httpx.HTTPError as exc:
        return repr(exc)
    return response.status_code, response.headers.get("retry-after")


def test_half_sent_requests_neither_starve_a_well_behaved_client_nor_flood_the_log(
    guarded: Server, open_files_for_the_attack: None
) -> None:
    server = guarded
    log_before = server.log_size()
    attacker = Attacker(server.port, ATTACK_CONNECTIONS)
    attacker.start()
    answers: list[tuple[int, str | None] | str] = []
    try:
        ends = time.monotonic() + ATTACK_S
        while time.monotonic() < ends:
            answers.append(_answer(server.url))
            time.sleep(0.25)
    finally:
        attacker.stop()
    logged = server.log_size() - log_before

    unanswered = [a for a in answers if not (a == (200, None) or (isinstance(a, tuple) and a[0] == 503 and a[1]))]
    assert answers and not unanswered, f"{len(unanswered)} of {len(answers)}: {unanswered[:5]}\n{server.log_tail()}"
    assert attacker.opened >= ATTACK_CONNECTIONS, f"the attack opened only {attacker.opened} connections"
    # The read deadline closed the stalled connections (each at least once over the attack).
    assert attacker.closed_by_server >= ATTACK_CONNECTIONS, attacker.closed_by_server
    assert logged < LOG_BOUND_BYTES, f"{logged} bytes of log during the attack\n{server.log_tail()}"


def _stalled(port: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(HALF_SENT)
        sockets.append(sock)
    return sockets


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes `sock` within the client timeout (EOF or reset)."""
    sock.settimeout(CLIENT_TIMEOUT_S)
    try:
        return sock.recv(4_096) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_a_connection_beyond_the_cap_closes_the_one_that_stalled_longest(capped: Server) -> None:
    server = capped
    assert _answer(server.url) == (200, None)  # and the connections of an earlier test are gone
    oldest = _stalled(server.port, 1)
    time.sleep(0.1)  # so that the others begin to wait later
    others = _stalled(server.port, 3)
    time.sleep(1.5)  # past EVICT_AFTER_S: they may be closed for a newcomer
    try:
        assert _answer(server.url) == (200, None)
        assert _closed_by_server(oldest[0])
        for sock in others:  # the newcomer needed one place only
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(4_096)
    finally:
        for sock in [*oldest, *others]:
            sock.close()


def test_when_every_connection_is_busy_a_newcomer_gets_503_with_retry_after(capped: Server) -> None:
    server = capped
    assert _answer(server.url) == (200, None)  # and the connections of an earlier test are gone
    busy = []
    for _ in range(4):  # a whole head and half a body: the handler runs, waiting for the rest
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(HALF_SENT + b'Content-Length: 100\r\n\r\n{"experiment": ')
        busy.append(sock)
    try:
        response = httpx.get(f"{server.url}/healthz", timeout=CLIENT_TIMEOUT_S)
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.headers["content-type"] == "application/problem+json"
        assert "connection limit" in response.json()["detail"]
    finally:
        for sock in busy:
            sock.close()
    assert _answer(server.url) == (200, None)  # the places are free again


def test_a_connection_that_sends_no_whole_request_in_time_is_closed(guarded: Server) -> None:
    server = guarded
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=5)  # sends nothing at all
    (stalled,) = _stalled(server.port, 1)
    try:
        assert _closed_by_server(idle)
        assert _closed_by_server(stalled)
        assert _answer(server.url) == (200, None)
    finally:
        idle.close()
        stalled.close()
