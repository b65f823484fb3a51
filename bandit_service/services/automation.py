"""The automation pass: end experiments at their end, and act on the report once per reweight interval.

The scheduler's tick calls `automate_due(now)` after the reweights. The rule is
`core.automation.decide`; this module finds the experiments it applies to (active or paused, with
an action armed or an end set), reads their report and applies the action through the experiment
and plan write jobs (`edit_experiments`, `edit_plans`, so the lifecycle, namespace and plan rules
hold as for an operator), each with an audit entry by the actor "automation" whose `after` holds
the report figures that triggered it.

The end is checked on every tick, so an experiment completes within one tick of its end. The
report is looked at once per reweight interval (`reweight_every_s` from the first start), not
every tick: the guardrail check and the fixed-horizon figures have fixed-sample levels, and
looking every few seconds would multiply false alarms. Which interval was looked at is kept per
process (a restarted replica looks once at once); several replicas may look at the same interval,
and that is harmless because every write is a compare-and-set on the revision the decision was
made from: the first lands, the others find the experiment moved on and do nothing, so an
automatic action happens once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any, assert_never

import msgspec

from bandit_service.core.automation_rules import (
    AUTOMATION,
    AutomationAction,
    Complete,
    Hold,
    Pause,
    ShiftToControl,
    ShipGradually,
    armed,
    decide,
    end_of,
    look_index,
    watched,
)
from bandit_service.core.errors import ConflictError
from bandit_service.core.events import event
from bandit_service.core.lifecycle import next_status
from bandit_service.core.model import Experiment, ExperimentStatus
from bandit_service.core.plan_changes import Plans, PlanWrite, start_completion
from bandit_service.core.plans import PlanStep
from bandit_service.core.weights import with_weights
from bandit_service.ports import Storage
from bandit_service.services.cache import ExperimentCache
from bandit_service.services.experiments import EditedExperiment, ExperimentEdit, edit_experiments
from bandit_service.services.reports import ReportService
from bandit_service.services.rollouts import PlanEdit, PlanResult, edit_plans
from policies import ArmStats

__all__ = ["AutomationService"]

log = logging.getLogger(__name__)

WATCHED: tuple[ExperimentStatus, ...] = ("active", "paused")  # a paused experiment still ends at its end


def _unmoved(current: Experiment, revision: int) -> None:
    """The compare-and-set: the decision holds only for the revision it was made from."""
    if current.revision != revision:
        raise ConflictError(
            f"experiment {current.key!r} changed since the automation looked at it; it looks again", field="key"
        )


def _after(status: str, reason: str, figures: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"status": status, **extra, "reason": reason, **figures}


def _paused(current: Experiment, revision: int, action: Pause, now: float) -> EditedExperiment:
    _unmoved(current, revision)
    status = next_status("pause", current.key, current.status)
    paused = msgspec.structs.replace(current, status=status, updated_at=now)
    after = _after(status, action.reason, action.figures)
    entry = event(current.id, "auto_pause", {"status": current.status}, after, now, AUTOMATION)
    return EditedExperiment(experiment=paused, event=entry)


def _on_control(
    current: Experiment, revision: int, action: ShiftToControl, stats: tuple[ArmStats, ...], now: float
) -> EditedExperiment:
    _unmoved(current, revision)
    shifted, record = with_weights(current, action.weights, stats, "shift", now)
    # The policy would move traffic back at its next reweight: a manual reweight (or new manual weights) resumes it.
    changed = msgspec.structs.replace(shifted, next_reweight_at=None)
    before = {"weights": list(current.weights), "weights_version": current.weights_version}
    after = _after(
        current.status, action.reason, action.figures, weights=list(action.weights), weights_version=record.version
    )
    entry = event(current.id, "auto_control", before, after, now, AUTOMATION)
    return EditedExperiment(experiment=changed, event=entry, weights=record)


def _completed(current: Experiment, revision: int, action: Complete, now: float) -> EditedExperiment:
    _unmoved(current, revision)
    status = next_status("complete", current.key, current.status)
    completed = msgspec.structs.replace(
        current, status=status, winner=action.winner, next_reweight_at=None, completed_at=now, updated_at=now
    )
    after = _after(status, action.reason, action.figures, winner=action.winner)
    entry = event(current.id, action.action, {"status": current.status}, after, now, AUTOMATION)
    return EditedExperiment(experiment=completed, event=entry)


def _ship_gradually(
    current: Experiment,
    plans: Plans,
    revision: int,
    action: ShipGradually,
    stats: tuple[ArmStats, ...],
    now: float,
) -> PlanWrite:
    _unmoved(current, revision)
    steps = [PlanStep(s.share, s.hold_s) for s in action.steps]
    write = start_completion(current, plans, action.winner, steps, stats, now, AUTOMATION)
    plan = [[s.share, s.hold_s] for s in action.steps]
    after = _after(current.status, action.reason, action.figures, winner=action.winner, plan=plan)
    entry = event(current.id, "auto_complete", {"status": current.status}, after, now, AUTOMATION)
    return msgspec.structs.replace(write, events=(entry, *write.events))


class AutomationService:
    """The scheduler's automation pass (see the module docstring)."""

    def __init__(self, storage: Storage, cache: ExperimentCache, reports: ReportService, *, page: int = 200) -> None:
        self._storage = storage
        self._cache = cache
        self._reports = reports
        self._page = page
        self._looked: dict[str, int] = {}  # experiment key -> the last reweight interval looked at

    async def automate_due(self, now: float, limit: int = 20) -> int:
        """End experiments whose end has come, look at those due a look (at most `limit` reports); count actions."""
        candidates = await self._watched()
        keys = {e.key for e in candidates}
        self._looked = {k: i for k, i in self._looked.items() if k in keys}  # forget what no longer needs a look
        acted = looks = 0
        for experiment in candidates:
            end = end_of(experiment.config, experiment.started_at)
            ending = end is not None and now >= end
            index = look_index(experiment.started_at, experiment.config.reweight_every_s, now)
            due = experiment.status == "active" and armed(experiment.config.automation)
            if not ending and not (due and index > self._looked.get(experiment.key, 0)):
                continue
            if looks >= limit:
                break  # reports cost CPU: the rest are still due at the next tick
            looks += 1
            if await self.look(experiment, now):
                acted += 1
        return acted

    async def _watched(self) -> list[Experiment]:
        """Active and paused experiments with an action armed or an end set."""
        found: list[Experiment] = []
        for status in WATCHED:
            offset = 0
            while True:
                page = await self._storage.experiments(status, self._page, offset)
                found += [e for e in page if watched(e.config)]
                if len(page) < self._page:
                    break
                offset += self._page
        return found

    async def look(self, experiment: Experiment, now: float) -> bool:
        """Decide and act on the experiment as read; False if there is nothing to do or another writer was first."""
        index = look_index(experiment.started_at, experiment.config.reweight_every_s, now)
        plans = await self._storage.rollouts(experiment.id)
        completion = plans.get("completion")
        completing = completion.winner if completion is not None and completion.state.status == "running" else None
        end = end_of(experiment.config, experiment.started_at)
        if completing is not None and (end is None or now < end):
            self._looked[experiment.key] = index  # the running completion moves it: nothing to decide until it ends
            return False
        report = await self._reports.whole(experiment)
        action = decide(experiment, report, now, completing=completing)
        try:
            acted = await self._apply(experiment, action, now)
        except ConflictError as exc:  # moved since it was read (an operator, another replica): look again next tick
            log.info("automation of experiment %r skipped: %s", experiment.key, exc)
            return False
        self._looked[experiment.key] = index
        return acted

    async def _apply(self, experiment: Experiment, action: AutomationAction, now: float) -> bool:
        key, revision = experiment.key, experiment.revision
        change: Callable[[Experiment], EditedExperiment]
        match action:
            case Hold():
                return False
            case Pause():
                change, what = partial(_paused, revision=revision, action=action, now=now), "auto_pause"
            case ShiftToControl():
                stats = await self._stats(experiment)
                change = partial(_on_control, revision=revision, action=action, stats=stats, now=now)
                what = "auto_control"
            case Complete():
                change, what = partial(_completed, revision=revision, action=action, now=now), action.action
            case ShipGradually():
                stats = await self._stats(experiment)
                plan_change = partial(_ship_gradually, revision=revision, action=action, stats=stats, now=now)
                result: PlanResult = await self._storage.write(edit_plans, PlanEdit(key, plan_change))
                self._done(result.experiment, "auto_complete (gradual)", action.reason)
                return True
            case _:
                assert_never(action)
        updated: Experiment = await self._storage.write(edit_experiments, ExperimentEdit(key, change, AUTOMATION))
        self._done(updated, what, action.reason)
        return True

    async def _stats(self, experiment: Experiment) -> tuple[ArmStats, ...]:
        return tuple(c.stats for c in await self._storage.arm_counts(experiment))

    def _done(self, updated: Experiment, what: str, reason: str) -> None:
        self._cache.put(updated)
        log.warning("experiment %r: %s by its automation (now %s): %s", updated.key, what, updated.status, reason)
