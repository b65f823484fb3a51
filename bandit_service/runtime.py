"""The resources of one running app: database, group-commit writer, cache, services, scheduler.

Built by `create_app` without touching anything; opened in the app's lifespan and closed on
shutdown, in reverse order (the scheduler stops before the writer drains its queue).
"""

from __future__ import annotations

import asyncio

import msgspec

from bandit_service.cache import ExperimentCache
from bandit_service.clock import Clock
from bandit_service.domain.decisions import DecisionService
from bandit_service.domain.experiments import ExperimentService
from bandit_service.domain.rewards import RewardService
from bandit_service.domain.reweighting import Reweighter
from bandit_service.ids import IdFactory
from bandit_service.scheduler import Scheduler
from bandit_service.settings import Settings
from bandit_service.storage.database import open_database
from bandit_service.storage.repository import Repository
from bandit_service.storage.sql import SqlRepository
from bandit_service.writer import GroupCommitWriter

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
        repository = SqlRepository(open_database(settings))
        await asyncio.to_thread(repository.create_schema)
        writer = GroupCommitWriter(
            repository, max_batch=settings.commit_max_batch, linger_s=settings.commit_linger_ms / 1000.0
        )
        await writer.start()
        cache = ExperimentCache(repository, self.clock, settings.cache_ttl_s)
        reweighter = Reweighter(repository, writer, cache)
        rewards = RewardService(repository, writer, self.clock, settings.expire_chunk)
        scheduler = None
        if settings.scheduler_enabled:
            scheduler = Scheduler(reweighter, rewards, self.clock, settings.scheduler_tick_s)
            scheduler.start()
        self._services = Services(
            repository=repository,
            writer=writer,
            cache=cache,
            experiments=ExperimentService(repository, writer, cache, reweighter, self.clock, self.ids),
            decisions=DecisionService(writer, cache, self.clock, self.ids),
            rewards=rewards,
            reweighter=reweighter,
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

    def writer(self) -> GroupCommitWriter:
        """Dependency provider."""
        return self.services.writer
