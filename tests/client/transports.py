"""httpx transports for SDK tests: the in-process app, faults on a plan, a switch, a server that never answers."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Literal

import httpx
from litestar import Litestar
from litestar.testing import TestClient

__all__ = ["Fault", "Faults", "Forward", "SilentServer", "wait_until"]

Fault = Literal["ok", "500", "503", "429", "refused", "lost", "timeout"]
"""What happens to one request: passed on; answered 500/503/429 before the app sees it; refused
(a connection error, the app never sees it); lost or timed out after the app handled it (the
answer never arrives, the write is done)."""


class Forward(httpx.BaseTransport):
    """Sends each request to the in-process app through its TestClient (any thread may call it)."""

    def __init__(self, service: TestClient[Litestar]) -> None:
        self._service = service

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._service.send(request)
        return httpx.Response(response.status_code, headers=response.headers, content=response.content)


class Faults(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Wraps a transport (sync or async): requests to `paths` meet the faults of `plan` in turn, forever.

    `down` refuses every request while it is True (a stopped server). `seen` counts the faults
    dealt, by kind.
    """

    def __init__(
        self,
        inner: httpx.BaseTransport | httpx.AsyncBaseTransport,
        plan: Iterable[Fault] = ("ok",),
        paths: Iterable[str] | None = None,
    ) -> None:
        self._inner = inner
        self._plan = itertools.cycle(tuple(plan))
        self._paths = None if paths is None else frozenset(paths)
        self._lock = threading.Lock()
        self.down = False
        self.seen: Counter[str] = Counter()

    def _next(self, request: httpx.Request) -> Fault:
        if self.down:
            return "refused"
        if self._paths is not None and request.url.path not in self._paths:
            return "ok"
        with self._lock:
            fault = next(self._plan)
            self.seen[fault] += 1
        return fault

    def _before(self, fault: Fault, request: httpx.Request) -> httpx.Response | None:
        match fault:
            case "500" | "503" | "429":
                headers = {"Retry-After": "0"} if fault != "500" else {}
                body = {"type": "about:blank", "title": "injected", "status": int(fault), "detail": "injected fault"}
                return httpx.Response(int(fault), json=body, headers=headers)
            case "refused":
                raise httpx.ConnectError("injected: connection refused", request=request)
        return None

    def _after(self, fault: Fault, request: httpx.Request, response: httpx.Response) -> httpx.Response:
        match fault:
            case "lost":
                raise httpx.ReadError("injected: connection reset after the request was handled", request=request)
            case "timeout":
                raise httpx.ReadTimeout("injected: timed out after the request was handled", request=request)
        return response

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        fault = self._next(request)
        early = self._before(fault, request)
        if early is not None:
            return early
        assert isinstance(self._inner, httpx.BaseTransport)
        response = self._inner.handle_request(request)
        response.read()
        return self._after(fault, request, response)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        fault = self._next(request)
        early = self._before(fault, request)
        if early is not None:
            return early
        assert isinstance(self._inner, httpx.AsyncBaseTransport)
        response = await self._inner.handle_async_request(request)
        await response.aread()
        return self._after(fault, request, response)


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts connections and never answers (a server too slow to wait for)."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.05)  # accept() wakes to see `close`
        self.port: int = self._socket.getsockname()[1]
        self._held: list[socket.socket] = []
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            self._held.append(connection)

    def close(self) -> None:
        """Stop accepting and drop every held connection (waiting clients see a reset)."""
        self._closing.set()
        self._thread.join(5)
        self._socket.close()
        for connection in self._held:
            connection.close()


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Poll `predicate` until it holds or `timeout_s` passes (a bound against hangs, not a timing assert)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
