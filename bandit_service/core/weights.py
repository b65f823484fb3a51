"""New weights for an experiment: the one place that makes a weights version and its history row."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from bandit_service.core.assignment import churn_share
from bandit_service.core.model import Experiment, WeightsReason, WeightsRecord
from policies import ArmStats

__all__ = ["with_weights"]


def with_weights(
    experiment: Experiment,
    weights: Sequence[float],
    stats: Sequence[ArmStats],
    reason: WeightsReason,
    now: float,
    *,
    seed: int | None = None,
) -> tuple[Experiment, WeightsRecord]:
    """The experiment under `weights` (the next weights version) and the history row that records it.

    `stats` are the arms' statistics the weights were computed from (zeros at the start), and
    `seed` the one that replays a randomised policy. The churn (share of units that would move)
    is measured against the weights the experiment had; a first version has none to move from.
    """
    version = experiment.weights_version + 1
    new = tuple(float(w) for w in weights)
    record = WeightsRecord(
        experiment_id=experiment.id,
        version=version,
        created_at=now,
        weights=new,
        stats=tuple(stats),
        reason=reason,
        seed=seed,
        churn=churn_share(experiment.weights, new) if experiment.weights_version > 0 else None,
    )
    changed = msgspec.structs.replace(
        experiment, weights=new, weights_version=version, reweighted_at=now, updated_at=now
    )
    return changed, record
