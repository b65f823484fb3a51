"""Reweighting: new weights from the policy and the counters, applied with a compare-and-set.

Several replicas may run the scheduler. Each computes from the experiment revision it read and
writes only if that revision is still current (`update_experiment` is a conditional UPDATE),
so exactly one reweight per interval lands and the others are dropped without effect.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import msgspec
import numpy as np

from bandit_service.core.assignment import derive_seed
from bandit_service.core.events import SCHEDULER
from bandit_service.core.experiment_rules import bound_policy
from bandit_service.core.model import ArmCounts, Event, Experiment, WeightsReason, WeightsRecord
from bandit_service.core.telemetry import NoTelemetry, ReweightOutcome, Telemetry
from bandit_service.core.weights import with_weights
from bandit_service.ports import Storage, WriteTx
from bandit_service.services.cache import ExperimentCache
from policies import StatsArray

__all__ = ["Reweighter", "WeightsChange", "apply_weights", "compute_weights"]


class WeightsChange(msgspec.Struct, frozen=True, kw_only=True):
    """New weights for an experiment, valid only if its revision has not moved since it was read."""

    experiment: Experiment
    record: WeightsRecord
    event: Event | None


def compute_weights(experiment: Experiment, counts: Sequence[ArmCounts], seed: int) -> tuple[float, ...]:
    """The policy's allocation from the per-arm statistics (pending decisions are not in them)."""
    stats = StatsArray.from_arms([c.stats for c in counts])
    policy = bound_policy(experiment.config, experiment.weights)
    weights = policy.allocate(stats, np.random.default_rng(seed))
    return tuple(float(w) for w in weights)


def apply_weights(tx: WriteTx, items: Sequence[WeightsChange]) -> list[Experiment | None]:
    """Write job: store new weights and their history row; None where another writer got there first."""
    out: list[Experiment | None] = []
    for change in items:
        updated = tx.update_experiment(change.experiment)
        if updated is not None:
            tx.append_weights(change.record)
            if change.event is not None:
                tx.log_event(change.event)
        out.append(updated)
    return out


class Reweighter:
    """Computes and applies new weights, on demand or when an experiment's schedule says so."""

    def __init__(self, storage: Storage, cache: ExperimentCache, telemetry: Telemetry | None = None) -> None:
        self._storage = storage
        self._cache = cache
        self._telemetry = telemetry if telemetry is not None else NoTelemetry()

    async def reweight(
        self, experiment: Experiment, reason: WeightsReason, now: float, *, actor: str = SCHEDULER
    ) -> WeightsRecord | None:
        """New weights for an active experiment; None if a concurrent change won the compare-and-set."""
        started = time.perf_counter()
        try:
            record = await self._reweight(experiment, reason, now, actor)
        except Exception:  # counted, then raised on unchanged (a cancellation is not a failed reweight)
            self._telemetry.reweighted(experiment.key, reason, "failed", time.perf_counter() - started, now)
            raise
        outcome: ReweightOutcome = "applied" if record is not None else "superseded"
        self._telemetry.reweighted(experiment.key, reason, outcome, time.perf_counter() - started, now)
        return record

    async def _reweight(
        self, experiment: Experiment, reason: WeightsReason, now: float, actor: str
    ) -> WeightsRecord | None:
        counts = await self._storage.arm_counts(experiment)
        version = experiment.weights_version + 1
        seed = derive_seed(experiment.salt, version)
        weights = await asyncio.to_thread(compute_weights, experiment, counts, seed)
        reweighted, record = with_weights(experiment, weights, [c.stats for c in counts], reason, now, seed=seed)
        every = experiment.config.reweight_every_s
        changed = msgspec.structs.replace(
            reweighted, next_reweight_at=now + every if experiment.config.policy.adaptive else None
        )
        event = None
        if reason == "manual":
            event = Event(
                experiment_id=experiment.id,
                created_at=now,
                actor=actor,
                action="reweight",
                before={"weights": list(experiment.weights), "weights_version": experiment.weights_version},
                after={"weights": list(weights), "weights_version": version},
            )
        updated = await self._storage.write(
            apply_weights, WeightsChange(experiment=changed, record=record, event=event)
        )
        if updated is None:
            return None
        self._cache.put(updated)
        return record

    async def reweight_due(self, now: float, limit: int = 100) -> int:
        """Reweight every active experiment whose `reweight_every_s` has elapsed; returns how many."""
        done = 0
        for key in await self._storage.due("reweight", now, limit):
            experiment = await self._storage.experiment(key)
            if experiment is None or experiment.status != "active":
                continue  # changed since the due list was read
            if experiment.next_reweight_at is None or experiment.next_reweight_at > now:
                continue
            if await self.reweight(experiment, "schedule", now) is not None:
                done += 1
        return done
