"""POST /v1/decisions/log: decisions SDKs evaluated locally, logged in batches (idempotent by decision id)."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from litestar import post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from bandit_service.core.definitions import DecisionLogIn, LoggedDecisionIn
from bandit_service.core.errors import DomainError
from bandit_service.http.problems import problem_for
from bandit_service.http.schemas import DecisionLogOut, DecisionLogResult
from bandit_service.services.decision_log import DecisionLogService, LogOutcome

__all__ = ["decision_log_out", "log_decision_batch"]


@post("/v1/decisions/log", status_code=200, tags=["decisions"], opt={"role": "decide"})
async def log_decision_batch(
    data: JSONBody[DecisionLogIn], decision_log: NamedDependency[DecisionLogService]
) -> DecisionLogOut:
    """Log up to 1,000 locally evaluated decisions; each gets its own status (201 logged, 200 duplicate) or problem."""
    return decision_log_out(data.decisions, await decision_log.log(data.decisions))


def decision_log_out(items: Sequence[LoggedDecisionIn], outcomes: Sequence[LogOutcome | DomainError]) -> DecisionLogOut:
    """Per-item results; a refused item's problem names its field as `decisions[i].field`."""
    results = []
    for i, (item, outcome) in enumerate(zip(items, outcomes, strict=True)):
        if isinstance(outcome, DomainError):
            problem = problem_for(outcome)
            where = f"decisions[{i}]"
            problem = msgspec.structs.replace(problem, field=f"{where}.{problem.field}" if problem.field else where)
            results.append(DecisionLogResult(decision_id=item.decision_id, status=problem.status, problem=problem))
        else:
            status = 200 if outcome.duplicate else 201
            results.append(
                DecisionLogResult(decision_id=item.decision_id, status=status, contradicts=outcome.contradicts)
            )
    logged = sum(1 for r in results if r.status == 201)
    duplicates = sum(1 for r in results if r.status == 200)
    return DecisionLogOut(
        logged=logged, duplicates=duplicates, failed=len(results) - logged - duplicates, results=results
    )
