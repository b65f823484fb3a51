"""Service settings: one frozen value, built from an injected environment mapping."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Annotated, Literal, cast

import msgspec
import msgspec.inspect as mi
from msgspec import Meta

from bandit_service.core.fields import WebhookUrl

__all__ = ["API_KEY_VARIABLE", "ENV_PREFIX", "URL_VARIABLE", "Settings"]

ENV_PREFIX = "BANDIT_"
API_KEY_VARIABLE = "BANDIT_API_KEY"
URL_VARIABLE = "BANDIT_URL"
"""The key and the service URL the command line's operator commands use: a client's variables, not settings."""
CLIENT_VARIABLES = frozenset({API_KEY_VARIABLE, URL_VARIABLE})
_BOOL_WORDS = {"on": "true", "yes": "true", "off": "false", "no": "false"}


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Everything the service can be configured with; each field is read from `BANDIT_<FIELD>`."""

    database_url: str = "sqlite:///bandit.db"
    """SQLAlchemy URL. The default is a SQLite file in the working directory."""
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "FULL"
    """FULL fsyncs the WAL on every commit, so an acknowledged write survives a power cut, not only a
    crash of the process; group commit pays that fsync once per batch instead of once per request."""
    sqlite_busy_timeout_ms: Annotated[int, Meta(ge=0, le=600_000)] = 5_000
    """How long a writer waits for another process's write lock (two uvicorn workers on one file, or any
    program holding the file): first for the workers' writer lock, then for SQLite's own. A write that
    still finds it held is answered 503 with Retry-After, so a stuck process never makes requests hang."""
    sqlite_speedups: bool = True
    """Run SQLite's hot paths on the raw driver with a pinned write connection (storage/sqlite_speedups.py);
    false runs SQLite through SQLAlchemy's public API only, as every other database runs."""
    commit_max_batch: Annotated[int, Meta(ge=1, le=100_000)] = 512
    """Most writes that share one transaction."""
    commit_linger_ms: Annotated[float, Meta(ge=0, le=1_000)] = 0.0
    """Extra wait for more writes before committing; 0 batches what queued during the last commit."""
    cache_ttl_s: Annotated[float, Meta(ge=0, le=3_600)] = 1.0
    """The staleness bound: a process answers from its cached experiments only if it asked the database
    for changes (made by any process) within this many seconds, so every worker and replica sees a
    change within it, after idle as under load. 0 checks before every decision."""
    scheduler_enabled: bool = True
    scheduler_tick_s: Annotated[float, Meta(gt=0, le=3_600)] = 5.0
    """How often the scheduler looks for due reweights and closed reward windows."""
    expire_chunk: Annotated[int, Meta(ge=1, le=100_000)] = 2_000
    """Pending decisions expired per transaction."""
    max_body_bytes: Annotated[int, Meta(ge=1_024, le=100_000_000)] = 1_000_000
    """Largest request body accepted (larger: 413)."""
    max_json_depth: Annotated[int, Meta(ge=4, le=256)] = 32
    """Deepest JSON nesting accepted in a request body (deeper: 422, never a RecursionError)."""
    fast_body: bool = True
    """Read request bodies straight from the ASGI scope (`http/fast_body.py`) instead of through
    Litestar's `Request.body()`: the same behaviour, less work per request on the decision path."""
    auth: bool = True
    """Require an API key (`Authorization: Bearer <key>`) on every endpoint but the health checks.
    Off (`--no-auth`, BANDIT_AUTH=off) is for local play: anyone who reaches the port may do anything."""
    admin_key: Annotated[str, Meta(min_length=32, max_length=200, pattern=r"^[A-Za-z0-9_\-.~]+$")] | None = None
    """The first admin key, for automated installs (a secret in compose or Kubernetes): used only when the
    database holds no key yet. Without it, the first start creates a random admin key and prints it once."""
    metrics: bool = True
    """Serve GET /metrics (Prometheus text, role `read`) and time every request; off removes the endpoint,
    the request hook and every metric update, so their cost can be measured (benchmarks/metrics_overhead.py)."""
    log_format: Literal["text", "json"] = "text"
    """`json`: every log line is a JSON object, and every request gets one line with its request id (echoed
    in the X-Request-Id header) and, on a decision, the decision id; `text`: uvicorn's usual lines."""
    rate_limit_traffic_per_s: Annotated[float, Meta(ge=0, le=1_000_000)] = 5_000.0
    """Decision and reward requests per second per API key (per client address when auth is off), in each
    process: with N workers or replicas a key may send N times this. Beyond it: 429 with Retry-After. 0: no limit."""
    rate_limit_traffic_burst: Annotated[int, Meta(ge=1, le=10_000_000)] = 10_000
    """Decision and reward requests a key may send at once, above the steady rate."""
    rate_limit_operator_per_s: Annotated[float, Meta(ge=0, le=1_000_000)] = 20.0
    """Requests per second per key to the endpoints that need `read`, `operate` or `admin` (experiments,
    reports, events, keys), in each process, like `rate_limit_traffic_per_s`. 0: no limit."""
    rate_limit_operator_burst: Annotated[int, Meta(ge=1, le=10_000_000)] = 40
    """Operator and read requests a key may send at once, above the steady rate."""
    max_connections: Annotated[int, Meta(ge=0, le=1_000_000)] = 1_000
    """Open connections per `serve` process (lowered to fit its open-file limit). A new connection beyond it
    closes the one that has waited longest for a request; if all are busy, it gets 503 with Retry-After. 0: none."""
    read_timeout_s: Annotated[float, Meta(ge=0, le=3_600)] = 10.0
    """Seconds a client has to send a whole request (head and body) after connecting or after its previous
    response; a connection that takes longer is closed, so stalled clients cannot hold connections. 0: none."""
    log_repeat_lines: Annotated[int, Meta(ge=0, le=1_000_000)] = 10
    """Identical warning or error lines (same logger, level and message template) written per
    `log_repeat_interval_s`; the rest are counted and summed up in one line. 0: no limit."""
    log_repeat_interval_s: Annotated[float, Meta(gt=0, le=86_400)] = 10.0
    """The window of `log_repeat_lines`."""
    postgres_lock_timeout_ms: Annotated[int, Meta(ge=0, le=600_000)] = 5_000
    """PostgreSQL's `lock_timeout` on the service's connections: how long a read or write waits for a lock
    another connection holds (a `LOCK TABLE`, a long migration) before the request is answered 503 with
    Retry-After. 0 waits forever (PostgreSQL's default), which lets such a lock hang every request."""
    ready_timeout_ms: Annotated[int, Meta(ge=10, le=60_000)] = 2_000
    """GET /readyz answers 503 when its probe write has not committed within this many milliseconds."""
    webhook_url: WebhookUrl | None = None
    """The global webhook: an http(s) URL that receives every experiment's lifecycle events and automatic
    actions (each experiment's own `webhook_url` receives its own too). Needs `webhook_secret`."""
    webhook_secret: Annotated[str, Meta(min_length=16, max_length=200, pattern=r"^\S+$")] | None = None
    """The key every webhook event is signed with (HMAC-SHA256, header `X-Bandit-Signature`); receivers verify
    with the same value. Without it the service refuses to start with `webhook_url` set, and refuses an
    experiment's `webhook_url` (422): it never sends an unsigned event nor makes up a key."""

    def __post_init__(self) -> None:
        """Refuse a webhook URL without a signing secret: receivers could not tell our events from forgeries."""
        if self.webhook_url is not None and self.webhook_secret is None:
            raise ValueError(
                "BANDIT_WEBHOOK_URL is set but BANDIT_WEBHOOK_SECRET is not: every webhook event is signed, and"
                " receivers verify it with that secret; set one (16+ characters, e.g. `openssl rand -hex 32`)"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Settings from `BANDIT_*` variables in `env`; unknown `BANDIT_*` names are refused."""
        fields = set(cls.__struct_fields__)
        values: dict[str, str] = {}
        for name, value in env.items():
            if not name.startswith(ENV_PREFIX) or name in CLIENT_VARIABLES:
                continue
            field = name[len(ENV_PREFIX) :].lower()
            if field not in fields:
                known = sorted(f"{ENV_PREFIX}{f.upper()}" for f in fields)
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise ValueError(f"{name}: unknown setting{hint} (known: {', '.join(known)})")
            values[field] = _BOOL_WORDS.get(value.lower(), value) if field in _BOOL_FIELDS else value
        try:
            return msgspec.convert(values, cls, strict=False)
        except msgspec.ValidationError as exc:
            match = re.search(r"^(.*?)(?: - at )?`\$\.(\w+)`", str(exc))
            if match is None:  # a rule across settings (__post_init__): its message names the variables
                raise ValueError(str(exc)) from exc
            # The value is not echoed: it may be a key, a secret or a URL with a password.
            name = f"{ENV_PREFIX}{match.group(2).upper()}"
            allowed = _allowed(_FIELD_TYPES[match.group(2)])
            raise ValueError(f"{name}: {match.group(1)}; allowed: {allowed}") from exc


def _allowed(info: mi.Type) -> str:
    """What a setting may hold, in words, for the one-line error of a bad value."""
    match info:
        case mi.LiteralType(values=values):
            return "one of " + ", ".join(map(str, values))
        case mi.BoolType():
            return "true or false (or on/off, yes/no)"
        case mi.IntType() | mi.FloatType():
            limits = ((">", info.gt), (">=", info.ge), ("<", info.lt), ("<=", info.le))
            bounds = [f"{op} {bound:.15g}" for op, bound in limits if bound is not None]
            kind = "a whole number" if isinstance(info, mi.IntType) else "a number"
            return " and ".join([f"{kind} {bounds[0]}", *bounds[1:]]) if bounds else kind
        case mi.StrType(min_length=low, max_length=high, pattern=pattern):
            size = f" of {low or 0}-{high} characters" if high else (f" of {low}+ characters" if low else "")
            return f"text{size}" + (f" matching {pattern}" if pattern else "")
        case mi.Metadata(type=inner):
            return _allowed(inner)
        case mi.UnionType(types=types):
            return " or ".join(_allowed(t) for t in types if not isinstance(t, mi.NoneType)) + " (or unset)"
        case _:
            return "see the settings in the README"


_BOOL_FIELDS = frozenset(field.name for field in msgspec.structs.fields(Settings) if field.type is bool)
_FIELD_TYPES = {field.name: field.type for field in cast(mi.StructType, mi.type_info(Settings)).fields}
