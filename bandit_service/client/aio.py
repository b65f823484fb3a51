"""`AsyncBanditClient`: the SDK over an `httpx.AsyncClient`; a background task sends rewards and polls definitions.

The task starts on the first `decide`, `flush` or `async with` (it needs the running loop), and
`reward` (sync: it only queues) starts it too when called on the loop. Use one client per event
loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from bandit_service.client.base import ClientBase
from bandit_service.client.decisions import ClientDecision
from bandit_service.client.engine import Ask, FallbackSpec
from bandit_service.client.local import DefinitionsError, afetch_definitions
from bandit_service.client.wire import JSON_HEADERS, Answer, HttpCall, Outcome

if TYPE_CHECKING:
    from bandit_service.client.manage import AsyncManagement

__all__ = ["AsyncBanditClient"]

R = TypeVar("R")


class AsyncBanditClient(ClientBase[httpx.AsyncClient]):
    """The SDK for asyncio code (the options: see `ClientBase`); `reward` queues without waiting."""

    def _open(self) -> None:
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self._first_poll = asyncio.Event()
        self._first_poll_until = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._engine.delivery.wake = self._wake_sender

    def _new_http(self, *, base_url: str, headers: dict[str, str], timeout: float) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout)

    async def decide(
        self,
        *,
        experiment: str | None = None,
        feature: str | None = None,
        unit: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        fallback: FallbackSpec | None = None,
    ) -> ClientDecision:
        """The arm and payload to use (see `BanditClient.decide`); never raises on a service fault."""
        engine = self._engine
        await self._start()
        ask = Ask(experiment, feature, unit, attributes, fallback)
        decision = engine.decide_local(ask)
        if decision is not None:
            return decision
        return await self._drive(engine.decide_remote(ask))

    def _queued(self) -> None:
        if self._task is None:
            with contextlib.suppress(RuntimeError):  # no running loop here: the next async call starts the task
                self._begin(asyncio.get_running_loop())

    async def flush(self, timeout_s: float = 5.0) -> bool:
        """Send what is queued now; True once everything queued before the call is delivered (within `timeout_s`)."""
        await self._start()
        delivery = self._engine.delivery
        mark = delivery.mark()
        delivery.request_flush()
        try:
            async with asyncio.timeout(timeout_s), self._progress:
                await self._progress.wait_for(lambda: delivery.delivered(mark) or self._task_done())
        except TimeoutError:
            pass
        return delivery.delivered(mark)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Flush within `timeout_s`, stop the sender, close the HTTP client if this client made it."""
        if self._engine.closed:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        self._engine.close(flushed=await self.flush(timeout_s))
        self._stopping = True
        task = self._task
        if task is not None:
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), max(0.0, deadline - loop.time()))
            except TimeoutError:
                task.cancel()  # stuck in a send: the queue's state is counted, nothing else to save
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._owns_http:
            await self._http.aclose()

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """The same as `close` (the name asyncio code looks for)."""
        await self.close(timeout_s)

    async def __aenter__(self) -> AsyncBanditClient:
        await self._start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def manage(self) -> AsyncManagement:
        """Management calls (create, list, start, pause, complete, report...) on the same HTTP client."""
        from bandit_service.client.manage import AsyncManagement  # YAML and spec handling only when asked for

        return AsyncManagement(self._http)

    async def _start(self) -> None:
        """Start the sender on this loop (once); before the first definitions, wait for them up to `timeout_s`."""
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._begin(loop)
        if self._engine.evaluator is not None and not self._first_poll.is_set():
            remaining = self._first_poll_until - loop.time()
            if remaining > 0.0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._first_poll.wait(), remaining)

    def _begin(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._first_poll_until = loop.time() + self._engine.timeout_s
        self._task = loop.create_task(self._run(), name="bandit-client-sender")

    def _task_done(self) -> bool:
        return self._task is None or self._task.done()

    def _wake_sender(self) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:  # a reward queued from another thread
            loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        engine = self._engine
        try:
            while not self._stopping:
                self._wake.clear()
                if engine.poll_due():
                    await self._poll()
                if engine.delivery.due():
                    await self._drive(engine.delivery.cycle())
                async with self._progress:
                    self._progress.notify_all()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), engine.sleep_s())
        finally:
            async with self._progress:
                self._progress.notify_all()

    async def _poll(self) -> None:
        try:
            definitions = await afetch_definitions(self._http, self._engine.etag)
        except (httpx.HTTPError, DefinitionsError) as exc:
            self._engine.poll_failed(exc)
        else:
            self._engine.polled(definitions)
        self._first_poll.set()

    async def _drive(self, steps: Generator[HttpCall, Outcome, R]) -> R:
        """Make the calls the engine asks for, handing it each outcome, until it returns."""
        try:
            call = next(steps)
            while True:
                try:
                    response = await self._http.post(
                        call.path, content=call.body, headers=JSON_HEADERS, timeout=call.timeout_s
                    )
                except httpx.HTTPError as exc:
                    call = steps.send(exc)
                else:
                    call = steps.send(Answer(response.status_code, response.headers, response.content))
        except StopIteration as done:
            result: R = done.value
            return result
