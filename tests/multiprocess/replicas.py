"""Real `bandit-service serve` processes on one database: start N, wait for /healthz, kill -9 one, stop all.

Each replica is `python -m bandit_service.cli serve` on a free port of its own, configured only by
the BANDIT_* variables given here: the test's own BANDIT_* variables are dropped, so nothing leaks
in. A replica runs the `bandit_service` package this process imports (its source root is put first
on PYTHONPATH), so a checkout on PYTHONPATH is tested as it is. Its output goes to a file whose tail
`Replicas.logs()` returns for failure messages.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

import bandit_service
from tests.service.api import ADMIN_KEY

__all__ = ["AUTH", "Replica", "ReplicaError", "Replicas", "StartReplicas"]

SOURCE_ROOT = Path(bandit_service.__file__).resolve().parents[1]
PREFIX = "BANDIT_"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
"""Headers that authenticate a test's requests to the replicas (they start with ADMIN_KEY as the admin key)."""
LOG_TAIL_CHARS = 3_000
PORT_ATTEMPTS = 3


class ReplicaError(RuntimeError):
    """A replica did not come up (its log tail is in the message)."""


class Replica:
    """One `bandit-service serve` process on `port`, writing its output to `log_path`."""

    def __init__(self, index: int, port: int, process: subprocess.Popen[bytes], log_path: Path, log: IO[bytes]) -> None:
        self.index = index
        self.port = port
        self.process = process
        self.log_path = log_path
        self._log = log

    @property
    def url(self) -> str:
        """Base URL of the replica's HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The process id (uvicorn with one worker serves in this process)."""
        return self.process.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.process.poll() is None

    def log_tail(self) -> str:
        """The end of the replica's output, headed by its port, pid and state."""
        code = self.process.poll()
        state = "running" if code is None else f"exit code {code}"
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        if len(text) > LOG_TAIL_CHARS:
            text = "[...]" + text[-LOG_TAIL_CHARS:]
        return f"--- replica {self.index} (port {self.port}, pid {self.pid}, {state}) ---\n{text or '(no output)'}"

    def close_log(self) -> None:
        """Close the output file (after the process has ended)."""
        self._log.close()


class Replicas:
    """`count` replicas of the service on `database_url`; use as a context manager or call start/stop."""

    def __init__(
        self,
        database_url: str,
        count: int,
        settings: Mapping[str, str],
        log_dir: Path,
        *,
        startup_timeout_s: float = 120.0,
    ) -> None:
        unknown = [name for name in settings if not name.startswith(PREFIX)]
        if unknown:
            raise ValueError(f"settings are BANDIT_* variables, got {unknown}")
        self._database_url = database_url
        self._count = count
        self._settings = dict(settings)
        self._log_dir = log_dir
        self._startup_timeout_s = startup_timeout_s
        self._replicas: list[Replica] = []
        self._spawned = 0

    def __enter__(self) -> Replicas:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def __getitem__(self, index: int) -> Replica:
        return self._replicas[index]

    def __len__(self) -> int:
        return len(self._replicas)

    @property
    def urls(self) -> list[str]:
        """Base URLs, by replica index."""
        return [r.url for r in self._replicas]

    def start(self) -> None:
        """Start every replica and return once each answers GET /healthz with 200."""
        self._log_dir.mkdir(parents=True, exist_ok=True)
        # The first replica creates the tables alone: replicas racing to create them on an empty
        # database is not what these tests are about. The others start together.
        self._replicas.append(self._spawn(0))
        self._wait_healthy(0)
        self._replicas.extend(self._spawn(i) for i in range(1, self._count))
        for i in range(1, self._count):
            self._wait_healthy(i)

    def kill(self, index: int) -> None:
        """kill -9 one replica (no shutdown of any kind) and reap it."""
        replica = self._replicas[index]
        os.kill(replica.pid, signal.SIGKILL)
        replica.process.wait()

    def stop(self) -> None:
        """SIGTERM every replica still running, SIGKILL those that do not exit within 15 s."""
        for replica in self._replicas:
            if replica.alive():
                replica.process.send_signal(signal.SIGTERM)
        for replica in self._replicas:
            try:
                replica.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait()
            replica.close_log()

    def logs(self) -> str:
        """The tail of every replica's output, for a failure message."""
        return "\n".join(r.log_tail() for r in self._replicas)

    def _environment(self) -> dict[str, str]:
        env = {name: value for name, value in os.environ.items() if not name.startswith(PREFIX)}
        env["BANDIT_ADMIN_KEY"] = ADMIN_KEY  # the first replica's start makes it the admin key
        env.update(self._settings)
        env["BANDIT_DATABASE_URL"] = self._database_url
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SOURCE_ROOT), os.environ.get("PYTHONPATH")) if p)
        return env

    def _spawn(self, index: int) -> Replica:
        port = _free_port()
        self._spawned += 1
        log_path = self._log_dir / f"replica-{index}-{self._spawned}.log"
        log = log_path.open("wb")
        command = [sys.executable, "-m", "bandit_service.cli", "serve"]
        command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        process = subprocess.Popen(
            command,
            cwd=self._log_dir,
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C of pytest reaches pytest only; teardown stops the replicas
        )
        return Replica(index, port, process, log_path, log)

    def _wait_healthy(self, index: int) -> None:
        """Wait for 200 from /healthz; respawn on another port if this one was taken meanwhile."""
        replica = self._replicas[index]
        for _ in range(PORT_ATTEMPTS):
            deadline = time.monotonic() + self._startup_timeout_s
            with httpx.Client(base_url=replica.url, timeout=2.0) as client:
                while replica.alive() and time.monotonic() < deadline:
                    try:
                        if client.get("/healthz").status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                    time.sleep(0.05)
            if replica.alive():
                raise ReplicaError(f"no 200 from /healthz within {self._startup_timeout_s} s\n{replica.log_tail()}")
            replica.close_log()
            if "address already in use" not in replica.log_path.read_text(errors="replace").lower():
                break
            replica = self._replicas[index] = self._spawn(index)
        raise ReplicaError(f"replica {replica.index} exited during start-up\n{replica.log_tail()}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


StartReplicas = Callable[[int, Mapping[str, str]], Replicas]
"""The `start_replicas` fixture: start `count` replicas with these BANDIT_* settings."""
