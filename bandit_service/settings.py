"""Service settings: one frozen value, built from an injected environment mapping."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

__all__ = ["ENV_PREFIX", "Settings"]

ENV_PREFIX = "BANDIT_"


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Everything the service can be configured with; each field is read from `BANDIT_<FIELD>`."""

    database_url: str = "sqlite:///bandit.db"
    """SQLAlchemy URL. The default is a SQLite file in the working directory."""
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "FULL"
    """FULL fsyncs the WAL on every commit, so an acknowledged write survives a power cut, not only a
    crash of the process; group commit pays that fsync once per batch instead of once per request."""
    sqlite_busy_timeout_ms: Annotated[int, Meta(ge=0, le=600_000)] = 5_000
    """How long a writer waits for another process's write lock (two uvicorn workers on one file)."""
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

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Settings from `BANDIT_*` variables in `env`; unknown `BANDIT_*` names are refused."""
        fields = set(cls.__struct_fields__)
        values: dict[str, str] = {}
        for name, value in env.items():
            if not name.startswith(ENV_PREFIX):
                continue
            field = name[len(ENV_PREFIX) :].lower()
            if field not in fields:
                raise ValueError(f"{name}: unknown setting (known: {', '.join(sorted(fields))})")
            values[field] = value
        try:
            return msgspec.convert(values, cls, strict=False)
        except msgspec.ValidationError as exc:
            match = re.search(r"`\$\.(\w+)`", str(exc))
            name = f"{ENV_PREFIX}{match.group(1).upper()}" if match else "environment"
            raise ValueError(f"{name}: {exc}") from exc
