"""POST /v1/decisions."""

from __future__ import annotations

from litestar import post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from bandit_service.core.commands import DecisionIn
from bandit_service.http.schemas import DecisionOut
from bandit_service.http.views import decision_out
from bandit_service.services.decisions import DecisionService

__all__ = ["decide"]


@post("/v1/decisions", status_code=200, tags=["decisions"], opt={"role": "decide"})
async def decide(data: JSONBody[DecisionIn], decisions: NamedDependency[DecisionService]) -> DecisionOut:
    """Choose the arm for a unit (sticky) or for one request (no unit: an independent draw)."""
    return decision_out(await decisions.decide(data))
