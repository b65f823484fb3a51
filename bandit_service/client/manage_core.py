"""The sans-I/O core of the management calls: the request each call sends and how its answer is read.

`Management` (sync) and `AsyncManagement` (async) only send a `Call` and hand the response to
`answer`; everything else (paths, bodies, problem details, decoding) lives here, once. The client
package must not import numpy, so the typed report's Structs are imported inside `read_report`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar
from urllib.parse import quote

import httpx
import msgspec
import msgspec.inspect as mi

if TYPE_CHECKING:
    from bandit_service.core.reporting.values import Report, SegmentReport

__all__ = [
    "EXPERIMENTS",
    "Action",
    "BanditError",
    "Call",
    "Day",
    "Json",
    "Status",
    "Step",
    "answer",
    "cancel_completion",
    "cancel_ramp",
    "complete",
    "completion",
    "create",
    "create_key",
    "delete_feature",
    "events",
    "feature",
    "get",
    "lifecycle",
    "list_experiments",
    "list_features",
    "list_keys",
    "nan_for_null",
    "patch",
    "problem_error",
    "put_feature",
    "ramp",
    "read_json",
    "read_member",
    "read_object",
    "read_report",
    "read_text",
    "report",
    "report_json",
    "report_text",
    "revoke_key",
    "segment",
    "segment_report",
    "set_exposure",
    "set_ramp",
    "set_weights",
    "steps",
    "timeseries",
    "timeseries_csv",
    "unreachable",
    "weights_history",
]

T = TypeVar("T")
Json = dict[str, Any]
"""A JSON object as the service sent it (an experiment, a ramp, a key, ...)."""
Step = Mapping[str, Any] | tuple[float, int | None]
"""One step of a ramp or a completion plan: a mapping as the API takes it, or (value, hold_s)."""
Status = Literal["draft", "active", "paused", "completed"]
Action = Literal["start", "pause", "reweight"]
Day = dt.date | str
"""A UTC day for a report's range: a date, or its ISO text (YYYY-MM-DD; the service checks it)."""


class BanditError(Exception):
    """The service refused a call (its problem detail), could not be reached, or the input was unreadable.

    `str()` is one readable line: `404: no experiment with key 'x' (field: key)`.
    """

    def __init__(
        self, message: str, status: int | None = None, field: str | None = None, *, problem: Json | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field
        self.problem: Json = dict(problem or {})
        """The whole problem detail (type, title, status, detail, field, ...), when the service sent one."""

    def __str__(self) -> str:
        line = " ".join(self.message.split())  # one line, whatever the detail held
        if self.field:
            line += f" (field: {self.field})"
        return line if self.status is None else f"{self.status}: {line}"


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request and the reader of its (successful) answer."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: Mapping[str, str | int] | None = None
    content: bytes | None = None

    @property
    def headers(self) -> dict[str, str] | None:
        """The content type of the body, if any (msgspec encodes it: datetimes from YAML or TOML included)."""
        return None if self.content is None else {"content-type": "application/json"}

    @classmethod
    def of(
        cls,
        method: str,
        path: str,
        read: Callable[[httpx.Response], T],
        *,
        body: Any = None,
        params: Mapping[str, str | int | None] | None = None,
    ) -> Call[T]:
        """A call with a JSON body (None: no body) and the query parameters that are not None."""
        kept = {k: v for k, v in (params or {}).items() if v is not None}
        content = None if body is None else msgspec.json.encode(body)
        return cls(method, path, read, params=kept or None, content=content)


def segment(value: str) -> str:
    """A key as a path segment: quoted (`?` and `#` stay in it); a slash is refused, servers decode it."""
    if "/" in value:
        raise BanditError(f"{value!r} is not a key: keys hold no '/'", field="key")
    return quote(value, safe="")


def unreachable(base_url: httpx.URL | str, exc: httpx.HTTPError) -> BanditError:
    """The error of a call that got no answer (refused, reset, timed out)."""
    reason = str(exc) or type(exc).__name__
    return BanditError(f"cannot reach the service at {base_url}: {reason}")


def problem_error(response: httpx.Response) -> BanditError:
    """The error of a refused call, from its RFC 9457 problem detail (or its text when it has none)."""
    try:
        problem = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        problem = None
    if isinstance(problem, dict) and isinstance(problem.get("detail"), str):
        field = problem.get("field")
        return BanditError(
            problem["detail"], response.status_code, field if isinstance(field, str) else None, problem=problem
        )
    text = " ".join(response.text.split())[:200] or response.reason_phrase
    return BanditError(text, response.status_code)


def answer(call: Call[T], response: httpx.Response) -> T:
    """The call's result, or the BanditError of a refusal (any status outside 2xx)."""
    if not 200 <= response.status_code < 300:
        raise problem_error(response)
    return call.read(response)


def read_json(response: httpx.Response) -> Any:
    """The decoded JSON body."""
    try:
        return msgspec.json.decode(response.content)
    except msgspec.DecodeError as exc:
        raise BanditError(f"the service answered {response.status_code} with a body that is not JSON ({exc})") from exc


def read_member(name: str) -> Callable[[httpx.Response], Any]:
    """A reader of one member of the JSON object answered (a list's `experiments`, ...)."""

    def read(response: httpx.Response) -> Any:
        body = read_json(response)
        if not isinstance(body, dict) or name not in body:
            raise BanditError(f"the service's answer has no {name!r}: is the URL a bandit service?")
        return body[name]

    return read


def read_object(response: httpx.Response) -> Json:
    """The JSON object answered."""
    body = read_json(response)
    if not isinstance(body, dict):
        raise BanditError(f"the service answered a JSON {type(body).__name__}, not an object")
    return body


def read_text(response: httpx.Response) -> str:
    """The text answered."""
    return response.text


def nan_for_null(value: Any, info: mi.Type) -> Any:
    """`value` with NaN where `info` wants a float and JSON has null (the service encodes NaN as null)."""
    match info:
        case mi.FloatType():
            return math.nan if value is None else value
        case mi.Metadata(type=inner):
            return nan_for_null(value, inner)
        case mi.StructType(fields=fields) if isinstance(value, dict):
            types = {f.encode_name: f.type for f in fields}
            return {k: nan_for_null(v, types[k]) if k in types else v for k, v in value.items()}
        case mi.TupleType(item_types=items) if isinstance(value, list):
            return [nan_for_null(v, t) for v, t in zip(value, items, strict=False)] + value[len(items) :]
        case mi.ListType(item_type=item) | mi.VarTupleType(item_type=item) if isinstance(value, list):
            return [nan_for_null(v, item) for v in value]
        case mi.DictType(value_type=item) if isinstance(value, dict):
            return {k: nan_for_null(v, item) for k, v in value.items()}
        case mi.UnionType(types=types) if value is not None:
            # `float | None` keeps its null; a union of one value type and None recurses into it.
            values = [t for t in types if not isinstance(t, mi.NoneType)]
            return nan_for_null(value, values[0]) if len(values) == 1 else value
        case _:
            return value


def read_report(kind: type[T]) -> Callable[[httpx.Response], T]:
    """A reader that decodes the report into `kind` (the server's `Report` or `SegmentReport`)."""

    def read(response: httpx.Response) -> T:
        data = nan_for_null(read_json(response), mi.type_info(kind))
        try:
            return msgspec.convert(data, kind)
        except msgspec.ValidationError as exc:
            raise BanditError(f"the report does not match this client's {kind.__name__}: {exc}") from exc

    return read


def steps(values: Sequence[Step], name: str) -> list[Json]:
    """Ramp or plan steps as the API takes them: `{name: value, "hold_s": seconds or None}`."""
    out = []
    for step in values:
        if isinstance(step, Mapping):
            out.append(dict(step))
        else:
            value, hold_s = step
            out.append({name: value, "hold_s": hold_s})
    return out


# The calls, one builder each: the path and body the routes in bandit_service/http/routes/ take.
EXPERIMENTS = "/v1/experiments"


def _experiment(key: str, *rest: str) -> str:
    return "/".join((EXPERIMENTS, segment(key), *rest))


def create(spec: Mapping[str, Any]) -> Call[Json]:
    """POST /v1/experiments: a draft experiment from its spec."""
    return Call.of("POST", EXPERIMENTS, read_object, body=spec)


def list_experiments(status: Status | None, limit: int, offset: int) -> Call[list[Json]]:
    """GET /v1/experiments: newest first, optionally of one status."""
    params = {"status": status, "limit": limit, "offset": offset}
    return Call.of("GET", EXPERIMENTS, read_member("experiments"), params=params)


def get(key: str) -> Call[Json]:
    """GET /v1/experiments/{key}: configuration, status, weights and per-arm statistics."""
    return Call.of("GET", _experiment(key), read_object)


def lifecycle(key: str, action: Action) -> Call[Json]:
    """POST .../start, .../pause or .../reweight."""
    return Call.of("POST", _experiment(key, action), read_object)


def complete(key: str, winner: str | None, plan: Sequence[Step] | None) -> Call[Json]:
    """POST .../complete: the winner (None: the control), optionally shifted to step by step."""
    body: Json = {"winner": winner}
    if plan is not None:
        body["plan"] = steps(plan, "share")
    return Call.of("POST", _experiment(key, "complete"), read_object, body=body)


def patch(key: str, changes: Mapping[str, Any]) -> Call[Json]:
    """PATCH /v1/experiments/{key}."""
    return Call.of("PATCH", _experiment(key), read_object, body=changes)


def set_exposure(key: str, exposure: float) -> Call[Json]:
    """PUT .../exposure."""
    return Call.of("PUT", _experiment(key, "exposure"), read_object, body={"exposure": exposure})


def set_weights(key: str, weights: Mapping[str, float], rebalance: bool) -> Call[Json]:
    """PUT .../weights: manual weights of a fixed split (rebalance: move stored units too)."""
    body = {"weights": dict(weights), "rebalance": rebalance}
    return Call.of("PUT", _experiment(key, "weights"), read_object, body=body)


def weights_history(key: str, limit: int) -> Call[list[Json]]:
    """GET .../weights: the weights history, oldest first."""
    return Call.of("GET", _experiment(key, "weights"), read_member("history"), params={"limit": limit})


def ramp(key: str) -> Call[Json]:
    """GET .../ramp."""
    return Call.of("GET", _experiment(key, "ramp"), read_object)


def set_ramp(key: str, plan: Sequence[Step]) -> Call[Json]:
    """PUT .../ramp: exposure steps, each but the last held `hold_s` seconds."""
    return Call.of("PUT", _experiment(key, "ramp"), read_object, body={"steps": steps(plan, "exposure")})


def cancel_ramp(key: str) -> Call[Json]:
    """DELETE .../ramp."""
    return Call.of("DELETE", _experiment(key, "ramp"), read_object)


def completion(key: str) -> Call[Json]:
    """GET .../completion: the gradual completion and where it stands."""
    return Call.of("GET", _experiment(key, "completion"), read_object)


def cancel_completion(key: str) -> Call[Json]:
    """DELETE .../completion."""
    return Call.of("DELETE", _experiment(key, "completion"), read_object)


def events(key: str, after: int, limit: int) -> Call[Json]:
    """GET .../events: audit-log entries after the cursor, oldest first, and the next cursor."""
    return Call.of("GET", _experiment(key, "events"), read_object, params={"after": after, "limit": limit})


def _window(since: Day | None, until: Day | None) -> dict[str, str | None]:
    """The `from` and `to` query parameters of a range of UTC days (None: open)."""
    return {name: d.isoformat() if isinstance(d, dt.date) else d for name, d in (("from", since), ("to", until))}


def report(key: str, since: Day | None = None, until: Day | None = None) -> Call[Report]:
    """GET .../report (of the trials opened from `since` to `until`, inclusive), decoded into the server's `Report`
    (imported here: it needs numpy)."""
    from bandit_service.core.reporting.values import Report

    return Call.of("GET", _experiment(key, "report"), read_report(Report), params=_window(since, until))


def segment_report(key: str, attribute: str, since: Day | None = None, until: Day | None = None) -> Call[SegmentReport]:
    """GET .../report?segment=: every figure split by a decision attribute, decoded."""
    from bandit_service.core.reporting.values import SegmentReport

    path = _experiment(key, "report")
    params = {"segment": attribute, **_window(since, until)}
    return Call.of("GET", path, read_report(SegmentReport), params=params)


def report_json(key: str, segment: str | None, since: Day | None = None, until: Day | None = None) -> Call[Json]:
    """GET .../report as the JSON object the service sent (NaN as null)."""
    params = {"segment": segment, **_window(since, until)}
    return Call.of("GET", _experiment(key, "report"), read_object, params=params)


def report_text(key: str, segment: str | None, since: Day | None = None, until: Day | None = None) -> Call[str]:
    """GET .../report?format=text: the fixed-width tables."""
    params = {"format": "text", "segment": segment, **_window(since, until)}
    return Call.of("GET", _experiment(key, "report"), read_text, params=params)


def timeseries(key: str, since: Day | None = None, until: Day | None = None) -> Call[Json]:
    """GET .../timeseries: per UTC day and arm, traffic and means (NaN as null)."""
    return Call.of("GET", _experiment(key, "timeseries"), read_object, params=_window(since, until))


def timeseries_csv(key: str, since: Day | None = None, until: Day | None = None) -> Call[str]:
    """GET .../timeseries?format=csv: one row per (day, arm, metric), with a header."""
    params = {"format": "csv", **_window(since, until)}
    return Call.of("GET", _experiment(key, "timeseries"), read_text, params=params)


def list_keys() -> Call[list[Json]]:
    """GET /v1/keys (role admin)."""
    return Call.of("GET", "/v1/keys", read_member("keys"))


def create_key(name: str, role: str) -> Call[Json]:
    """POST /v1/keys: the answer holds the key itself, this once."""
    return Call.of("POST", "/v1/keys", read_object, body={"name": name, "role": role})


def revoke_key(name: str) -> Call[Json]:
    """DELETE /v1/keys/{name}."""
    return Call.of("DELETE", f"/v1/keys/{segment(name)}", read_object)


def list_features() -> Call[list[Json]]:
    """GET /v1/features."""
    return Call.of("GET", "/v1/features", read_member("features"))


def feature(key: str) -> Call[Json]:
    """GET /v1/features/{key}: with its experiments in evaluation order."""
    return Call.of("GET", f"/v1/features/{segment(key)}", read_object)


def put_feature(key: str, default_payload: Any, description: str) -> Call[Json]:
    """PUT /v1/features/{key}: create or replace."""
    body = {"description": description, "default_payload": default_payload}
    return Call.of("PUT", f"/v1/features/{segment(key)}", read_object, body=body)


def delete_feature(key: str) -> Call[Json]:
    """DELETE /v1/features/{key}."""
    return Call.of("DELETE", f"/v1/features/{segment(key)}", read_object)
