"""Core values as wire responses: the one place that knows both shapes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bandit_service.core.commands import RampStepIn, ShiftStepIn
from bandit_service.core.experiment_rules import bound_policy
from bandit_service.core.model import (
    ArmCounts,
    EventPage,
    Experiment,
    ExperimentPlan,
    Feature,
    LoggedEvent,
    Served,
    StoredReward,
    WeightsRecord,
)
from bandit_service.core.plan_changes import plan_detail
from bandit_service.core.plans import PlanState, PlanStep
from bandit_service.core.roles import ApiKey
from bandit_service.core.timestamps import to_datetime
from bandit_service.core.trials import MissingValue
from bandit_service.core.webhooks import DeliveryEntry, DeliveryPage
from bandit_service.core.weights_story import ExplainedHistory, WeightsExplanation
from bandit_service.http.schemas import (
    ArmOut,
    ArmStatsOut,
    ArmSummaryOut,
    CompletionOut,
    DecisionOut,
    EventList,
    EventOut,
    ExperimentOut,
    FeatureExperimentOut,
    FeatureOut,
    KeyOut,
    MetricStatsOut,
    NewKeyOut,
    RampOut,
    RewardOut,
    StatsOut,
    WebhookDeliveryList,
    WebhookDeliveryOut,
    WeightsHistoryOut,
    WeightsRecordOut,
)
from bandit_service.services.keys import NewKey
from policies import ArmStats

__all__ = [
    "completion_out",
    "decision_out",
    "delivery_list",
    "event_list",
    "experiment_out",
    "feature_out",
    "key_out",
    "latest_weights_out",
    "new_key_out",
    "ramp_out",
    "reward_out",
    "weights_history_out",
    "weights_out",
]


def _mean(stats: ArmStats) -> float | None:
    return stats.total / stats.n if stats.n > 0 else None


def _maybe_time(timestamp: float | None) -> datetime | None:
    return to_datetime(timestamp) if timestamp is not None else None


def experiment_out(experiment: Experiment, counts: Sequence[ArmCounts] | None = None) -> ExperimentOut:
    """The experiment as the API shows it; with `counts`, per-arm statistics too."""
    config = experiment.config
    names = experiment.arm_names
    stats = None
    if counts is not None:
        stats = {
            name: ArmStatsOut(
                units=c.units,
                trials=c.trials,
                exposures=c.exposures,
                excluded=c.excluded,
                pending=c.pending,
                rewarded=c.rewarded,
                expired=c.expired,
                n=int(c.stats.n),
                mean=_mean(c.stats),
                metrics={m: MetricStatsOut(n=int(s.n), mean=_mean(s)) for m, s in sorted(c.metrics.items())},
                local=c.local,
                contradicted=c.contradicted,
            )
            for name, c in zip(names, counts, strict=True)
        }
    return ExperimentOut(
        key=experiment.key,
        name=experiment.name,
        description=experiment.description,
        status=experiment.status,
        arms=[ArmOut(name=a.name, weight=a.weight, payload=a.payload) for a in experiment.arms],
        control=config.control,
        policy=bound_policy(config, experiment.weights),
        reward=config.reward,
        reweight_every_s=config.reweight_every_s,
        exposure=config.exposure,
        targeting=config.targeting,
        sticky=config.sticky,
        reward_window_s=config.reward_window_s,
        default_reward=config.default_reward,
        criteria=config.criteria,
        min_sample_size=config.min_sample_size,
        minimum_detectable_effect=config.minimum_detectable_effect,
        mde_relative=config.mde_relative,
        level=config.level,
        correction=config.correction,
        sequential_tuning_n=config.sequential_tuning_n,
        winner=experiment.winner,
        weights=dict(zip(names, experiment.weights, strict=True)) if experiment.weights else {},
        weights_version=experiment.weights_version,
        next_reweight_at=_maybe_time(experiment.next_reweight_at),
        created_at=to_datetime(experiment.created_at),
        updated_at=to_datetime(experiment.updated_at),
        started_at=_maybe_time(experiment.started_at),
        completed_at=_maybe_time(experiment.completed_at),
        stats=stats,
        namespace=config.namespace,
        trial=config.trial,
        aggregate=config.aggregate,
        missing=config.missing if config.missing is not None else MissingValue(value=config.default_reward),
        priority=config.priority,
        feature=config.feature,
        ends_at=_maybe_time(config.ends_at),
        max_duration_s=config.max_duration_s,
        automation=config.automation,
        webhook_url=config.webhook_url,
    )


def latest_weights_out(explained: ExplainedHistory) -> WeightsRecordOut:
    """The newest row of a weights history as the API shows it."""
    names = explained.history.experiment.arm_names
    return weights_out(names, explained.history.records[-1], explained.explanations[-1])


def weights_history_out(explained: ExplainedHistory) -> WeightsHistoryOut:
    """A weights history as the API shows it, oldest first."""
    history = explained.history
    names = history.experiment.arm_names
    rows = [weights_out(names, r, e) for r, e in zip(history.records, explained.explanations, strict=True)]
    return WeightsHistoryOut(experiment=history.experiment.key, history=rows)


def weights_out(names: Sequence[str], record: WeightsRecord, explained: WeightsExplanation) -> WeightsRecordOut:
    """One weights-history row, with why it moved, as the API shows it."""
    return WeightsRecordOut(
        version=record.version,
        created_at=to_datetime(record.created_at),
        weights=dict(zip(names, record.weights, strict=True)),
        stats={
            name: StatsOut(n=s.n, total=s.total, total_sq=s.total_sq, mean=_mean(s))
            for name, s in zip(names, record.stats, strict=True)
        },
        reason=record.reason,
        seed=record.seed,
        churn=record.churn,
        moved=record.moved,
        arms={
            a.arm: ArmSummaryOut(n=a.n, mean=a.mean, interval=a.interval, prob_best=a.prob_best) for a in explained.arms
        },
        because=explained.because,
    )


def reward_out(reward: StoredReward) -> RewardOut:
    """A recorded reward as the API shows it (the same for the first answer and every retry)."""
    return RewardOut(
        decision_id=reward.decision_id,
        experiment=reward.experiment_key,
        arm=reward.arm_name,
        reward=reward.value,
        metrics=dict(sorted(reward.metrics.items())),
        recorded_at=to_datetime(reward.created_at),
        trial_value=reward.counted_value,
    )


def _next_step_at(steps: Sequence[PlanStep], state: PlanState) -> datetime | None:
    hold = steps[state.step].hold_s
    if state.status != "running" or hold is None:
        return None
    return state.step_started_at + timedelta(seconds=hold)


def ramp_out(found: ExperimentPlan) -> RampOut:
    """A ramp as the API shows it."""
    experiment, plan = found.experiment, found.plan
    return RampOut(
        experiment=experiment.key,
        steps=[RampStepIn(exposure=s.value, hold_s=s.hold_s) for s in plan.steps],
        step=plan.state.step,
        step_started_at=plan.state.step_started_at,
        next_step_at=_next_step_at(plan.steps, plan.state),
        status=plan.state.status,
        reason=plan.state.reason,
        exposure=experiment.config.exposure,
        detail=plan_detail(experiment, plan),
        created_at=to_datetime(plan.created_at),
        updated_at=to_datetime(plan.updated_at),
    )


def completion_out(found: ExperimentPlan) -> CompletionOut:
    """A gradual completion as the API shows it."""
    experiment, plan = found.experiment, found.plan
    return CompletionOut(
        experiment=experiment.key,
        winner=plan.winner or "",
        plan=[ShiftStepIn(share=s.value, hold_s=s.hold_s) for s in plan.steps],
        step=plan.state.step,
        step_started_at=plan.state.step_started_at,
        next_step_at=_next_step_at(plan.steps, plan.state),
        status=plan.state.status,
        reason=plan.state.reason,
        weights=dict(zip(experiment.arm_names, experiment.weights, strict=True)),
        detail=plan_detail(experiment, plan),
        created_at=to_datetime(plan.created_at),
        updated_at=to_datetime(plan.updated_at),
    )


def decision_out(served: Served) -> DecisionOut:
    """The arm to use, with what is needed to report its reward and analyse it later."""
    experiment, feature = served.experiment, served.feature
    feature_key = None if feature is None else feature.key
    if experiment is None or served.arm is None:  # asked by feature, and no experiment of it serves the unit
        return DecisionOut(
            decision_id=served.decision_id,
            experiment=None,
            arm=None,
            payload=None if feature is None else feature.default_payload,
            propensity=served.propensity,
            weights_version=0,
            in_experiment=False,
            feature=feature_key,
        )
    arm = experiment.arms[served.arm]
    return DecisionOut(
        decision_id=served.decision_id,
        experiment=experiment.key,
        arm=arm.name,
        payload=arm.payload,
        propensity=served.propensity,
        weights_version=experiment.weights_version,
        in_experiment=served.in_experiment,
        feature=feature_key,
    )


def feature_out(feature: Feature, experiments: Sequence[Experiment] | None = None) -> FeatureOut:
    """A feature as the API shows it; with its experiments when read by key."""
    shown = None
    if experiments is not None:
        shown = [
            FeatureExperimentOut(
                key=e.key,
                name=e.name,
                status=e.status,
                priority=e.config.priority,
                exposure=e.config.exposure,
                targeting=e.config.targeting,
                namespace=e.config.namespace,
                winner=e.winner,
            )
            for e in experiments
        ]
    return FeatureOut(
        key=feature.key,
        description=feature.description,
        default_payload=feature.default_payload,
        created_at=to_datetime(feature.created_at),
        updated_at=to_datetime(feature.updated_at),
        experiments=shown,
    )


def _event_out(entry: LoggedEvent) -> EventOut:
    return EventOut(
        id=entry.id,
        time=to_datetime(entry.created_at),
        actor=entry.actor,
        action=entry.action,
        before=entry.before,
        after=entry.after,
    )


def event_list(page: EventPage) -> EventList:
    """A page of the audit log as the API shows it."""
    events = [_event_out(e) for e in page.events]
    return EventList(experiment=page.experiment, events=events, next_after=page.next_after)


def key_out(key: ApiKey) -> KeyOut:
    """A stored key as the API lists it (never its digest)."""
    last = None if key.last_used_at is None else to_datetime(key.last_used_at)
    return KeyOut(name=key.name, role=key.role, created_at=to_datetime(key.created_at), last_used_at=last)


def new_key_out(made: NewKey) -> NewKeyOut:
    """A key just made, with the key itself."""
    key = made.key
    return NewKeyOut(name=key.name, role=key.role, key=made.token, created_at=to_datetime(key.created_at))


def _delivery_out(entry: DeliveryEntry) -> WebhookDeliveryOut:
    d = entry.delivery
    return WebhookDeliveryOut(
        id=d.id,
        event_id=d.event_id,
        experiment=entry.experiment,
        type=entry.event.action,
        url=d.url,
        status=d.status,
        attempts=d.attempts,
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        created_at=to_datetime(d.created_at),
        last_attempt_at=_maybe_time(d.last_attempt_at),
        next_attempt_at=_maybe_time(d.next_attempt_at),
        delivered_at=_maybe_time(d.delivered_at),
    )


def delivery_list(page: DeliveryPage) -> WebhookDeliveryList:
    """A page of the webhook delivery log as the API shows it."""
    deliveries = [_delivery_out(e) for e in page.entries]
    return WebhookDeliveryList(experiment=page.experiment, deliveries=deliveries, next_before=page.next_before)
