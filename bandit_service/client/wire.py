"""The client's side of the wire, without I/O: request bodies, and how each answer is read.

Rules for answers to POST /v1/decisions (the app always gets a usable decision back):
- 200: the service's decision.
- 404 naming the experiment or feature: an unknown key; the fallback, or `BanditError` with
  `on_unknown="raise"`.
- 429, 5xx, a network error or a timeout: a service fault; the fallback.
- any other 4xx (a bad unit or attribute, a missing or wrong API key): the app's own mistake, but
  one that must not take the app down either; the fallback, logged as an error (once per key and
  status) and kept in `stats.last_error`. Attributes are checked in the client first, by the
  service's own types (core.fields), so a local decision refuses them the same way.
- a malformed call (both or neither of experiment and feature, a fallback of the wrong type)
  raises ValueError or TypeError at once: it would fail every time, not only in an outage.

Rules for answers to the batch endpoints (POST /v1/rewards/batch, POST /v1/decisions/log):
- 2xx with per-item results: each item settles on its own status (2xx done, 429 or 5xx retried,
  any other 4xx refused), so one refused item never drops the others.
- 400, 413, 415, 422 for the whole batch: the body was refused as a whole; the batch is split
  until the item at fault stands alone (a refused batch of one is refused).
- anything else (429, 5xx, 401, 403, an unknown route, a network error): retried with backoff;
  idempotency keys and client-made decision ids make a repeated batch count once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Literal

import httpx
import msgspec

from bandit_service.client.decisions import ClientDecision, Fallback
from bandit_service.core.definitions import DecisionLogIn, LoggedDecisionIn
from bandit_service.core.fields import DecisionId, Finite, IdempotencyKey, Key, Metrics, UnitId

__all__ = [
    "DECISIONS_PATH",
    "DECISION_LOG_PATH",
    "JSON_HEADERS",
    "REWARDS_PATH",
    "Answer",
    "BatchVerdict",
    "HttpCall",
    "ItemOutcome",
    "Outcome",
    "Refusal",
    "RewardItem",
    "RewardTarget",
    "batch_verdict",
    "decision_body",
    "fallback_decision",
    "log_body",
    "read_decision",
    "read_items",
    "retryable",
    "reward_body",
    "reward_item",
]

DECISIONS_PATH = "/v1/decisions"
REWARDS_PATH = "/v1/rewards/batch"
DECISION_LOG_PATH = "/v1/decisions/log"
JSON_HEADERS = {"content-type": "application/json"}

RewardTarget = ClientDecision | tuple[str, str] | str | None
"""What a reward is for: a decision, (experiment, unit) for a unit's trial, a decision id, or None (a fallback's)."""


class HttpCall(msgspec.Struct, frozen=True):
    """A request the core wants sent (a POST with a JSON body); the sync or async client sends it."""

    path: str
    body: bytes
    timeout_s: float


class Answer(msgspec.Struct, frozen=True):
    """An HTTP answer as the core reads it (status, headers, body), whichever client got it."""

    status: int
    headers: Mapping[str, str]  # case-insensitive (httpx.Headers)
    content: bytes


Outcome = Answer | httpx.HTTPError
"""What became of an `HttpCall`: an answer, or the network error that stopped it."""


class RewardItem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One queued reward, as sent in POST /v1/rewards/batch; its idempotency key is made when it is queued."""

    decision_id: str | None = None
    experiment: str | None = None
    unit: str | None = None
    reward: float
    metrics: dict[str, float] = msgspec.field(default_factory=dict)
    idempotency_key: str


class _CheckedReward(msgspec.Struct, frozen=True, kw_only=True):
    """The service's constraints on a reward item (core.fields), checked before it is queued."""

    decision_id: DecisionId | None = None
    experiment: Key | None = None
    unit: UnitId | None = None
    reward: Finite
    metrics: Metrics
    idempotency_key: IdempotencyKey


def reward_item(
    target: RewardTarget, value: float, metrics: Mapping[str, float] | None, idempotency_key: str | None
) -> RewardItem | None:
    """The reward to queue, or None when there is nothing to send (a fallback decision, or one outside the experiment).

    A malformed reward (not a finite number, a bad metric name, a target of the wrong type) raises
    TypeError or ValueError here, at the line that made it, instead of being refused later.
    """
    by: dict[str, Any]
    match target:
        case ClientDecision(source="fallback") | None:
            return None
        case ClientDecision(in_experiment=False):
            return None
        case ClientDecision(source="local", trial="unit", experiment=str(experiment), unit=str(unit)):
            by = {"experiment": experiment, "unit": unit}
        case ClientDecision(decision_id=str(decision_id)):
            by = {"decision_id": decision_id}
        case ClientDecision():
            return None  # in the experiment with no decision id: nothing the service could attribute it to
        case (str(experiment), str(unit)):
            by = {"experiment": experiment, "unit": unit}
        case str(decision_id):
            by = {"decision_id": decision_id}
        case _:
            raise TypeError(
                f"reward: give a ClientDecision, (experiment, unit) or a decision id, got {type(target).__name__}"
            )
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"reward: the value must be a number, got {type(value).__name__}")
    fields = {
        **by,
        "reward": float(value),
        "metrics": dict(metrics or {}),
        "idempotency_key": idempotency_key if idempotency_key is not None else uuid.uuid4().hex,
    }
    try:
        checked = msgspec.convert(fields, _CheckedReward)
    except msgspec.ValidationError as exc:
        raise ValueError(f"reward: {exc}") from exc
    return RewardItem(**msgspec.structs.asdict(checked))


def reward_body(items: list[RewardItem]) -> bytes:
    """Body of POST /v1/rewards/batch."""
    return msgspec.json.encode(items)


def log_body(items: list[LoggedDecisionIn]) -> bytes:
    """Body of POST /v1/decisions/log."""
    return msgspec.json.encode(DecisionLogIn(decisions=items))


def decision_body(
    experiment: str | None, feature: str | None, unit: str | None, attributes: Mapping[str, Any] | None
) -> bytes:
    """Body of POST /v1/decisions."""
    body: dict[str, Any] = {"experiment": experiment} if experiment is not None else {"feature": feature}
    if unit is not None:
        body["unit"] = unit
    if attributes:
        body["attributes"] = dict(attributes)
    return msgspec.json.encode(body)


class _DecisionOut(msgspec.Struct, frozen=True, kw_only=True):
    """The service's DecisionOut, read leniently (a newer service may add fields)."""

    decision_id: str
    experiment: str | None
    arm: str | None
    payload: Any = None
    propensity: float
    weights_version: int
    in_experiment: bool
    feature: str | None = None


class Refusal(msgspec.Struct, frozen=True, kw_only=True):
    """Why the service gave no decision: `unknown` (404 on the key), `fault` (its trouble) or `refused` (the app's)."""

    kind: Literal["unknown", "fault", "refused"]
    status: int
    detail: str
    field: str | None = None
    problem: dict[str, Any] = msgspec.field(default_factory=dict)


def read_decision(answer: Answer, unit: str | None) -> ClientDecision | Refusal:
    """The service's decision, or why there is none (see the module's rules)."""
    if answer.status == 200:
        try:
            out = msgspec.json.decode(answer.content, type=_DecisionOut)
        except msgspec.DecodeError as exc:
            return Refusal(kind="fault", status=200, detail=f"unreadable decision: {exc}")
        return ClientDecision(
            experiment=out.experiment,
            feature=out.feature,
            unit=unit,
            arm=out.arm,
            payload=out.payload,
            decision_id=out.decision_id,
            propensity=out.propensity,
            weights_version=out.weights_version,
            in_experiment=out.in_experiment,
            source="service",
        )
    problem = _problem(answer.content)
    detail = str(problem.get("detail") or answer.content[:200].decode(errors="replace") or f"HTTP {answer.status}")
    field = problem.get("field")
    field = field if isinstance(field, str) else None
    kind: Literal["unknown", "fault", "refused"]
    if answer.status == 404 and field in ("experiment", "feature"):
        kind = "unknown"
    elif answer.status == 429 or answer.status >= 500 or answer.status == 404:  # 404 without a key: a wrong URL
        kind = "fault"
    else:
        kind = "refused"
    return Refusal(kind=kind, status=answer.status, detail=detail, field=field, problem=problem)


def _problem(content: bytes) -> dict[str, Any]:
    try:
        problem = msgspec.json.decode(content)
    except msgspec.DecodeError:
        return {}
    return problem if isinstance(problem, dict) else {}


def fallback_decision(
    fallback: Fallback, experiment: str | None, feature: str | None, unit: str | None
) -> ClientDecision:
    """The decision an app gets when the service cannot decide: the fallback's arm and payload."""
    return ClientDecision(
        experiment=experiment,
        feature=feature,
        unit=unit,
        arm=fallback.arm,
        payload=fallback.payload,
        source="fallback",
    )


BatchVerdict = Literal["items", "split", "retry"]

_SPLIT = frozenset({400, 413, 415, 422})
"""Statuses that refuse a batch's body as a whole: a smaller batch can isolate the item at fault."""


def batch_verdict(status: int) -> BatchVerdict:
    """What to do with a batch's answer: read its items, split it, or send it again later."""
    if 200 <= status < 300:
        return "items"
    return "split" if status in _SPLIT else "retry"


class ItemOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """One item's result in a batch answer (rewards and decision logs alike)."""

    status: int
    problem: dict[str, Any] | None = None
    contradicts: bool = False


class _Results(msgspec.Struct, frozen=True):
    results: list[ItemOutcome]


def read_items(answer: Answer, count: int) -> list[ItemOutcome] | None:
    """The per-item results of a batch of `count`, or None if the answer does not hold them."""
    try:
        results = msgspec.json.decode(answer.content, type=_Results).results
    except msgspec.DecodeError:
        return None
    return results if len(results) == count else None


def retryable(status: int) -> bool:
    """An item (or a request) the service may take later: rate limited or its own trouble."""
    return status == 429 or status >= 500
