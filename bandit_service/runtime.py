"""The resources of one running app: database, group-commit writer, cache, services, scheduler.

Built by `create_app` without touching anything; opened in the app's lifespan and closed on
shutdown, in reverse order (the scheduler stops before the writer drains its queue).
"""

from __future__ import annotations

import asyncio

import msgspec

from bandit_service.ports import Clock, IdFactory
from bandit_service.services.audit import AuditService
from bandit_service.services.cache import ExperimentCache
from bandit_service.services.decisions import DecisionService
from bandit_service.services.experiments import ExperimentService
from bandit_service.services.reports import ReportService
from bandit_service.services.rewards import RewardService
from bandit_service.services.reweighting import Reweighter
from bandit_service.services.rollouts import RolloutService
from bandit_service.services.scheduler import Scheduler
from bandit_service.settings import Settings
from bandit_service.storage.database import open_database
from bandit_service.storage.report_reads import SqlReportStore
from bandit_service.storage.repository import Repository
from bandit_service.storage.sql import SqlRepository
from bandit_service.storage.writer import GroupCommitWriter

__all__ = ["Runtime", "Services"]


class Services(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the handlers and the scheduler call."""

    repository: Repository
    writer: GroupCommitWriter
    cache: ExperimentCache
    experiments: ExperimentService
    decisions: DecisionService
    rewards: RewardService
    reweighter: Reweighter
    rollouts: RolloutService
    audit: AuditService
    reports: ReportService
    scheduler: Scheduler | None


class Runtime:
    """Opens and closes the app's resources; `services` exists between `open` and `close`."""

    def __init__(self, settings: Settings, clock: Clock, ids: IdFactory) -> None:
        self.settings = settings
        self.clock = clock
        self.ids = ids
        self._services: Services | None = None

    @property
    def services(self) -> Services:
        """The running services (RuntimeError before the lifespan has started)."""
        if self._services is None:
            raise RuntimeError("the app is not running: its lifespan has not started")
        return self._services

    async def open(self) -> None:
        """Create tables if needed, start the writer and the scheduler."""
        settings = self.settings
        database = open_database(settings)
        repository = SqlRepository(database)
        await asyncio.to_thread(repository.create_schema)
        writer = GroupCommitWriter(
            repository, max_batch=settings.commit_max_batch, linger_s=settings.commit_linger_ms / 1000.0
        )
        await writer.start()
        cache = ExperimentCache(repository, self.clock, settings.cache_ttl_s)
        reweighter = Reweighter(repository, writer, cache)
        rewards = RewardService(repository, writer, self.clock, settings.expire_chunk)
        experiments = ExperimentService(repository, writer, cache, reweighter, self.clock, self.ids)
        reports = ReportService(repository, SqlReportStore(database))
        rollouts = RolloutService(repository, writer, cache, experiments, self.clock, reports.guardrail_breach)
        scheduler = None
        if settings.scheduler_enabled:
            scheduler = Scheduler(reweighter, rewards, self.clock, settings.scheduler_tick_s, rollouts)
            scheduler.start()
        self._services = Services(
            repository=repository,
            writer=writer,
            cache=cache,
            experiments=experiments,
            decisions=DecisionService(writer, cache, self.clock, self.ids),
            rewards=rewards,
            reweighter=reweighter,
            reports=reports,
            rollouts=rollouts,
            audit=AuditService(repository),
            scheduler=scheduler,
        )

    async def close(self) -> None:
        """Stop the scheduler, commit queued writes, release the database."""
        services, self._services = self._services, None
        if services is None:
            return
        if services.scheduler is not None:
            await services.scheduler.stop()
        await services.writer.close()
        await services.cache.close()
        await asyncio.to_thread(services.repository.close)

    def experiments(self) -> ExperimentService:
        """Dependency provider."""
        return self.services.experiments

    def decisions(self) -> DecisionService:
        """Dependency provider."""
        return self.services.decisions

    def rewards(self) -> RewardService:
        """Dependency provider."""
        return self.services.rewards

    def repository(self) -> Repository:
        """Dependency provider."""
        return self.services.repository

    def rollouts(self) -> RolloutService:
        """Dependency provider."""
        return self.services.rollouts

    def audit(self) -> AuditService:
        """Dependency provider."""
        return self.services.audit

    def reports(self) -> ReportService:
        """Dependency provider."""
        return self.services.reports

    def writer(self) -> GroupCommitWriter:
        """Dependency provider."""
        return self.services.writer
