"""Rows to domain values and back: the only code that knows both shapes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from sqlalchemy import Row

from bandit_service.core.model import Arm, Experiment, ExperimentConfig, NewExperiment, WeightsRecord
from policies import ArmStats

__all__ = ["arm_rows", "experiment_from_rows", "experiment_values", "weights_from_row", "weights_values"]


def experiment_values(experiment: NewExperiment) -> dict[str, Any]:
    """Column values of the experiments table (without id and revision)."""
    return {
        "key": experiment.key,
        "name": experiment.name,
        "description": experiment.description,
        "status": experiment.status,
        "config": msgspec.to_builtins(experiment.config),
        "salt": experiment.salt,
        "winner": experiment.winner,
        "weights": list(experiment.weights),
        "weights_version": experiment.weights_version,
        "next_reweight_at": experiment.next_reweight_at,
        "reweighted_at": experiment.reweighted_at,
        "created_at": experiment.created_at,
        "updated_at": experiment.updated_at,
        "started_at": experiment.started_at,
        "completed_at": experiment.completed_at,
    }


def arm_rows(experiment_id: int, arms: Sequence[Arm]) -> list[dict[str, Any]]:
    """Rows of the arms table."""
    return [
        {"experiment_id": experiment_id, "position": i, "name": a.name, "weight": a.weight, "payload": a.payload}
        for i, a in enumerate(arms)
    ]


def experiment_from_rows(row: Row[Any], arms: Sequence[Row[Any]]) -> Experiment:
    """An experiment from its row and its arm rows (ordered by position)."""
    m = row._mapping
    return Experiment(
        id=m["id"],
        revision=m["revision"],
        key=m["key"],
        name=m["name"],
        description=m["description"],
        status=m["status"],
        arms=tuple(Arm(name=a.name, weight=a.weight, payload=a.payload) for a in arms),
        config=msgspec.convert(m["config"], ExperimentConfig),
        salt=m["salt"],
        winner=m["winner"],
        weights=tuple(m["weights"]),
        weights_version=m["weights_version"],
        next_reweight_at=m["next_reweight_at"],
        reweighted_at=m["reweighted_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        started_at=m["started_at"],
        completed_at=m["completed_at"],
    )


def weights_values(record: WeightsRecord) -> dict[str, Any]:
    """Column values of the weights-history table."""
    return {
        "experiment_id": record.experiment_id,
        "version": record.version,
        "created_at": record.created_at,
        "weights": list(record.weights),
        "stats": [[s.n, s.total, s.total_sq] for s in record.stats],
        "reason": record.reason,
        "seed": record.seed,
        "churn": record.churn,
        "moved": record.moved,
    }


def weights_from_row(m: Mapping[Any, Any]) -> WeightsRecord:
    """A weights-history record from its row mapping."""
    return WeightsRecord(
        experiment_id=m["experiment_id"],
        version=m["version"],
        created_at=m["created_at"],
        weights=tuple(m["weights"]),
        stats=tuple(ArmStats(n, total, total_sq) for n, total, total_sq in m["stats"]),
        reason=m["reason"],
        seed=m["seed"],
        churn=m["churn"],
        moved=m["moved"],
    )
