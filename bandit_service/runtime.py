"""The resources of one running app: storage, cache, services and scheduler.

Built by `create_app` without touching anything; opened in the app's lifespan and closed on
shutdown, in reverse order (the scheduler stops before the storage drains its queued writes).
"""

from __future__ import annotations

import logging

import msgspec

from bandit_service.core.telemetry import NoTelemetry, Telemetry
from bandit_service.ports import Clock, IdFactory, Storage
from bandit_service.services.audit import AuditService
from bandit_service.services.automation import AutomationService
from bandit_service.services.cache import ExperimentCache
from bandit_service.services.decision_log import DecisionLogService
from bandit_service.services.decisions import DecisionService
from bandit_service.services.definitions import DefinitionsService, poll_interval
from bandit_service.services.experiments import ExperimentService
from bandit_service.services.features import FeatureCache, FeatureService
from bandit_service.services.keys import KeyService
from bandit_service.services.readiness import Readiness
from bandit_service.services.reports import ReportService
from bandit_service.services.rewards import RewardService
from bandit_service.services.reweighting import Reweighter
from bandit_service.services.rollouts import RolloutService
from bandit_service.services.scheduler import Scheduler
from bandit_service.services.webhooks import WebhookService
from bandit_service.settings import Settings

__all__ = ["Runtime", "Services"]

log = logging.getLogger(__name__)


class Services(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the handlers and the scheduler call."""

    storage: Storage
    cache: ExperimentCache
    experiments: ExperimentService
    decisions: DecisionService
    decision_log: DecisionLogService
    definitions: DefinitionsService
    features: FeatureService
    rewards: RewardService
    reweighter: Reweighter
    rollouts: RolloutService
    automation: AutomationService
    audit: AuditService
    reports: ReportService
    keys: KeyService
    scheduler: Scheduler | None
    readiness: Readiness
    webhooks: WebhookService


class Runtime:
    """Opens and closes the app's resources; `services` exists between `open` and `close`."""

    def __init__(
        self, settings: Settings, storage: Storage, clock: Clock, ids: IdFactory, telemetry: Telemetry | None = None
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.clock = clock
        self.ids = ids
        self.telemetry: Telemetry = telemetry if telemetry is not None else NoTelemetry()
        self._services: Services | None = None

    @property
    def services(self) -> Services:
        """The running services (RuntimeError before the lifespan has started)."""
        if self._services is None:
            raise RuntimeError("the app is not running: its lifespan has not started")
        return self._services

    async def open(self) -> None:
        """Open the storage (tables, writer), build the services, start the scheduler."""
        settings, storage, clock = self.settings, self.storage, self.clock
        storage.webhook_url = settings.webhook_url  # every audit entry is queued for it too (`ports.Storage`)
        await storage.open()
        cache = ExperimentCache(storage, clock, settings.cache_ttl_s)
        feature_cache = FeatureCache(storage, cache)  # shares the experiment cache's polls
        reweighter = Reweighter(storage, cache, self.telemetry)
        rewards = RewardService(storage, clock, settings.expire_chunk)
        signed = settings.webhook_secret is not None
        experiments = ExperimentService(storage, cache, reweighter, clock, self.ids, webhooks_signed=signed)
        reports = ReportService(storage, clock=clock)
        rollouts = RolloutService(storage, cache, experiments, clock, reports.guardrail_breach)
        automation = AutomationService(storage, cache, reports)
        keys = KeyService(storage, clock, settings.cache_ttl_s)
        if settings.auth:
            _announce(await keys.bootstrap(settings.admin_key))
        else:
            log.warning(
                "AUTHENTICATION IS OFF (--no-auth / BANDIT_AUTH=off): anyone who reaches this port can create, "
                "change, pause and complete experiments and read every report. Use it for local play only."
            )
        webhooks = WebhookService(storage, clock, settings.webhook_secret)
        scheduler = None
        if settings.scheduler_enabled:
            scheduler = Scheduler(
                reweighter,
                rewards,
                clock,
                settings.scheduler_tick_s,
                rollouts,
                self.telemetry,
                automation,
                webhooks=webhooks,
            )
            scheduler.start()
        self._services = Services(
            storage=storage,
            cache=cache,
            experiments=experiments,
            decisions=DecisionService(storage, cache, clock, self.ids, self.telemetry, features=feature_cache),
            decision_log=DecisionLogService(storage, cache, clock),
            definitions=DefinitionsService(storage, cache, poll_interval(settings.cache_ttl_s)),
            features=FeatureService(storage, feature_cache, clock),
            rewards=rewards,
            reweighter=reweighter,
            reports=reports,
            rollouts=rollouts,
            automation=automation,
            audit=AuditService(storage),
            keys=keys,
            scheduler=scheduler,
            webhooks=webhooks,
            readiness=Readiness(
                storage, scheduler, timeout_s=settings.ready_timeout_ms / 1000.0, stuck_after_s=_stuck_after_s(settings)
            ),
        )

    async def close(self) -> None:
        """Stop the scheduler, commit queued writes, release the storage."""
        services, self._services = self._services, None
        if services is None:
            return
        if services.scheduler is not None:
            await services.scheduler.stop()
        await services.webhooks.close()
        await services.features.close()
        await services.cache.close()
        await services.storage.close()

    def experiments(self) -> ExperimentService:
        """Dependency provider."""
        return self.services.experiments

    def decisions(self) -> DecisionService:
        """Dependency provider."""
        return self.services.decisions

    def rewards(self) -> RewardService:
        """Dependency provider."""
        return self.services.rewards

    def decision_log(self) -> DecisionLogService:
        """Dependency provider."""
        return self.services.decision_log

    def definitions(self) -> DefinitionsService:
        """Dependency provider."""
        return self.services.definitions

    def features(self) -> FeatureService:
        """Dependency provider."""
        return self.services.features

    def webhooks(self) -> WebhookService:
        """Dependency provider."""
        return self.services.webhooks

    def storage_provider(self) -> Storage:
        """Dependency provider."""
        return self.services.storage

    def rollouts(self) -> RolloutService:
        """Dependency provider."""
        return self.services.rollouts

    def audit(self) -> AuditService:
        """Dependency provider."""
        return self.services.audit

    def reports(self) -> ReportService:
        """Dependency provider."""
        return self.services.reports

    def readiness(self) -> Readiness:
        """Dependency provider."""
        return self.services.readiness

    def keys(self) -> KeyService:
        """Dependency provider (also the auth middleware's)."""
        return self.services.keys


def _announce(token: str | None) -> None:
    """Print the admin key the first start made: the one time it is shown (stdout, where the operator looks)."""
    if token is None:
        return
    print(
        "No API key existed, so an admin key was created. It is stored hashed and will not be shown again;"
        " keep it now (more keys: `bandit-service keys create` or POST /v1/keys).",
        flush=True,
    )
    print(f"admin key: {token}", flush=True)


def _stuck_after_s(settings: Settings) -> float:
    """The longest a healthy write transaction runs: it may wait for the writer lock, then for the
    database's own lock (each bounded by a lock timeout); longer than that, and the readiness probe's
    timeout on top, the writer is stuck."""
    lock_wait_s = max(settings.sqlite_busy_timeout_ms, settings.postgres_lock_timeout_ms) / 1000.0
    return 2 * lock_wait_s + settings.ready_timeout_ms / 1000.0
