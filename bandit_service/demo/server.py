"""The demo's service: the real app under uvicorn, in a background thread, on a throwaway SQLite file.

The socket is bound here, on port 0 of 127.0.0.1, and handed to uvicorn, so the free port is never
released between finding and using it. uvicorn's own logging configuration is not applied
(`log_config=None`), and the root logger is put back as it was after the app is built: both would
reconfigure the logging of the process the demo runs in.
"""

from __future__ import annotations

import logging
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import uvicorn

from bandit_service.app import create_app
from bandit_service.settings import Settings

__all__ = ["DemoServer", "DemoServerError", "demo_server", "demo_settings"]

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
THREAD_NAME = "bandit-demo-server"
"""The server thread's name (tests check that it is gone after the demo)."""


class DemoServerError(RuntimeError):
    """The demo's service did not start or did not stop in time."""


class DemoServer(msgspec.Struct, frozen=True, kw_only=True):
    """Where the running demo service answers, and the admin key it was started with."""

    url: str
    api_key: str
    database: Path


def demo_settings(database: Path, api_key: str, tick_s: float) -> Settings:
    """The service's settings for the demo: a SQLite file, a short scheduler tick, one known admin key.

    Auth stays on (the admin key is made here and handed to the demo's clients), so the demo runs
    the service as it is deployed and prints no "authentication is off" warning. `NORMAL`
    synchronous mode: the file is deleted at the end, so fsyncing every commit buys nothing.
    Metrics are off: the demo reads none, and a second demo in one process needs no second registry.
    """
    return Settings(
        database_url=f"sqlite:///{database}",
        sqlite_synchronous="NORMAL",
        scheduler_tick_s=tick_s,
        admin_key=api_key,
        metrics=False,
    )


@contextmanager
def demo_server(*, tick_s: float = 1.0) -> Iterator[DemoServer]:
    """Run the service until the block ends; the thread, socket and temporary directory go with it."""
    api_key = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="bandit-demo-") as directory:
        database = Path(directory) / "demo.db"
        with _host_logging_kept():
            app = create_app(demo_settings(database, api_key, tick_s))
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", log_level="warning")
        server = uvicorn.Server(config)
        # IPPROTO_TCP named, not left 0: asyncio sets TCP_NODELAY only on sockets that say they are
        # TCP, and without it every response waits ~40 ms for a delayed ACK (Nagle's algorithm).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=THREAD_NAME, daemon=True)
            thread.start()
            try:
                _wait_started(server, thread)
                yield DemoServer(url=f"http://127.0.0.1:{port}", api_key=api_key, database=database)
            finally:
                server.should_exit = True
                thread.join(STOP_TIMEOUT_S)
                if thread.is_alive():
                    raise DemoServerError(f"the demo service did not stop within {STOP_TIMEOUT_S:.0f} s")
        finally:
            sock.close()


@contextmanager
def _host_logging_kept() -> Iterator[None]:
    """Undo what building the app does to the root logger (Litestar sets it to INFO with a handler of its own).

    `serve` runs the app in a process of its own; the demo runs it inside the caller's (a terminal,
    a notebook), where an INFO root logger would print a line for every HTTP request the SDK makes.
    The service's warnings still show: they reach the caller's handlers, or Python's last resort.
    """
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        yield
    finally:
        root.setLevel(level)
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    """Return once uvicorn serves (its lifespan has opened the storage and the scheduler)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            raise DemoServerError("the demo service failed to start (its error is printed above)")
        if time.monotonic() > deadline:
            raise DemoServerError(f"the demo service did not start within {START_TIMEOUT_S:.0f} s")
        time.sleep(0.02)
