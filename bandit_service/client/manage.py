"""Management calls for notebooks and CI scripts: create, list, start, pause, complete, ramp, report, keys.

`Management` (over an `httpx.Client`) and `AsyncManagement` (over an `httpx.AsyncClient`) send
the calls `manage_core` builds and read their answers there, so both behave alike: a refusal
raises `BanditError` with the problem's status, detail and field; a service that cannot be
reached raises `BanditError` too ("cannot reach the service at URL: ..."). Objects come back as
the JSON the service sent (dicts); the report can also come back typed (`report()`: the server's
`Report`, which imports numpy, so only when asked for).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from bandit_service.client import manage_core as core
from bandit_service.client.manage_core import BanditError, Call, Day, Json, Status, Step, unreachable
from bandit_service.client.specs import SpecError, load_spec

if TYPE_CHECKING:
    from bandit_service.core.reporting.values import Report, SegmentReport

__all__ = ["AsyncManagement", "BanditError", "Day", "Json", "Management", "SpecError", "Step"]

T = TypeVar("T")
Items = list[Json]
"""JSON objects as the service listed them (experiments, keys, features, weights records)."""
Spec = Mapping[str, Any] | str | os.PathLike[str]
"""An experiment spec: its fields, or the path of a YAML, TOML or JSON file that holds them."""


def _spec(spec: Spec) -> Mapping[str, Any]:
    return spec if isinstance(spec, Mapping) else load_spec(spec)


class Management:
    """The service's management API over an `httpx.Client` whose base URL (and key) point at it."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def _send(self, call: Call[T]) -> T:
        try:
            response = self._http.request(
                call.method, call.path, params=call.params, content=call.content, headers=call.headers
            )
        except httpx.HTTPError as exc:
            raise unreachable(self._http.base_url, exc) from exc
        return core.answer(call, response)

    def create(self, spec: Spec) -> Json:
        """Create a draft experiment from its fields or from a YAML, TOML or JSON file."""
        return self._send(core.create(_spec(spec)))

    def list(self, status: Status | None = None, *, limit: int = 100, offset: int = 0) -> Items:
        """Experiments, newest first, optionally of one status (without per-arm statistics)."""
        return self._send(core.list_experiments(status, limit, offset))

    def get(self, key: str) -> Json:
        """An experiment: configuration, status, weights and per-arm statistics."""
        return self._send(core.get(key))

    def start(self, key: str) -> Json:
        """Draft or paused -> active."""
        return self._send(core.lifecycle(key, "start"))

    def pause(self, key: str) -> Json:
        """Active -> paused (every unit gets the control arm)."""
        return self._send(core.lifecycle(key, "pause"))

    def reweight(self, key: str) -> Json:
        """Recompute the weights now; returns the new weights record."""
        return self._send(core.lifecycle(key, "reweight"))

    def complete(self, key: str, winner: str | None = None, plan: Sequence[Step] | None = None) -> Json:
        """Complete, serving `winner` (None: the control); with a plan, shift traffic to it step by step first."""
        return self._send(core.complete(key, winner, plan))

    def patch(self, key: str, changes: Mapping[str, Any]) -> Json:
        """Change fields (description, exposure, targeting, ...; arms and policy while draft)."""
        return self._send(core.patch(key, changes))

    def set_exposure(self, key: str, exposure: float) -> Json:
        """The share of units that enter the experiment."""
        return self._send(core.set_exposure(key, exposure))

    def set_weights(self, key: str, weights: Mapping[str, float], *, rebalance: bool = False) -> Json:
        """Manual weights of a fixed split; `rebalance` moves stored sticky units too."""
        return self._send(core.set_weights(key, weights, rebalance))

    def weights_history(self, key: str, *, limit: int = 1_000) -> Items:
        """The weights history, oldest first."""
        return self._send(core.weights_history(key, limit))

    def ramp(self, key: str) -> Json:
        """The exposure ramp and where it stands (404 when there is none)."""
        return self._send(core.ramp(key))

    def set_ramp(self, key: str, steps: Sequence[Step]) -> Json:
        """Start or replace an exposure ramp: steps of (exposure, hold_s), no hold on the last."""
        return self._send(core.set_ramp(key, steps))

    def cancel_ramp(self, key: str) -> Json:
        """Cancel the running ramp; the exposure stays where it is."""
        return self._send(core.cancel_ramp(key))

    def completion(self, key: str) -> Json:
        """The gradual completion and where it stands (404 when there is none)."""
        return self._send(core.completion(key))

    def cancel_completion(self, key: str) -> Json:
        """Cancel the running gradual completion."""
        return self._send(core.cancel_completion(key))

    def events(self, key: str, *, after: int = 0, limit: int = 100) -> Json:
        """Audit-log entries after the cursor `after`, oldest first, with `next_after` (None: no more)."""
        return self._send(core.events(key, after, limit))

    def report(self, key: str, *, since: Day | None = None, until: Day | None = None) -> Report:
        """The report, typed (the server's `Report`; NaN where the service sent null); with `since` or `until`
        (UTC days, inclusive), of the trials opened in that range."""
        return self._send(core.report(key, since, until))

    def segment_report(
        self, key: str, attribute: str, *, since: Day | None = None, until: Day | None = None
    ) -> SegmentReport:
        """The report split by a decision attribute, typed."""
        return self._send(core.segment_report(key, attribute, since, until))

    def report_json(
        self, key: str, *, segment: str | None = None, since: Day | None = None, until: Day | None = None
    ) -> Json:
        """The report as the JSON object the service sent."""
        return self._send(core.report_json(key, segment, since, until))

    def report_text(
        self, key: str, *, segment: str | None = None, since: Day | None = None, until: Day | None = None
    ) -> str:
        """The report as fixed-width text tables."""
        return self._send(core.report_text(key, segment, since, until))

    def timeseries(self, key: str, *, since: Day | None = None, until: Day | None = None) -> Json:
        """Per UTC day and arm: units, trials, exposures, rewarded and each metric's mean with its interval."""
        return self._send(core.timeseries(key, since, until))

    def timeseries_csv(self, key: str, *, since: Day | None = None, until: Day | None = None) -> str:
        """The same as CSV: one row per (day, arm, metric), with a header."""
        return self._send(core.timeseries_csv(key, since, until))

    def list_keys(self) -> Items:
        """Every API key: name, role, creation and last use (role admin)."""
        return self._send(core.list_keys())

    def create_key(self, name: str, role: str) -> Json:
        """Make an API key; the answer's `key` is shown this once."""
        return self._send(core.create_key(name, role))

    def revoke_key(self, name: str) -> Json:
        """Revoke an API key by name."""
        return self._send(core.revoke_key(name))

    def list_features(self) -> Items:
        """Every feature, by key."""
        return self._send(core.list_features())

    def feature(self, key: str) -> Json:
        """A feature with its experiments in evaluation order."""
        return self._send(core.feature(key))

    def put_feature(self, key: str, default_payload: Any, *, description: str = "") -> Json:
        """Create or replace a feature."""
        return self._send(core.put_feature(key, default_payload, description))

    def delete_feature(self, key: str) -> Json:
        """Delete a feature no active or paused experiment serves."""
        return self._send(core.delete_feature(key))


class AsyncManagement:
    """The same calls as `Management`, over an `httpx.AsyncClient`."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def _send(self, call: Call[T]) -> T:
        try:
            response = await self._http.request(
                call.method, call.path, params=call.params, content=call.content, headers=call.headers
            )
        except httpx.HTTPError as exc:
            raise unreachable(self._http.base_url, exc) from exc
        return core.answer(call, response)

    async def create(self, spec: Spec) -> Json:
        """Create a draft experiment from its fields or from a YAML, TOML or JSON file (read synchronously)."""
        return await self._send(core.create(_spec(spec)))

    async def list(self, status: Status | None = None, *, limit: int = 100, offset: int = 0) -> Items:
        """Experiments, newest first, optionally of one status (without per-arm statistics)."""
        return await self._send(core.list_experiments(status, limit, offset))

    async def get(self, key: str) -> Json:
        """An experiment: configuration, status, weights and per-arm statistics."""
        return await self._send(core.get(key))

    async def start(self, key: str) -> Json:
        """Draft or paused -> active."""
        return await self._send(core.lifecycle(key, "start"))

    async def pause(self, key: str) -> Json:
        """Active -> paused (every unit gets the control arm)."""
        return await self._send(core.lifecycle(key, "pause"))

    async def reweight(self, key: str) -> Json:
        """Recompute the weights now; returns the new weights record."""
        return await self._send(core.lifecycle(key, "reweight"))

    async def complete(self, key: str, winner: str | None = None, plan: Sequence[Step] | None = None) -> Json:
        """Complete, serving `winner` (None: the control); with a plan, shift traffic to it step by step first."""
        return await self._send(core.complete(key, winner, plan))

    async def patch(self, key: str, changes: Mapping[str, Any]) -> Json:
        """Change fields (description, exposure, targeting, ...; arms and policy while draft)."""
        return await self._send(core.patch(key, changes))

    async def set_exposure(self, key: str, exposure: float) -> Json:
        """The share of units that enter the experiment."""
        return await self._send(core.set_exposure(key, exposure))

    async def set_weights(self, key: str, weights: Mapping[str, float], *, rebalance: bool = False) -> Json:
        """Manual weights of a fixed split; `rebalance` moves stored sticky units too."""
        return await self._send(core.set_weights(key, weights, rebalance))

    async def weights_history(self, key: str, *, limit: int = 1_000) -> Items:
        """The weights history, oldest first."""
        return await self._send(core.weights_history(key, limit))

    async def ramp(self, key: str) -> Json:
        """The exposure ramp and where it stands (404 when there is none)."""
        return await self._send(core.ramp(key))

    async def set_ramp(self, key: str, steps: Sequence[Step]) -> Json:
        """Start or replace an exposure ramp: steps of (exposure, hold_s), no hold on the last."""
        return await self._send(core.set_ramp(key, steps))

    async def cancel_ramp(self, key: str) -> Json:
        """Cancel the running ramp; the exposure stays where it is."""
        return await self._send(core.cancel_ramp(key))

    async def completion(self, key: str) -> Json:
        """The gradual completion and where it stands (404 when there is none)."""
        return await self._send(core.completion(key))

    async def cancel_completion(self, key: str) -> Json:
        """Cancel the running gradual completion."""
        return await self._send(core.cancel_completion(key))

    async def events(self, key: str, *, after: int = 0, limit: int = 100) -> Json:
        """Audit-log entries after the cursor `after`, oldest first, with `next_after` (None: no more)."""
        return await self._send(core.events(key, after, limit))

    async def report(self, key: str, *, since: Day | None = None, until: Day | None = None) -> Report:
        """The report, typed (the server's `Report`; NaN where the service sent null); with `since` or `until`
        (UTC days, inclusive), of the trials opened in that range."""
        return await self._send(core.report(key, since, until))

    async def segment_report(
        self, key: str, attribute: str, *, since: Day | None = None, until: Day | None = None
    ) -> SegmentReport:
        """The report split by a decision attribute, typed."""
        return await self._send(core.segment_report(key, attribute, since, until))

    async def report_json(
        self, key: str, *, segment: str | None = None, since: Day | None = None, until: Day | None = None
    ) -> Json:
        """The report as the JSON object the service sent."""
        return await self._send(core.report_json(key, segment, since, until))

    async def report_text(
        self, key: str, *, segment: str | None = None, since: Day | None = None, until: Day | None = None
    ) -> str:
        """The report as fixed-width text tables."""
        return await self._send(core.report_text(key, segment, since, until))

    async def timeseries(self, key: str, *, since: Day | None = None, until: Day | None = None) -> Json:
        """Per UTC day and arm: units, trials, exposures, rewarded and each metric's mean with its interval."""
        return await self._send(core.timeseries(key, since, until))

    async def timeseries_csv(self, key: str, *, since: Day | None = None, until: Day | None = None) -> str:
        """The same as CSV: one row per (day, arm, metric), with a header."""
        return await self._send(core.timeseries_csv(key, since, until))

    async def list_keys(self) -> Items:
        """Every API key: name, role, creation and last use (role admin)."""
        return await self._send(core.list_keys())

    async def create_key(self, name: str, role: str) -> Json:
        """Make an API key; the answer's `key` is shown this once."""
        return await self._send(core.create_key(name, role))

    async def revoke_key(self, name: str) -> Json:
        """Revoke an API key by name."""
        return await self._send(core.revoke_key(name))

    async def list_features(self) -> Items:
        """Every feature, by key."""
        return await self._send(core.list_features())

    async def feature(self, key: str) -> Json:
        """A feature with its experiments in evaluation order."""
        return await self._send(core.feature(key))

    async def put_feature(self, key: str, default_payload: Any, *, description: str = "") -> Json:
        """Create or replace a feature."""
        return await self._send(core.put_feature(key, default_payload, description))

    async def delete_feature(self, key: str) -> Json:
        """Delete a feature no active or paused experiment serves."""
        return await self._send(core.delete_feature(key))
