"""Rebalance: after manual weights with `rebalance: true`, move the fewest stored sticky units.

The weights change commits first (new units follow the new weights from then on); then the units
stored before it are counted per arm, and `core.rebalance` plans which of them move. The pass
walks the experiment's assignments in pages of `PAGE` units, each page one write job: it reads the
page under a lock that decisions respect, moves the page's units the plan moves (compare-and-set,
so a retried page never moves a unit twice) and records the moved share so far in the weights
history, so the history is right even if the process stops halfway. The last page logs the
outcome in the audit log. Assignments are only updated, never deleted or inserted, so a
concurrent first assignment is never lost; units assigned after the change already carry the
new weights version and are out of the pass. A newer weights version stops the pass at its next
page (it counts and plans afresh, from the units as they are then).

A moved unit's open unit trial stops taking exposures (its `trial_expires_at` is cleared) but stays
the unit's latest trial (`trial_id` is kept): it settles on its old arm when its reward window
closes, a reward sent by experiment and unit before the unit's next decision still reaches it,
and that next decision opens a new trial on the new arm.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from bandit_service.core.events import event
from bandit_service.core.model import Assignment, Experiment
from bandit_service.core.rebalance import RebalancePlan, plan_rebalance
from bandit_service.ports import Clock, Storage, WriteTx

__all__ = ["PAGE", "Page", "Rebalanced", "rebalance", "rebalance_page"]

PAGE = 1_000
"""Units read per write job: small enough that a page holds the writer (and, on PostgreSQL, the
experiment's decisions) for milliseconds, large enough that a million units take a thousand jobs."""


class Page(msgspec.Struct, frozen=True, kw_only=True):
    """One page of the pass, with the totals of the pages before it (for the history and the audit log)."""

    experiment_id: int
    plan: RebalancePlan
    after: str | None
    limit: int
    seen: int
    moved: int
    actor: str
    now: float


class Rebalanced(msgspec.Struct, frozen=True, kw_only=True):
    """Where the pass stands after a page: `last` unit read, totals, and whether it is over."""

    last: str | None
    seen: int
    moved: int
    status: Literal["running", "done", "superseded"]


def _outcome(page: Page, seen: int, moved: int, status: str) -> dict[str, Any]:
    plan = page.plan
    return {
        "weights_version": plan.version,
        "status": status,
        "units": plan.units,
        "seen": seen,
        "moved_units": moved,
        "moved": moved / plan.units if plan.units else 0.0,
        "minimum": plan.minimum,
    }


def rebalance_page(tx: WriteTx, items: Sequence[Page]) -> list[Any]:
    """Write job: move the page's units the plan moves, record the moved share; the last page logs the outcome."""
    out: list[Any] = []
    for page in items:
        plan = page.plan
        rows = tx.rebalance_page(page.experiment_id, plan.version, page.after, page.limit)
        if rows is None:  # a newer weights version: its own rebalance (if any) starts from the units as they are
            tx.log_event(
                event(
                    page.experiment_id,
                    "rebalance",
                    None,
                    _outcome(page, page.seen, page.moved, "superseded"),
                    page.now,
                    page.actor,
                )
            )
            out.append(Rebalanced(last=page.after, seen=page.seen, moved=page.moved, status="superseded"))
            continue
        moves = []
        for unit, stored in rows:
            arm = plan.destination(unit, stored.arm)
            if arm is None:
                continue
            # The unit's trial stays its latest (a reward by experiment and unit still reaches it, on its
            # old arm) but takes no more exposures: the unit's next decision opens a trial on the new arm.
            to = Assignment(
                arm=arm, propensity=plan.weights[arm], weights_version=plan.version, trial_id=stored.trial_id
            )
            moves.append((unit, stored, to))
        moved = page.moved + tx.move_assignments(page.experiment_id, moves)
        seen = page.seen + len(rows)
        if plan.units:
            tx.set_moved(page.experiment_id, plan.version, moved / plan.units)
        if page.limit == 0 or len(rows) < page.limit:  # the last page (limit 0: nothing to move, just log)
            tx.log_event(
                event(page.experiment_id, "rebalance", None, _outcome(page, seen, moved, "done"), page.now, page.actor)
            )
            out.append(Rebalanced(last=None, seen=seen, moved=moved, status="done"))
            continue
        out.append(Rebalanced(last=rows[-1][0], seen=seen, moved=moved, status="running"))
    return out


async def rebalance(
    storage: Storage, clock: Clock, experiment: Experiment, actor: str, limit: int | None = None
) -> Rebalanced:
    """Move the stored units of `experiment` (just given its new weights) that the plan moves, `PAGE` at a time."""
    limit = PAGE if limit is None else limit
    counts = await storage.assignment_counts(experiment.id, experiment.weights_version)
    plan = plan_rebalance(
        experiment.salt,
        experiment.weights_version,
        [counts.get(i, 0) for i in range(len(experiment.arms))],
        experiment.weights,
    )
    if plan.minimum == 0.0:
        limit = 0  # nothing must move: one page of none logs the outcome
    page = Page(
        experiment_id=experiment.id, plan=plan, after=None, limit=limit, seen=0, moved=0, actor=actor, now=clock.time()
    )
    while True:
        result: Rebalanced = await storage.write(rebalance_page, page)
        if result.status != "running":
            return result
        page = msgspec.structs.replace(page, after=result.last, seen=result.seen, moved=result.moved, now=clock.time())
