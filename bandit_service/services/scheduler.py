"""The scheduler: APScheduler (3.x) calls one tick: expire closed reward windows, advance rollouts, reweight,
then the automation pass (ends that have come, automatic actions on the report; `services.automation`).

The tick runs every `tick_s` seconds with `max_instances=1` and `coalesce=True`, so a slow
tick is never run twice at once nor replayed in a burst. Which experiments are due is decided
by the database (`next_reweight_at`), and each reweight is a compare-and-set, so several
replicas ticking at once still produce one reweight per interval. Webhook deliveries run as a
second job on the same interval (`deliver_webhooks`), so a slow receiver never delays a tick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bandit_service.core.telemetry import NoTelemetry, Telemetry
from bandit_service.ports import Clock
from bandit_service.services.automation import AutomationService
from bandit_service.services.rewards import RewardService
from bandit_service.services.reweighting import Reweighter
from bandit_service.services.rollouts import RolloutService
from bandit_service.services.webhooks import WebhookService

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)


class Scheduler:
    """Runs `tick` on an interval inside the app's event loop."""

    def __init__(
        self,
        reweighter: Reweighter,
        rewards: RewardService,
        clock: Clock,
        tick_s: float,
        rollouts: RolloutService | None = None,
        telemetry: Telemetry | None = None,
        automation: AutomationService | None = None,
        webhooks: WebhookService | None = None,
    ) -> None:
        self._webhooks = webhooks
        self._delivering = asyncio.Lock()
        self._reweighter = reweighter
        self._automation = automation
        self._telemetry = telemetry if telemetry is not None else NoTelemetry()
        self._rewards = rewards
        self._rollouts = rollouts
        self._clock = clock
        self._tick_s = tick_s
        self._running = asyncio.Lock()
        self._stopped = False  # set by `stop`: a tick APScheduler submitted before it must not touch closing storage
        self._scheduler: AsyncIOScheduler | None = None

    async def tick(self) -> None:
        """Expire closed reward windows (they count in guardrails and weights), advance rollouts, reweight, automate."""
        async with self._running:
            if self._stopped:
                return
            now = self._clock.time()
            started = time.perf_counter()
            try:
                expired = await self._rewards.expire_pending(now)
                moved = await self._rollouts.advance_rollouts(now) if self._rollouts is not None else 0
                reweighted = await self._reweighter.reweight_due(now)
                automated = await self._automation.automate_due(now) if self._automation is not None else 0
            except Exception:  # counted, then raised on to APScheduler, which logs it (a cancellation is neither)
                self._telemetry.ticked("failed", time.perf_counter() - started, now)
                raise
            self._telemetry.ticked("ok", time.perf_counter() - started, now)
            if expired or moved or reweighted or automated:
                log.info(
                    "scheduler tick: %d decisions expired, %d rollout steps, %d experiments reweighted, "
                    "%d automatic actions",
                    expired,
                    moved,
                    reweighted,
                    automated,
                )

    async def deliver_webhooks(self) -> None:
        """Send the webhook deliveries that are due (`services.webhooks`)."""
        if self._webhooks is None:
            return
        async with self._delivering:
            if self._stopped:  # as in `tick`
                return
            attempts = await self._webhooks.deliver_due(self._clock.time())
            if attempts:
                log.info("webhooks: %d delivery attempts", attempts)

    def start(self) -> None:
        """Start ticking (call inside the running event loop)."""
        self._stopped = False
        # APScheduler logs every run at INFO ("Running job", "executed successfully"): two lines per
        # tick per worker with nothing to say. Its warnings (missed or failed runs) still show, and a
        # level set by the operator's logging configuration is kept.
        apscheduler_log = logging.getLogger("apscheduler")
        if apscheduler_log.level == logging.NOTSET:
            apscheduler_log.setLevel(logging.WARNING)
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
        scheduler.add_job(self.tick, "interval", seconds=self._tick_s, id="bandit-tick", max_instances=1, coalesce=True)
        if self._webhooks is not None:
            # A job of its own: a receiver that is slow to answer never delays a reweight.
            scheduler.add_job(
                self.deliver_webhooks,
                "interval",
                seconds=self._tick_s,
                id="bandit-webhooks",
                max_instances=1,
                coalesce=True,
            )
        scheduler.add_listener(self._submitted, EVENT_JOB_SUBMITTED)
        scheduler.start()
        self._scheduler = scheduler

    def _submitted(self, event: JobSubmissionEvent) -> None:
        """APScheduler listener: how late the tick starts after the run time it stands for (a busy event loop)."""
        # APScheduler's schedule is on the real clock, so the lag is too (not the injected service clock).
        # Coalescing keeps only the latest of several missed run times, and a tick that is still running
        # makes the next one be skipped: longer stalls show as an old last-tick time, not as lag.
        late = datetime.now(UTC) - min(event.scheduled_run_times)
        self._telemetry.scheduler_lag(max(late.total_seconds(), 0.0))

    @property
    def running(self) -> bool:
        """Whether ticks are scheduled: started and not stopped (readiness asks)."""
        return self._scheduler is not None and self._scheduler.running

    async def stop(self) -> None:
        """Stop ticking and wait for a tick in progress to finish."""
        self._stopped = True
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        async with self._running:
            pass
        async with self._delivering:  # a delivery in progress ends within its time limit
            pass
