"""Experiments: create, read, change, and move through the lifecycle; manual weights and reweights.

Every change is a pure function of the current experiment (`ExperimentEdit.change`), applied by one
write job that re-reads the experiment inside the transaction, so checks and writes see the
same state; each change is written to the audit log with its before and after values.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import msgspec
from msgspec import UNSET

from bandit_service.core.commands import CompleteIn, ExperimentIn, ExperimentPatch, WeightsIn
from bandit_service.core.errors import (
    ConflictError,
    DomainError,
    IllegalTransitionError,
    InvalidFieldError,
    NotFoundError,
)
from bandit_service.core.experiment_rules import check_config, check_end, initial_weights, with_missing
from bandit_service.core.lifecycle import next_status
from bandit_service.core.model import (
    Arm,
    Event,
    Experiment,
    ExperimentConfig,
    ExperimentCounts,
    ExperimentStatus,
    NewExperiment,
    WeightsHistory,
    WeightsRecord,
)
from bandit_service.core.trials import MissingValue, default_aggregate, default_trial
from bandit_service.core.webhooks import check_webhook_url
from bandit_service.core.weights import with_weights
from bandit_service.core.weights_story import ExplainedHistory, explain
from bandit_service.ports import Clock, IdFactory, Storage, WriteTx
from bandit_service.services.cache import ExperimentCache
from bandit_service.services.change_rules import check_change, check_new, restart_or_cancel_plans
from bandit_service.services.lookup import load_experiment
from bandit_service.services.rebalance import rebalance
from bandit_service.services.reweighting import Reweighter
from policies import ArmStats, validate_weights

__all__ = ["EditedExperiment", "ExperimentEdit", "ExperimentService", "create_experiments", "edit_experiments"]

DRAFT_ONLY = (
    "arms",
    "control",
    "policy",
    "reward",
    "sticky",
    "reward_window_s",
    "default_reward",
    "namespace",
    "trial",
    "aggregate",
    "missing",
)
# Analysis settings change what the report concludes, never what units get: allowed in any status.
ANALYSIS = (
    "criteria",
    "min_sample_size",
    "minimum_detectable_effect",
    "mde_relative",
    "level",
    "correction",
    "sequential_tuning_n",
)
ANY_TIME = ("name", "description", *ANALYSIS)
# Where it is served from and how it ends: changeable until it is completed.
UNTIL_COMPLETED = (
    "exposure",
    "targeting",
    "reweight_every_s",
    "feature",
    "priority",
    "ends_at",
    "max_duration_s",
    "automation",
    "webhook_url",
)


class EditedExperiment(msgspec.Struct, frozen=True, kw_only=True):
    """The result of a change: the new experiment and what else to write with it."""

    experiment: Experiment
    event: Event
    weights: WeightsRecord | None = None
    arms_changed: bool = False


class ExperimentEdit(msgspec.Struct, frozen=True):
    """A change to the experiment `key`, as a pure function of its current state."""

    key: str
    change: Callable[[Experiment], EditedExperiment]
    actor: str
    """Who asked (the audit log's actor), also of the plan changes the edit causes."""


class Creation(msgspec.Struct, frozen=True):
    """A new experiment and who creates it."""

    experiment: NewExperiment
    actor: str


def create_experiments(tx: WriteTx, items: Sequence[Creation]) -> list[Any]:
    """Write job: store new experiments (AlreadyExistsError for a taken key) and log their creation."""
    out: list[Any] = []
    for new, actor in ((item.experiment, item.actor) for item in items):
        try:
            check_new(tx, new)
            created = tx.insert_experiment(new)
        except DomainError as exc:
            out.append(exc)
            continue
        tx.log_event(
            Event(
                experiment_id=created.id,
                created_at=created.created_at,
                actor=actor,
                action="create",
                before=None,
                after=_created_snapshot(created),
            )
        )
        out.append(created)
    return out


def edit_experiments(tx: WriteTx, items: Sequence[ExperimentEdit]) -> list[Any]:
    """Write job: apply each change to the current experiment, compare-and-set, log it."""
    out: list[Any] = []
    for mutation in items:
        current = tx.experiment(mutation.key)
        if current is None:
            out.append(NotFoundError(f"no experiment with key {mutation.key!r}", field="key"))
            continue
        try:
            result = mutation.change(current)
            check_change(tx, current, result.experiment)
        except DomainError as exc:
            out.append(exc)
            continue
        updated = tx.update_experiment(result.experiment, result.experiment.arms if result.arms_changed else None)
        if updated is None:
            out.append(ConflictError(f"experiment {mutation.key!r} changed concurrently; retry", field="key"))
            continue
        if result.weights is not None:
            tx.append_weights(result.weights)
        tx.log_event(result.event)
        restart_or_cancel_plans(
            tx, current, updated, mutation.actor
        )  # may raise: the savepoint then undoes this item's writes
        out.append(updated)
    return out


def _event(
    experiment: Experiment, action: str, before: dict[str, Any], after: dict[str, Any], now: float, actor: str
) -> Event:
    return Event(experiment_id=experiment.id, created_at=now, actor=actor, action=action, before=before, after=after)


def _arms(arms: Sequence[Any]) -> tuple[Arm, ...]:
    return tuple(Arm(name=a.name, weight=a.weight, payload=a.payload) for a in arms)


def _start(experiment: Experiment, now: float, actor: str) -> EditedExperiment:
    status = next_status("start", experiment.key, experiment.status)
    if experiment.status == "draft":
        weights = initial_weights(experiment.arms, experiment.config.policy)
        adaptive = experiment.config.policy.adaptive
        first, record = with_weights(experiment, weights, [ArmStats() for _ in experiment.arms], "start", now)
        started = msgspec.structs.replace(
            first,
            status=status,
            next_reweight_at=now + experiment.config.reweight_every_s if adaptive else None,
            started_at=now,
        )
        event = _event(
            experiment, "start", {"status": "draft"}, {"status": status, "weights": list(weights)}, now, actor
        )
        return EditedExperiment(experiment=started, event=event, weights=record)
    resumed = msgspec.structs.replace(experiment, status=status, updated_at=now)
    return EditedExperiment(
        experiment=resumed,
        event=_event(experiment, "resume", {"status": experiment.status}, {"status": status}, now, actor),
    )


def _pause(experiment: Experiment, now: float, actor: str) -> EditedExperiment:
    status = next_status("pause", experiment.key, experiment.status)
    paused = msgspec.structs.replace(experiment, status=status, updated_at=now)
    return EditedExperiment(
        experiment=paused,
        event=_event(experiment, "pause", {"status": experiment.status}, {"status": status}, now, actor),
    )


def _complete(experiment: Experiment, winner: str | None, now: float, actor: str) -> EditedExperiment:
    status = next_status("complete", experiment.key, experiment.status)
    if winner is not None and winner not in experiment.arm_names:
        raise InvalidFieldError(
            f"winner {winner!r} is not one of the arms {list(experiment.arm_names)}", field="winner"
        )
    completed = msgspec.structs.replace(
        experiment, status=status, winner=winner, next_reweight_at=None, completed_at=now, updated_at=now
    )
    event = _event(
        experiment, "complete", {"status": experiment.status}, {"status": status, "winner": winner}, now, actor
    )
    return EditedExperiment(experiment=completed, event=event)


def _patch(experiment: Experiment, patch: ExperimentPatch, now: float, actor: str) -> EditedExperiment:
    given = {f: getattr(patch, f) for f in patch.__struct_fields__ if getattr(patch, f) is not UNSET}
    if not given:
        raise InvalidFieldError("the body changes nothing; give at least one field", field="body")
    allowed: tuple[str, ...] = ANY_TIME
    if experiment.status == "draft":
        allowed = tuple(given)
    elif experiment.status != "completed":
        allowed = (*ANY_TIME, *UNTIL_COMPLETED)
    else:
        # A completed experiment serves its winner through its feature: it can be detached or reordered.
        allowed = (*ANY_TIME, "feature", "priority")
    for name in given:
        if name not in allowed:
            when = "while the experiment is a draft" if name in DRAFT_ONLY else "before the experiment is completed"
            raise IllegalTransitionError(
                f"{name} can only change {when}; experiment {experiment.key!r} is {experiment.status!r}",
                current_status=experiment.status,
                field=name,
            )
    arms = _arms(given["arms"]) if "arms" in given else experiment.arms
    config_changes = {k: v for k, v in given.items() if k in ExperimentConfig.__struct_fields__}
    if "control" in given and given["control"] is None:
        config_changes["control"] = arms[0].name
    # Defaults that follow another field follow it when it changes (a draft's reward kind, stickiness).
    old = experiment.config
    if "reward" in given and "aggregate" not in given and old.aggregate == default_aggregate(old.reward):
        config_changes["aggregate"] = default_aggregate(given["reward"])
    if "sticky" in given and "trial" not in given and old.trial == default_trial(old.sticky):
        config_changes["trial"] = default_trial(given["sticky"])
    if isinstance(given.get("ends_at"), datetime):
        config_changes["ends_at"] = given["ends_at"].timestamp()
    if "default_reward" in given and "missing" not in given and experiment.config.missing != "exclude":
        config_changes["missing"] = MissingValue(value=given["default_reward"])
    config = with_missing(msgspec.structs.replace(experiment.config, **config_changes), given_default=False)
    check_config(arms, config)
    check_end(config, experiment.config, experiment.started_at, now)
    next_at = experiment.next_reweight_at
    if "reweight_every_s" in given and experiment.status in ("active", "paused") and next_at is not None:
        next_at = (experiment.reweighted_at or now) + config.reweight_every_s
    changed = msgspec.structs.replace(
        experiment,
        name=given.get("name", experiment.name),
        description=given.get("description", experiment.description),
        arms=arms,
        config=config,
        next_reweight_at=next_at,
        updated_at=now,
    )
    before = {k: _builtin(experiment, k) for k in given}
    after = {k: _builtin(changed, k) for k in given}
    return EditedExperiment(
        experiment=changed, event=_event(experiment, "update", before, after, now, actor), arms_changed="arms" in given
    )


def _created_snapshot(experiment: Experiment) -> dict[str, Any]:
    """What the operator set when creating an experiment, for the audit log."""
    return {
        "key": experiment.key,
        "name": experiment.name,
        "description": experiment.description,
        "status": experiment.status,
        "arms": msgspec.to_builtins(experiment.arms),
        **msgspec.to_builtins(experiment.config),
    }


def _builtin(experiment: Experiment, field: str) -> Any:
    if field in ("name", "description"):
        return getattr(experiment, field)
    if field == "arms":
        return msgspec.to_builtins(experiment.arms)
    return msgspec.to_builtins(getattr(experiment.config, field))


def _set_weights(
    experiment: Experiment, data: WeightsIn, stats: tuple[ArmStats, ...], now: float, actor: str
) -> EditedExperiment:
    policy = experiment.config.policy
    if policy.adaptive:
        raise ConflictError(
            f"manual weights are for fixed-split experiments; {experiment.key!r} uses policy "
            f"{type(policy).__struct_config__.tag!r}",
            field="policy",
        )
    if experiment.status not in ("active", "paused"):
        raise IllegalTransitionError(
            f"manual weights need an active or paused experiment; {experiment.key!r} is {experiment.status!r}"
            + (" (set arms[].weight with PATCH while draft)" if experiment.status == "draft" else ""),
            current_status=experiment.status,
        )
    names = experiment.arm_names
    for name in data.weights:
        if name not in names:
            raise InvalidFieldError(f"{name!r} is not one of the arms {list(names)}", field=f"weights.{name}")
    for name in names:
        if name not in data.weights:
            raise InvalidFieldError(
                f"missing the weight of arm {name!r}; give one weight per arm", field=f"weights.{name}"
            )
    try:
        weights = tuple(float(w) for w in validate_weights([data.weights[n] for n in names], name="weights"))
    except ValueError as exc:
        raise InvalidFieldError(str(exc), field="weights") from exc
    if data.rebalance and not experiment.config.sticky:
        raise InvalidFieldError(
            f"experiment {experiment.key!r} is not sticky: every decision already follows the current weights, "
            "so there are no stored units to rebalance",
            field="rebalance",
        )
    changed, record = with_weights(experiment, weights, stats, "manual", now)
    version = record.version
    after: dict[str, Any] = {"weights": list(weights), "weights_version": version}
    if data.rebalance:
        # Nothing moved yet: the pass that follows the commit raises it page by page (services.rebalance).
        record = msgspec.structs.replace(record, moved=0.0)
        after["rebalance"] = True
    event = _event(
        experiment,
        "set_weights",
        {"weights": list(experiment.weights), "weights_version": experiment.weights_version},
        after,
        now,
        actor,
    )
    return EditedExperiment(experiment=changed, event=event, weights=record)


class ExperimentService:
    """Operator actions on experiments."""

    def __init__(
        self,
        storage: Storage,
        cache: ExperimentCache,
        reweighter: Reweighter,
        clock: Clock,
        ids: IdFactory,
        *,
        webhooks_signed: bool = False,
    ) -> None:
        self._storage = storage
        self._cache = cache
        self._reweighter = reweighter
        self._clock = clock
        self._ids = ids
        self._webhooks_signed = webhooks_signed  # a webhook secret is set (`core.webhooks.check_webhook_url`)

    async def create(self, data: ExperimentIn, *, actor: str) -> Experiment:
        """Create a draft experiment."""
        check_webhook_url(data.webhook_url, signed=self._webhooks_signed)
        now = self._clock.time()
        arms = _arms(data.arms)
        config = ExperimentConfig(
            control=data.control if data.control is not None else arms[0].name,
            policy=data.policy,
            reward=data.reward,
            reweight_every_s=data.reweight_every_s,
            exposure=data.exposure,
            targeting=data.targeting,
            sticky=data.sticky,
            reward_window_s=data.reward_window_s,
            default_reward=data.default_reward,
            namespace=data.namespace,
            criteria=data.criteria,
            min_sample_size=data.min_sample_size,
            minimum_detectable_effect=data.minimum_detectable_effect,
            mde_relative=data.mde_relative,
            level=data.level,
            correction=data.correction,
            sequential_tuning_n=data.sequential_tuning_n,
            trial=data.trial if data.trial is not None else default_trial(data.sticky),
            aggregate=data.aggregate if data.aggregate is not None else default_aggregate(data.reward),
            missing=data.missing if data.missing is not None else MissingValue(value=data.default_reward),
            feature=data.feature,
            priority=data.priority,
            ends_at=data.ends_at.timestamp() if data.ends_at is not None else None,
            max_duration_s=data.max_duration_s,
            automation=data.automation,
            webhook_url=data.webhook_url,
        )
        config = with_missing(config, given_default=data.default_reward != 0.0)
        check_config(arms, config)
        check_end(config, None, None, now)
        new = NewExperiment(
            key=data.key,
            name=data.name,
            description=data.description,
            status="draft",
            arms=arms,
            config=config,
            salt=self._ids(),
            created_at=now,
            updated_at=now,
        )
        created = await self._storage.write(create_experiments, Creation(new, actor))
        self._cache.put(created)
        return created

    async def get(self, key: str) -> ExperimentCounts:
        """An experiment with its per-arm statistics, read from the database (not the cache)."""
        experiment = await load_experiment(self._storage, key)
        counts = await self._storage.arm_counts(experiment)
        return ExperimentCounts(experiment=experiment, counts=tuple(counts))

    async def list(self, status: ExperimentStatus | None, limit: int, offset: int) -> list[Experiment]:
        """Experiments, newest first."""
        return await self._storage.experiments(status, limit, offset)

    async def update(self, key: str, patch: ExperimentPatch, *, actor: str) -> Experiment:
        """Change settings (arms, control, policy and reward settings only while draft)."""
        if isinstance(patch.webhook_url, str):
            check_webhook_url(patch.webhook_url, signed=self._webhooks_signed)
        now = self._clock.time()
        return await self._mutate(ExperimentEdit(key, lambda e: _patch(e, patch, now, actor), actor))

    async def start(self, key: str, *, actor: str) -> Experiment:
        """Draft or paused -> active (a first start sets weights version 1)."""
        now = self._clock.time()
        return await self._mutate(ExperimentEdit(key, lambda e: _start(e, now, actor), actor))

    async def pause(self, key: str, *, actor: str) -> Experiment:
        """Active -> paused: every unit gets the control arm until the next start."""
        now = self._clock.time()
        return await self._mutate(ExperimentEdit(key, lambda e: _pause(e, now, actor), actor))

    async def complete(self, key: str, data: CompleteIn | None, *, actor: str) -> Experiment:
        """Active or paused -> completed: every unit gets the winner (or the control)."""
        now = self._clock.time()
        winner = data.winner if data is not None else None
        return await self._mutate(ExperimentEdit(key, lambda e: _complete(e, winner, now, actor), actor))

    async def set_weights(self, key: str, data: WeightsIn, *, actor: str) -> ExplainedHistory:
        """Manual weights of a fixed split (an operator ramping 90/10 -> 50/50); `rebalance` moves stored units too."""
        experiment = await load_experiment(self._storage, key)
        counts = await self._storage.arm_counts(experiment)
        stats = tuple(c.stats for c in counts)
        now = self._clock.time()
        updated = await self._mutate(ExperimentEdit(key, lambda e: _set_weights(e, data, stats, now, actor), actor))
        if data.rebalance:
            await rebalance(self._storage, self._clock, updated, actor)
        last_two = await self._storage.weights_history(updated.id, 2)
        return await _explained(updated, last_two[-1:], last_two[0] if len(last_two) == 2 else None)

    async def reweight(self, key: str, *, actor: str) -> ExplainedHistory:
        """Recompute the weights now, from the counters, through the experiment's policy."""
        experiment = await load_experiment(self._storage, key)
        if experiment.status != "active":
            raise IllegalTransitionError(
                f"cannot reweight experiment {key!r}: its status is {experiment.status!r} (allowed from active)",
                current_status=experiment.status,
            )
        completion = (await self._storage.rollouts(experiment.id)).get("completion")
        if completion is not None and completion.state.status == "running":
            raise ConflictError(
                f"weights of {key!r} are shifting to the winner {completion.winner!r}; "
                "cancel the completion (DELETE .../completion) first",
                field="weights",
            )
        latest = await self._storage.weights_history(experiment.id, 1)  # what the new weights are explained against
        record = await self._reweighter.reweight(experiment, "manual", self._clock.time(), actor=actor)
        if record is None:
            raise ConflictError(f"experiment {key!r} changed while reweighting; retry", field="key")
        return await _explained(experiment, [record], latest[-1] if latest else None)

    async def history(self, key: str, limit: int) -> ExplainedHistory:
        """The weights history, oldest first (the most recent `limit` versions), each row with why it moved."""
        experiment = await load_experiment(self._storage, key)
        # One row more than the page: the row before the first explains the first one's move.
        records = await self._storage.weights_history(experiment.id, limit + 1)
        previous, page = (records[0], records[1:]) if len(records) > limit else (None, records)
        return await _explained(experiment, page, previous)

    async def _mutate(self, mutation: ExperimentEdit) -> Experiment:
        updated: Experiment = await self._storage.write(edit_experiments, mutation)
        self._cache.put(updated)
        return updated


async def _explained(
    experiment: Experiment, records: Sequence[WeightsRecord], previous: WeightsRecord | None
) -> ExplainedHistory:
    """Weights-history rows with why each moved (posterior summaries cost a few ms a row: off the event loop)."""
    explanations = await asyncio.to_thread(
        explain, records, experiment.arm_names, experiment.config.reward, previous=previous
    )
    return ExplainedHistory(
        history=WeightsHistory(experiment=experiment, records=tuple(records)), explanations=explanations
    )
