"""Domain values as wire responses."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bandit_service.clock import to_datetime
from bandit_service.domain.model import ArmCounts, Experiment, StoredReward, WeightsRecord
from bandit_service.domain.specs import bound_policy
from bandit_service.schemas import (
    ArmOut,
    ArmStatsOut,
    ExperimentOut,
    MetricStatsOut,
    RewardOut,
    StatsOut,
    WeightsRecordOut,
)
from policies import ArmStats

__all__ = ["experiment_out", "reward_out", "weights_out"]


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
                decisions=c.decisions,
                pending=c.pending,
                rewarded=c.rewarded,
                expired=c.expired,
                n=int(c.stats.n),
                mean=_mean(c.stats),
                metrics={m: MetricStatsOut(n=int(s.n), mean=_mean(s)) for m, s in sorted(c.metrics.items())},
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
    )


def weights_out(names: Sequence[str], record: WeightsRecord) -> WeightsRecordOut:
    """One weights-history row as the API shows it."""
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
    )
