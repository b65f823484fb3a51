"""`BanditClient`: the SDK over an `httpx.Client`, with a background thread that sends rewards and polls definitions."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from bandit_service.client.base import ClientBase
from bandit_service.client.decisions import ClientDecision
from bandit_service.client.engine import Ask, FallbackSpec
from bandit_service.client.local import DefinitionsError, fetch_definitions
from bandit_service.client.wire import JSON_HEADERS, Answer, HttpCall, Outcome

if TYPE_CHECKING:
    from bandit_service.client.manage import Management

__all__ = ["BanditClient"]

R = TypeVar("R")


class BanditClient(ClientBase[httpx.Client]):
    """The SDK for threaded code (the options: see `ClientBase`); safe to share between threads."""

    def _open(self) -> None:
        self._wake = threading.Event()
        self._progress = threading.Condition()
        self._first_poll = threading.Event()
        self._stopping = False
        self._engine.delivery.wake = self._wake.set
        self._thread = threading.Thread(target=self._run, name="bandit-client-sender", daemon=True)
        self._thread.start()
        if self._engine.evaluator is not None:
            self._first_poll.wait(self._engine.timeout_s)

    def _new_http(self, *, base_url: str, headers: dict[str, str], timeout: float) -> httpx.Client:
        return httpx.Client(base_url=base_url, headers=headers, timeout=timeout)

    def decide(
        self,
        *,
        experiment: str | None = None,
        feature: str | None = None,
        unit: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        fallback: FallbackSpec | None = None,
    ) -> ClientDecision:
        """The arm and payload to use, by experiment or by feature; never raises on a service fault.

        Locally when the definitions know the key (`local=True`), else from the service within
        `timeout_s`, else the fallback (`source="fallback"`). An unknown key falls back too, or
        raises `BanditError` with `on_unknown="raise"`.
        """
        engine = self._engine
        ask = Ask(experiment, feature, unit, attributes, fallback)
        decision = engine.decide_local(ask)
        if decision is not None:
            return decision
        return self._drive(engine.decide_remote(ask))

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Send what is queued now; True once everything queued before the call is delivered (within `timeout_s`)."""
        delivery = self._engine.delivery
        mark = delivery.mark()
        delivery.request_flush()
        deadline = time.monotonic() + timeout_s
        with self._progress:
            while not delivery.delivered(mark):
                remaining = deadline - time.monotonic()
                if remaining <= 0.0 or not self._thread.is_alive():
                    return delivery.delivered(mark)
                self._progress.wait(remaining)
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush within `timeout_s`, stop the sender, close the HTTP client if this client made it."""
        if self._engine.closed:
            return
        deadline = time.monotonic() + timeout_s
        self._engine.close(flushed=self.flush(timeout_s))
        self._stopping = True
        self._wake.set()
        # The sender closes the HTTP client as it exits (it may still be in a request).
        self._thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> BanditClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def manage(self) -> Management:
        """Management calls (create, list, start, pause, complete, report...) on the same HTTP client."""
        from bandit_service.client.manage import Management  # YAML and spec handling only when asked for

        return Management(self._http)

    def _run(self) -> None:
        engine = self._engine
        try:
            while not self._stopping:
                self._wake.clear()
                if engine.poll_due():
                    self._poll()
                if engine.delivery.due():
                    self._drive(engine.delivery.cycle())
                with self._progress:
                    self._progress.notify_all()
                self._wake.wait(engine.sleep_s())
        finally:
            with self._progress:
                self._progress.notify_all()
            if self._owns_http:
                self._http.close()

    def _poll(self) -> None:
        try:
            definitions = fetch_definitions(self._http, self._engine.etag)
        except (httpx.HTTPError, DefinitionsError) as exc:
            self._engine.poll_failed(exc)
        else:
            self._engine.polled(definitions)
        self._first_poll.set()

    def _drive(self, steps: Generator[HttpCall, Outcome, R]) -> R:
        """Make the calls the engine asks for, handing it each outcome, until it returns."""
        try:
            call = next(steps)
            while True:
                try:
                    response = self._http.post(
                        call.path, content=call.body, headers=JSON_HEADERS, timeout=call.timeout_s
                    )
                except httpx.HTTPError as exc:
                    call = steps.send(exc)
                else:
                    call = steps.send(Answer(response.status_code, response.headers, response.content))
        except StopIteration as done:
            result: R = done.value
            return result
