"""Decisions: which arm a unit gets, from the cached experiment, a hash and its sticky assignment.

The request path does no database read of its own and no policy computation: the experiment
and its weights come from the cache, exposure and the candidate arm from blake2b hashes, and
the one write job (batched with concurrent requests by the group-commit writer) looks up the
unit's stored assignment by primary key, keeps it if there is one, stores the candidate if
there is not, and logs the decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from bandit_service.core.commands import DecisionIn
from bandit_service.core.definitions import OUTSIDE_PREFIX
from bandit_service.core.errors import NotFoundError
from bandit_service.core.model import Assignment, Decision, Experiment, Exposure, OpenTrial, Served
from bandit_service.core.placement import place_unit
from bandit_service.core.telemetry import NoTelemetry, Telemetry
from bandit_service.core.trials import TrialKind
from bandit_service.ports import Clock, IdFactory, Storage, WriteTx
from bandit_service.services.cache import ExperimentCache
from bandit_service.services.features import FeatureCache, decide_by_feature

__all__ = ["DecisionService", "Logged", "Placement", "log_decisions", "place"]


class Placement(msgspec.Struct, frozen=True, kw_only=True):
    """A decision to log, with the candidate arm the hash chose under the cached weights."""

    decision_id: str
    experiment_id: int
    unit: str | None
    sticky: bool
    trial: TrialKind
    arm: int
    propensity: float
    weights_version: int
    attributes: dict[str, Any]
    created_at: float
    expires_at: float
    served: bool = False
    """True: an SDK already served `arm` (a locally evaluated decision): it is logged as is, and a
    unit's stored sticky arm is kept (`Logged.contradicts` says whether they differ)."""


class Logged(msgspec.Struct, frozen=True, kw_only=True):
    """What a logged decision answers: its trial's decision id (the opener's, for an exposure) and the arm."""

    decision_id: str
    arm: int
    propensity: float
    contradicts: bool = False  # a served arm that differs from the unit's stored sticky arm


def place(experiment: Experiment, unit: str | None, attributes: Mapping[str, Any], decision_id: str) -> int | None:
    """The candidate arm, or None if the unit is outside the experiment (status, targeting, namespace slice, exposure).

    A unit-less request is an independent draw: the fresh decision id stands in for the unit.
    """
    config = experiment.config
    return place_unit(
        status=experiment.status,
        salt=experiment.salt,
        targeting=config.targeting,
        namespace=config.namespace,
        exposure=config.exposure,
        arms=experiment.arm_names,
        weights=experiment.weights,
        key=unit if unit is not None else decision_id,
        attributes=attributes,
    )


def log_decisions(tx: WriteTx, items: Sequence[Placement]) -> list[Logged | None]:
    """Write job: resolve sticky assignments (the stored arm wins), open or join unit trials, log, count.

    A decision is logged only if its experiment is still active as this transaction commits
    (another process may have paused or completed it since this one cached it); for the others
    the outcome is None and nothing is stored. In a `trial: "unit"` experiment, a unit's decision
    inside its open trial is an exposure of that trial: it answers the trial's decision id and is
    counted, not logged; a decision after the trial's window closed opens the unit's next trial.
    A `served` placement (an SDK's) is logged and counted with its own arm and propensity, and
    stores its unit's first assignment like any other, but never replaces a stored one.
    """
    active = tx.active_experiments({p.experiment_id for p in items})
    kept = [p for p in items if p.experiment_id in active]
    final = [Assignment(arm=p.arm, propensity=p.propensity, weights_version=p.weights_version) for p in kept]
    answer_ids = [p.decision_id for p in kept]
    opens = [True] * len(kept)  # False: an exposure of an open unit trial
    new_unit = [False] * len(kept)
    contradicts = [False] * len(kept)
    by_experiment: dict[int, dict[str, list[int]]] = {}  # experiment -> unit -> positions in kept
    for i, p in enumerate(kept):
        if p.sticky and p.unit is not None:
            by_experiment.setdefault(p.experiment_id, {}).setdefault(p.unit, []).append(i)
    for experiment_id, positions in sorted(by_experiment.items()):
        stored = tx.assignments(experiment_id, positions.keys())
        new_units = [unit for unit in positions if unit not in stored]
        if new_units:
            first = {unit: _first_assignment(kept[positions[unit][0]], final[positions[unit][0]]) for unit in new_units}
            created = tx.insert_assignments(
                experiment_id, list(first.items()), kept[positions[new_units[0]][0]].created_at
            )
            # A unit is new only where this insert created its row; the others were assigned by a
            # concurrent replica a moment ago, and its stored arm (and trial) wins.
            stored |= tx.assignments(experiment_id, [unit for unit in new_units if unit not in created])
            for unit in created:
                stored[unit] = first[unit]
                new_unit[positions[unit][0]] = True  # the unit's first decision in this batch
        opened: list[OpenTrial] = []
        for unit, where in positions.items():
            chosen = stored.get(unit, final[where[0]])
            trial_id, trial_end = chosen.trial_id, chosen.trial_expires_at
            for i in where:
                p = kept[i]
                if p.served:  # the app used the SDK's arm: log that one, keep the stored sticky arm
                    contradicts[i] = final[i].arm != chosen.arm
                else:
                    final[i] = chosen
                if p.trial != "unit":
                    continue
                if trial_id is not None and trial_end is not None and p.created_at < trial_end:
                    if trial_id != p.decision_id:  # not the trial's own opening decision
                        opens[i] = False
                        answer_ids[i] = trial_id
                    continue
                trial_id, trial_end = p.decision_id, p.expires_at  # the unit's next trial opens here
                opened.append(OpenTrial(unit=unit, trial_id=trial_id, expires_at=trial_end))
        if opened:
            tx.open_trials(experiment_id, opened)
    tx.insert_decisions(
        [
            Decision(
                id=p.decision_id,
                experiment_id=p.experiment_id,
                unit=p.unit,
                arm=a.arm,
                propensity=a.propensity,
                weights_version=p.weights_version,
                attributes=p.attributes,
                created_at=p.created_at,
                expires_at=p.expires_at,
                new_unit=new,
            )
            for p, a, new, logged in zip(kept, final, new_unit, opens, strict=True)
            if logged
        ]
    )
    exposures = [
        Exposure(experiment_id=p.experiment_id, arm=a.arm, weights_version=p.weights_version, trial_id=trial)
        for p, a, logged, trial in zip(kept, final, opens, answer_ids, strict=True)
        if not logged
    ]
    if exposures:
        tx.count_exposures(exposures)
    answers = iter(
        Logged(decision_id=decision_id, arm=a.arm, propensity=a.propensity, contradicts=c)
        for decision_id, a, c in zip(answer_ids, final, contradicts, strict=True)
    )
    return [next(answers) if p.experiment_id in active else None for p in items]


def _first_assignment(p: Placement, candidate: Assignment) -> Assignment:
    """A new unit's assignment: the candidate arm, and in a unit-trial experiment the trial it opens."""
    if p.trial != "unit":
        return candidate
    return msgspec.structs.replace(candidate, trial_id=p.decision_id, trial_expires_at=p.expires_at)


class DecisionService:
    """POST /v1/decisions."""

    def __init__(
        self,
        storage: Storage,
        cache: ExperimentCache,
        clock: Clock,
        ids: IdFactory,
        telemetry: Telemetry | None = None,
        features: FeatureCache | None = None,
    ) -> None:
        self._storage = storage
        self._cache = cache
        self._clock = clock
        self._ids = ids
        self._telemetry = telemetry if telemetry is not None else NoTelemetry()
        self._features = features if features is not None else FeatureCache(storage, cache)

    async def decide(self, data: DecisionIn) -> Served:
        """The arm for this unit: sticky inside the experiment, the control (or winner) outside it.

        By feature: the first of its experiments that serves the unit decides, else the feature's default.
        """
        if data.feature is not None or data.experiment is None:
            return await decide_by_feature(data, self._features, self.decide, lambda: OUTSIDE_PREFIX + self._ids())
        experiment = await self._cache.get(data.experiment)
        if experiment is None:
            raise NotFoundError(f"no experiment with key {data.experiment!r}", field="experiment")
        decision_id = self._ids()
        arm = place(experiment, data.unit, data.attributes, decision_id)
        if arm is None:
            return _outside(experiment, decision_id)
        now = self._clock.time()
        placement = Placement(
            decision_id=decision_id,
            experiment_id=experiment.id,
            unit=data.unit,
            sticky=experiment.config.sticky,
            trial=experiment.config.trial,
            arm=arm,
            propensity=experiment.weights[arm],
            weights_version=experiment.weights_version,
            attributes=data.attributes,
            created_at=now,
            expires_at=now + experiment.config.reward_window_s,
        )
        try:
            assigned: Logged | None = await self._storage.write(log_decisions, placement)
        except Exception as exc:  # counted for the experiment's metrics, then raised on unchanged
            self._telemetry.decision_failed(experiment.key, experiment.arm_names[arm], type(exc).__name__)
            raise
        if assigned is None:
            # The experiment stopped being active after this process cached it: nothing was stored;
            # answer as the database says now.
            fresh = await self._cache.reload(data.experiment)
            return _outside(fresh if fresh is not None else experiment, decision_id)
        return Served(
            decision_id=assigned.decision_id,
            experiment=experiment,
            arm=assigned.arm,
            propensity=assigned.propensity,
            in_experiment=True,
        )


def _outside(experiment: Experiment, decision_id: str) -> Served:
    """The answer for a unit outside the experiment: the control, or the winner once completed with one."""
    served = experiment.control_index
    if experiment.status == "completed" and experiment.winner is not None:
        served = experiment.arm_index(experiment.winner)
    return Served(
        decision_id=OUTSIDE_PREFIX + decision_id,
        experiment=experiment,
        arm=served,
        propensity=1.0,
        in_experiment=False,
    )
