"""/v1/experiments/{key}: exposure, exposure ramps, gradual completion and the audit log."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from bandit_service.core.commands import ExposureIn, RampIn
from bandit_service.core.roles import Principal
from bandit_service.http.schemas import CompletionOut, EventList, ExperimentOut, RampOut
from bandit_service.http.views import completion_out, event_list, experiment_out, ramp_out
from bandit_service.services.audit import AuditService
from bandit_service.services.rollouts import RolloutService

__all__ = ["RolloutController"]

Limit = Annotated[int, QueryParameter(ge=1, le=1_000)]
After = Annotated[int, QueryParameter(ge=0, le=2**62, description="Return entries with a larger id (a cursor).")]


class RolloutController(Controller):
    """Operator rollout controls and the audit log of an experiment."""

    path = "/v1/experiments"
    tags = ["rollouts"]  # noqa: RUF012 (Litestar reads a class attribute)

    @put("/{key:str}/exposure", opt={"role": "operate"})
    async def set_exposure(
        self,
        key: FromPath[str],
        data: JSONBody[ExposureIn],
        rollouts: NamedDependency[RolloutService],
        caller: NamedDependency[Principal],
    ) -> ExperimentOut:
        """Set the share of units that enter the experiment (409 while a ramp drives it)."""
        return experiment_out(await rollouts.set_exposure(key, data, actor=caller.name))

    @put("/{key:str}/ramp", opt={"role": "operate"})
    async def set_ramp(
        self,
        key: FromPath[str],
        data: JSONBody[RampIn],
        rollouts: NamedDependency[RolloutService],
        caller: NamedDependency[Principal],
    ) -> RampOut:
        """Start or replace an exposure ramp; the scheduler advances it while every guardrail holds."""
        return ramp_out(await rollouts.set_ramp(key, data, actor=caller.name))

    @get("/{key:str}/ramp", opt={"role": "read"})
    async def ramp(self, key: FromPath[str], rollouts: NamedDependency[RolloutService]) -> RampOut:
        """The exposure ramp: steps, current step, since when, status and reason."""
        return ramp_out(await rollouts.ramp(key))

    @delete("/{key:str}/ramp", status_code=200, opt={"role": "operate"})
    async def cancel_ramp(
        self, key: FromPath[str], rollouts: NamedDependency[RolloutService], caller: NamedDependency[Principal]
    ) -> RampOut:
        """Cancel the running ramp; the exposure stays where it is."""
        return ramp_out(await rollouts.cancel_ramp(key, actor=caller.name))

    @get("/{key:str}/completion", opt={"role": "read"})
    async def completion(self, key: FromPath[str], rollouts: NamedDependency[RolloutService]) -> CompletionOut:
        """The gradual completion (POST .../complete with a plan): winner, steps, current step, status."""
        return completion_out(await rollouts.completion(key))

    @delete("/{key:str}/completion", status_code=200, opt={"role": "operate"})
    async def cancel_completion(
        self, key: FromPath[str], rollouts: NamedDependency[RolloutService], caller: NamedDependency[Principal]
    ) -> CompletionOut:
        """Cancel the running gradual completion; weights stay, scheduled reweights resume."""
        return completion_out(await rollouts.cancel_completion(key, actor=caller.name))

    @get("/{key:str}/events", opt={"role": "read"})
    async def events(
        self, key: FromPath[str], audit: NamedDependency[AuditService], limit: Limit = 100, after: After = 0
    ) -> EventList:
        """The audit log, oldest first: time, actor, action, values before and after."""
        return event_list(await audit.events(key, after, limit))
