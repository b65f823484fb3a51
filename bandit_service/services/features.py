"""Features: create, read, replace and delete them, and decide by feature from an in-process cache.

A decision by feature (`decide_by_feature`) evaluates the feature's experiments in priority order
(see `core.features`) and answers from the first that serves the unit, or with the feature's
default payload (200, `in_experiment: false`, nothing logged). It reads nothing from the database
on the way: the feature and the keys of its experiments come from `FeatureCache`, the experiments
themselves from the experiment cache, so the only I/O is the decision's own write.

`FeatureCache` shares the experiment cache's change polls (`ExperimentCache.subscribe`): the
change feed reports features created, replaced or deleted (a deletion leaves a tombstone with a
change number) and, for every changed experiment, the feature it serves now. An entry is dropped
when its feature changed or an experiment joined or left it, so no answer is staler than the
experiment cache's bound, on any replica; a change made by this process drops its entry at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from bandit_service.core.commands import DecisionIn, FeatureIn
from bandit_service.core.errors import ConflictError, InvalidFieldError, NotFoundError
from bandit_service.core.features import check_feature, in_priority_order, role_in_feature, serves_winner
from bandit_service.core.model import Experiment, ExperimentChanges, Feature, Served
from bandit_service.ports import Clock, Storage, WriteTx
from bandit_service.services.cache import ExperimentCache

__all__ = [
    "FeatureCache",
    "FeatureDeletion",
    "FeatureService",
    "FeatureView",
    "SavedFeature",
    "decide_by_feature",
    "delete_features",
    "save_features",
]

log = logging.getLogger(__name__)

# Statuses that keep a feature from being deleted: their units would lose what they are served.
SERVING = ("active", "paused")


class FeatureView(msgspec.Struct, frozen=True, kw_only=True):
    """A feature with the experiments that serve it, in evaluation order (priority, then key)."""

    feature: Feature
    experiments: tuple[Experiment, ...]


class SavedFeature(msgspec.Struct, frozen=True, kw_only=True):
    """A feature as stored by PUT, and whether the PUT created it."""

    feature: Feature
    created: bool


class FeatureDeletion(msgspec.Struct, frozen=True, kw_only=True):
    """A request to delete a feature, and when."""

    key: str
    now: float


def save_features(tx: WriteTx, items: Sequence[Feature]) -> list[Any]:
    """Write job: create or replace features."""
    out: list[Any] = []
    for feature in items:
        stored, created = tx.save_feature(feature)
        out.append(SavedFeature(feature=stored, created=created))
    return out


def delete_features(tx: WriteTx, items: Sequence[FeatureDeletion]) -> list[Any]:
    """Write job: delete features no active or paused experiment serves.

    The row is locked (deleted) before its experiments are read, so an experiment cannot start
    serving it in between; if one serves it, raising undoes the deletion.
    """
    out: list[Any] = []
    for item in items:
        deleted = tx.delete_feature(item.key, item.now)
        if deleted is None:
            out.append(NotFoundError(f"no feature with key {item.key!r}", field="key"))
            continue
        serving = [e for e in tx.feature_experiments(item.key) if e.status in SERVING]
        if serving:
            names = ", ".join(f"{e.key!r} ({e.status})" for e in serving)
            raise ConflictError(
                f"feature {item.key!r} is served by {names}; complete them, or PATCH their feature, before deleting it",
                field="key",
            )
        out.append(deleted)
    return out


class _Route:
    """A cached feature (None: no such feature) and the keys of the experiments that served it when read."""

    __slots__ = ("experiments", "feature")

    def __init__(self, feature: Feature | None, experiments: tuple[str, ...]) -> None:
        self.feature = feature
        self.experiments = experiments


class FeatureCache:
    """Features by key with their experiments, never staler than the experiment cache's bound."""

    def __init__(self, storage: Storage, experiments: ExperimentCache, max_entries: int = 10_000) -> None:
        self._storage = storage
        self._experiments = experiments
        self._max_entries = max_entries
        self._routes: dict[str, _Route] = {}
        self._member_of: dict[str, str] = {}  # experiment key -> the feature whose cached route lists it
        self._loading: dict[str, asyncio.Task[_Route]] = {}
        # Every notice of changes gets the next version; a feature dropped at a version later than
        # the one a read started at may have changed under the read, which then reads again.
        self._version = 0
        self._dropped: dict[str, int] = {}
        experiments.subscribe(self._changed)

    async def lookup(self, key: str) -> tuple[Feature, list[Experiment]] | None:
        """The feature and its experiments in evaluation order; None if there is no such feature."""
        await self._experiments.fresh()
        route = self._routes.get(key)
        if route is None:
            route = await asyncio.shield(self._refresh(key))
        if route.feature is None:
            return None
        found = []
        for name in route.experiments:
            experiment = await self._experiments.get(name)
            # The experiment cache may know of a newer change than this entry: trust the experiment.
            if experiment is not None and experiment.config.feature == key:
                found.append(experiment)
        return route.feature, in_priority_order(found)

    def forget(self, key: str) -> None:
        """Drop a feature this process just changed: the next lookup reads it again."""
        self._version += 1
        self._drop(key)

    async def close(self) -> None:
        """Cancel reads still in flight."""
        tasks = list(self._loading.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _changed(self, changes: ExperimentChanges, first: bool) -> None:
        self._version += 1
        if first:
            for key in list(self._routes):
                self._drop(key)
        for key in changes.features:
            self._drop(key)
        for name in changes.revisions:
            now_serves = changes.experiment_features.get(name)
            served = self._member_of.get(name)
            if now_serves != served:  # it joined, left or moved: both routes' lists are out of date
                for feature in (served, now_serves):
                    if feature is not None:
                        self._drop(feature)

    def _drop(self, key: str) -> None:
        self._dropped[key] = self._version
        self._remove(key)

    def _remove(self, key: str) -> None:
        route = self._routes.pop(key, None)
        if route is not None:
            for name in route.experiments:
                if self._member_of.get(name) == key:
                    del self._member_of[name]

    def _refresh(self, key: str) -> asyncio.Task[_Route]:
        task = self._loading.get(key)
        if task is None:
            task = asyncio.create_task(self._load(key))
            self._loading[key] = task
            task.add_done_callback(lambda t: self._done(key, t))
        return task

    async def _load(self, key: str) -> _Route:
        for _ in range(3):
            started = self._version
            feature = await self._storage.feature(key)
            served = [] if feature is None else await self._storage.feature_experiments(key)
            route = _Route(feature, tuple(e.key for e in served))
            if self._dropped.get(key, 0) <= started:
                self._store(key, route)
                break
            # A change to this feature was reported while reading: read again (or answer uncached).
        return route

    def _store(self, key: str, route: _Route) -> None:
        if key not in self._routes and len(self._routes) >= self._max_entries:
            # Drop the oldest tenth (dicts keep insertion order); a hot key is simply read again.
            for old in list(self._routes)[: max(1, self._max_entries // 10)]:
                self._remove(old)
        self._remove(key)
        self._routes[key] = route
        for name in route.experiments:
            self._member_of[name] = key

    def _done(self, key: str, task: asyncio.Task[_Route]) -> None:
        self._loading.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            log.warning("reading feature %r failed: %s", key, task.exception())


async def decide_by_feature(
    data: DecisionIn,
    features: FeatureCache,
    decide_experiment: Callable[[DecisionIn], Awaitable[Served]],
    outside_id: Callable[[], str],
) -> Served:
    """The first of the feature's experiments that serves the unit decides; otherwise the feature's default.

    `decide_experiment` is the decision by experiment key (it logs the decision when the unit is
    admitted); `outside_id` makes the id of an answer that is not logged.
    """
    if data.feature is None:
        raise InvalidFieldError("give the experiment or the feature to decide for", field="experiment")
    if data.experiment is not None:
        raise InvalidFieldError("give the experiment or the feature to decide for, not both", field="feature")
    found = await features.lookup(data.feature)
    if found is None:
        raise NotFoundError(f"no feature with key {data.feature!r}", field="feature")
    feature, experiments = found
    for experiment in experiments:
        role = role_in_feature(experiment.status, experiment.winner)
        if role == "skip" or (role == "winner" and not serves_winner(experiment, data.attributes)):
            continue
        served = await decide_experiment(
            DecisionIn(experiment=experiment.key, unit=data.unit, attributes=data.attributes)
        )
        # Outside an active experiment the answer is its control: not this feature's to give, so the
        # next experiment decides; a completed one (perhaps completed since it was cached) serves its winner.
        if served.in_experiment or (
            served.experiment is not None and serves_winner(served.experiment, data.attributes)
        ):
            return msgspec.structs.replace(served, feature=feature)
    return Served(
        decision_id=outside_id(), experiment=None, arm=None, propensity=1.0, in_experiment=False, feature=feature
    )


class FeatureService:
    """PUT, GET and DELETE /v1/features."""

    def __init__(self, storage: Storage, cache: FeatureCache, clock: Clock) -> None:
        self._storage = storage
        self._cache = cache
        self._clock = clock

    async def put(self, key: str, data: FeatureIn) -> SavedFeature:
        """Create or replace a feature (a replaced one keeps its creation time)."""
        check_feature(key, data.default_payload)
        now = self._clock.time()
        feature = Feature(
            key=key, description=data.description, default_payload=data.default_payload, created_at=now, updated_at=now
        )
        saved: SavedFeature = await self._storage.write(save_features, feature)
        self._cache.forget(key)
        return saved

    async def list(self) -> list[Feature]:
        """Every feature, by key."""
        return await self._storage.features()

    async def get(self, key: str) -> FeatureView:
        """A feature with its experiments (every status) in evaluation order."""
        feature = await self._storage.feature(key)
        if feature is None:
            raise NotFoundError(f"no feature with key {key!r}", field="key")
        experiments = await self._storage.feature_experiments(key)
        return FeatureView(feature=feature, experiments=tuple(in_priority_order(experiments)))

    async def close(self) -> None:
        """Cancel the cache's reads still in flight."""
        await self._cache.close()

    async def delete(self, key: str) -> Feature:
        """Delete a feature that no active or paused experiment serves (ConflictError naming them)."""
        deleted: Feature = await self._storage.write(delete_features, FeatureDeletion(key=key, now=self._clock.time()))
        self._cache.forget(key)
        return deleted
