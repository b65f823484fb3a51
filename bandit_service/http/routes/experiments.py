"""/v1/experiments: create, read, change, lifecycle, weights."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from bandit_service.core.commands import CompleteIn, ExperimentIn, ExperimentPatch, WeightsIn
from bandit_service.core.model import ExperimentStatus
from bandit_service.core.roles import Principal
from bandit_service.http.schemas import ExperimentList, ExperimentOut, WeightsHistoryOut, WeightsRecordOut
from bandit_service.http.views import experiment_out, latest_weights_out, weights_history_out
from bandit_service.services.experiments import ExperimentService
from bandit_service.services.rollouts import RolloutService

__all__ = ["ExperimentController"]

Limit = Annotated[int, QueryParameter(ge=1, le=1_000)]
Offset = Annotated[int, QueryParameter(ge=0, le=1_000_000)]


class ExperimentController(Controller):
    """Operator endpoints for experiments."""

    path = "/v1/experiments"
    tags = ["experiments"]  # noqa: RUF012 (Litestar reads a class attribute)

    @post("/", status_code=201, opt={"role": "operate"})
    async def create(
        self,
        data: JSONBody[ExperimentIn],
        experiments: NamedDependency[ExperimentService],
        caller: NamedDependency[Principal],
    ) -> ExperimentOut:
        """Create a draft experiment."""
        return experiment_out(await experiments.create(data, actor=caller.name))

    @get("/", opt={"role": "read"})
    async def list_experiments(
        self,
        experiments: NamedDependency[ExperimentService],
        status: FromQuery[ExperimentStatus | None] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> ExperimentList:
        """List experiments, newest first, optionally of one status."""
        found = await experiments.list(status, limit, offset)
        return ExperimentList(experiments=[experiment_out(e) for e in found])

    @get("/{key:str}", opt={"role": "read"})
    async def read(self, key: FromPath[str], experiments: NamedDependency[ExperimentService]) -> ExperimentOut:
        """Configuration, status, current weights, and per-arm counts and means."""
        found = await experiments.get(key)
        return experiment_out(found.experiment, found.counts)

    @patch("/{key:str}", opt={"role": "operate"})
    async def update(
        self,
        key: FromPath[str],
        data: JSONBody[ExperimentPatch],
        experiments: NamedDependency[ExperimentService],
        caller: NamedDependency[Principal],
    ) -> ExperimentOut:
        """Change description, exposure, targeting or schedule (arms, policy and reward settings while draft)."""
        return experiment_out(await experiments.update(key, data, actor=caller.name))

    @post("/{key:str}/start", status_code=200, opt={"role": "operate"})
    async def start(
        self, key: FromPath[str], experiments: NamedDependency[ExperimentService], caller: NamedDependency[Principal]
    ) -> ExperimentOut:
        """Draft or paused -> active."""
        return experiment_out(await experiments.start(key, actor=caller.name))

    @post("/{key:str}/pause", status_code=200, opt={"role": "operate"})
    async def pause(
        self, key: FromPath[str], experiments: NamedDependency[ExperimentService], caller: NamedDependency[Principal]
    ) -> ExperimentOut:
        """Active -> paused (everyone gets the control arm)."""
        return experiment_out(await experiments.pause(key, actor=caller.name))

    @post("/{key:str}/complete", status_code=200, opt={"role": "operate"})
    async def complete(
        self,
        key: FromPath[str],
        rollouts: NamedDependency[RolloutService],
        caller: NamedDependency[Principal],
        data: JSONBody[CompleteIn | None] = None,
    ) -> ExperimentOut:
        """Active or paused -> completed, serving the winner (or the control when the winner is null).

        With a `plan`, traffic shifts to the winner step by step first (see GET .../completion).
        """
        return experiment_out(await rollouts.complete(key, data, actor=caller.name))

    @post("/{key:str}/reweight", status_code=200, opt={"role": "operate"})
    async def reweight(
        self, key: FromPath[str], experiments: NamedDependency[ExperimentService], caller: NamedDependency[Principal]
    ) -> WeightsRecordOut:
        """Recompute the weights now through the experiment's policy."""
        return latest_weights_out(await experiments.reweight(key, actor=caller.name))

    @get("/{key:str}/weights", opt={"role": "read"})
    async def weights_history(
        self, key: FromPath[str], experiments: NamedDependency[ExperimentService], limit: Limit = 1_000
    ) -> WeightsHistoryOut:
        """The weights history, oldest first: version, time, weights, per-arm stats, reason, seed, churn."""
        return weights_history_out(await experiments.history(key, limit))

    @put("/{key:str}/weights", opt={"role": "operate"})
    async def set_weights(
        self,
        key: FromPath[str],
        data: JSONBody[WeightsIn],
        experiments: NamedDependency[ExperimentService],
        caller: NamedDependency[Principal],
    ) -> WeightsRecordOut:
        """Set the weights of a fixed split by hand (validated like FixedSplit)."""
        return latest_weights_out(await experiments.set_weights(key, data, actor=caller.name))
