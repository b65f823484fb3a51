"""The definitions SDKs evaluate locally (GET /v1/definitions): every experiment but drafts, and every feature.

The document is kept in memory and follows the experiment cache's change polls
(`ExperimentCache.subscribe`), as the feature cache does: a poll that reports changed experiments
or features makes the next request re-read only those, so while nothing changes an SDK's poll
costs no database read beyond the cache's own (one indexed query per `cache_ttl_s`), and the
answer is never staler than that bound. A change reaches an SDK within `cache_ttl_s` plus its
poll interval (`poll_interval_s`, which this service suggests and ties to the same setting).

`version` (the ETag) is a hash of the content, not a change number: every replica that has seen
the same state answers the same version, so an SDK polling through a load balancer gets 304s
instead of one download per replica, and a change that leaves the document as it was (an
experiment's description) costs the SDKs nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from typing import Literal, assert_never

import msgspec

from bandit_service.core.definitions import (
    ArmDefinition,
    Definitions,
    ExperimentDefinition,
    FeatureDefinition,
    NamespaceDefinition,
)
from bandit_service.core.features import in_priority_order
from bandit_service.core.model import Experiment, ExperimentChanges, ExperimentStatus, Feature
from bandit_service.ports import Storage
from bandit_service.services.cache import ExperimentCache

__all__ = [
    "MIN_POLL_INTERVAL_S",
    "DefinitionsService",
    "Published",
    "build_definitions",
    "experiment_definition",
    "poll_interval",
]

MIN_POLL_INTERVAL_S = 1.0
"""The shortest poll interval suggested to SDKs (a cache bound of 0 does not mean "poll non-stop")."""

PAGE = 500  # experiments read per query on a full load


def poll_interval(cache_ttl_s: float) -> float:
    """How often SDKs should poll: the cache's staleness bound (a poll more often would see nothing newer)."""
    return max(cache_ttl_s, MIN_POLL_INTERVAL_S)


def _sent_status(status: ExperimentStatus) -> Literal["active", "paused", "completed"]:
    match status:
        case "active" | "paused" | "completed":
            return status
        case "draft":
            raise ValueError("a draft is never sent to SDKs")
        case _:
            assert_never(status)


def experiment_definition(experiment: Experiment) -> ExperimentDefinition:
    """What an SDK needs of an experiment to place units as the service does (`core.placement`)."""
    config = experiment.config
    namespace = config.namespace
    return ExperimentDefinition(
        key=experiment.key,
        status=_sent_status(experiment.status),
        salt=experiment.salt,
        arms=[ArmDefinition(name=arm.name, payload=arm.payload) for arm in experiment.arms],
        control=config.control,
        winner=experiment.winner,
        weights=list(experiment.weights),
        weights_version=experiment.weights_version,
        exposure=config.exposure,
        targeting=dict(config.targeting),
        namespace=None
        if namespace is None
        else NamespaceDefinition(name=namespace.name, start=namespace.start, end=namespace.end),
        sticky=config.sticky,
        trial=config.trial,
        feature=config.feature,
        priority=config.priority,
    )


def build_definitions(
    experiments: Iterable[Experiment], features: Iterable[Feature], poll_interval_s: float
) -> Definitions:
    """The document: experiments (drafts left out) and features in evaluation order, versioned by a content hash."""
    ordered = in_priority_order(e for e in experiments if e.status != "draft")
    sent = [experiment_definition(e) for e in ordered]
    feature_list = [
        FeatureDefinition(
            key=f.key,
            default_payload=f.default_payload,
            experiments=[e.key for e in ordered if e.config.feature == f.key],
        )
        for f in sorted(features, key=lambda f: f.key)
    ]
    # Dict keys sorted: the same state hashes alike on every replica, whatever order JSON came back in.
    content = msgspec.json.encode([sent, feature_list, poll_interval_s], order="deterministic")
    version = hashlib.blake2b(content, digest_size=16).hexdigest()
    return Definitions(version=version, experiments=sent, features=feature_list, poll_interval_s=poll_interval_s)


class Published(msgspec.Struct, frozen=True, kw_only=True):
    """The current document and its JSON, encoded once per rebuild (not once per SDK that downloads it)."""

    definitions: Definitions
    body: bytes


def _publish(experiments: list[Experiment], features: list[Feature], poll_interval_s: float) -> Published:
    built = build_definitions(experiments, features, poll_interval_s)
    return Published(definitions=built, body=msgspec.json.encode(built))


class DefinitionsService:
    """GET /v1/definitions: the current document, rebuilt only after a poll reported a change."""

    def __init__(self, storage: Storage, cache: ExperimentCache, poll_interval_s: float) -> None:
        self._storage = storage
        self._cache = cache
        self._poll_interval_s = poll_interval_s
        self._experiments: dict[str, Experiment] = {}  # by key; drafts are not kept
        self._features: dict[str, Feature] = {}
        self._reload_all = True
        self._stale_experiments: set[str] = set()
        self._stale_features: set[str] = set()
        self._notices = 0  # change notices received; the built document reflects `_built_at` of them
        self._built: Published | None = None
        self._built_at = -1
        self._lock = asyncio.Lock()
        cache.subscribe(self._changed)

    def _changed(self, changes: ExperimentChanges, first: bool) -> None:
        # Every poll reports, most of them nothing: only a change (or a first poll) rebuilds.
        known = self._experiments
        revised = {
            key for key, revision in changes.revisions.items() if key not in known or known[key].revision < revision
        }
        if not (first or revised or changes.features):
            return
        self._notices += 1
        if first:
            self._reload_all = True
        self._stale_experiments |= revised
        self._stale_features.update(changes.features)

    def _current(self) -> Published | None:
        return self._built if self._built_at == self._notices else None

    async def current(self) -> Definitions:
        """The document as of at most the cache's bound ago (may wait for one poll, and re-reads what changed)."""
        return (await self.published()).definitions

    async def published(self) -> Published:
        """The document with its JSON, as `current` gives it."""
        await self._cache.fresh()
        built = self._current()
        if built is not None:
            return built
        async with self._lock:  # one rebuild at a time; requests that waited for it take its result
            built = self._current()
            if built is not None:
                return built
            notices = self._notices
            done = False
            try:
                await self._refresh()
                done = True
            finally:
                if not done:  # what was marked stale may not have been read: read everything next time
                    self._reload_all = True
            # Thousands of experiments take tens of milliseconds to encode: off the event loop.
            built = await asyncio.to_thread(
                _publish, list(self._experiments.values()), list(self._features.values()), self._poll_interval_s
            )
            # A notice that came during the reads is applied by the next request.
            self._built, self._built_at = built, notices
            return built

    async def _refresh(self) -> None:
        experiments, self._stale_experiments = self._stale_experiments, set()
        features, self._stale_features = self._stale_features, set()
        if self._reload_all:
            self._reload_all = False
            await self._load_all()
            return
        for key in sorted(experiments):
            experiment = await self._storage.experiment(key)
            if experiment is None or experiment.status == "draft":
                self._experiments.pop(key, None)
            else:
                self._experiments[key] = experiment
        for key in sorted(features):
            feature = await self._storage.feature(key)
            if feature is None:
                self._features.pop(key, None)
            else:
                self._features[key] = feature

    async def _load_all(self) -> None:
        found: dict[str, Experiment] = {}
        offset = 0
        while True:
            # Newest first: an experiment created meanwhile shifts the pages, so one may be read twice
            # (harmless), none skipped; any change after the poll is reported by the next one.
            page = await self._storage.experiments(None, PAGE, offset)
            found.update((e.key, e) for e in page if e.status != "draft")
            if len(page) < PAGE:
                break
            offset += PAGE
        self._experiments = found
        self._features = {f.key: f for f in await self._storage.features()}
