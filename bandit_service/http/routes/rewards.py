"""POST /v1/rewards and POST /v1/rewards/batch."""

from __future__ import annotations

import msgspec
from litestar import post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from bandit_service.core.commands import RewardBatchIn, RewardIn
from bandit_service.core.errors import DomainError
from bandit_service.core.model import StoredReward
from bandit_service.http.problems import problem_for
from bandit_service.http.schemas import RewardBatchOut, RewardOut, RewardResult
from bandit_service.http.views import reward_out
from bandit_service.services.rewards import RewardService

__all__ = ["batch_out", "record_reward", "record_reward_batch"]


@post("/v1/rewards", status_code=200, tags=["rewards"], opt={"role": "decide"})
async def record_reward(data: JSONBody[RewardIn], rewards: NamedDependency[RewardService]) -> RewardOut:
    """Report the reward of a decision (a retry with the same body is counted once)."""
    return reward_out(await rewards.record(data))


@post("/v1/rewards/batch", status_code=200, tags=["rewards"], opt={"role": "decide"})
async def record_reward_batch(data: JSONBody[RewardBatchIn], rewards: NamedDependency[RewardService]) -> RewardBatchOut:
    """Report up to 1,000 rewards; each item gets its own status and problem detail."""
    return batch_out(data, await rewards.record_batch(data))


def batch_out(items: list[RewardIn], outcomes: list[StoredReward | DomainError]) -> RewardBatchOut:
    """Per-item results; a refused item's problem names its field as `[i].field`."""
    results = []
    for i, (item, outcome) in enumerate(zip(items, outcomes, strict=True)):
        if isinstance(outcome, DomainError):
            problem = problem_for(outcome)
            field = f"[{i}].{problem.field}" if problem.field else f"[{i}]"
            problem = msgspec.structs.replace(problem, field=field)
            results.append(RewardResult(decision_id=item.decision_id, status=problem.status, problem=problem))
        else:
            results.append(RewardResult(decision_id=item.decision_id, status=200, reward=reward_out(outcome)))
    recorded = sum(1 for r in results if r.status == 200)
    return RewardBatchOut(recorded=recorded, failed=len(results) - recorded, results=results)
