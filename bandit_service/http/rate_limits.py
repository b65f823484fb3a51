"""Per-caller rate limits: a token bucket per (caller, group), answered with 429 and `Retry-After`.

Two groups, each with its own rate and burst: `traffic` (the handlers that need the `decide`
role: decisions and rewards) and `operator` (those that need `read`, `operate` or `admin`).
Public handlers (health checks, metrics, the API description) are never limited. The caller is
the API key's name that the auth middleware left in `scope["user"]`; an anonymous caller
(authentication off, or no principal at all) is keyed by its client address instead, so one
noisy client does not use up everyone's budget.

The buckets live in the process: with N workers or replicas a caller may send up to N times
the configured rate in all. They run on the injected `Clock.monotonic`, so tests with a fake
clock are deterministic.

Litestar's `RateLimitConfig` was considered and not used: it has one rate per middleware, a
window of whole seconds on the wall clock it reads itself, and it keeps a timestamp per request
(thousands per key at the traffic rate). The `limits` package has no token bucket and reads its
own clock too. A token bucket is a few lines, so it is here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from litestar.enums import ScopeType
from litestar.exceptions import TooManyRequestsException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from bandit_service.core.roles import ANONYMOUS, Principal
from bandit_service.http.auth import required_role
from bandit_service.settings import Settings

__all__ = ["GROUP_OF_ROLE", "Group", "RateLimitMiddleware", "TokenBuckets", "caller_key"]

Group = Literal["traffic", "operator"]
GROUP_OF_ROLE: dict[str, Group] = {"decide": "traffic", "read": "operator", "operate": "operator", "admin": "operator"}
_DESCRIPTION: dict[Group, str] = {"traffic": "decision and reward", "operator": "operator and read"}
SWEEP_MIN = 4_096
"""Buckets kept before the first sweep of idle ones (a sweep runs when the count doubles)."""


class TokenBuckets:
    """Token buckets of one rate and burst, one per key: a key may take `burst` at once, then `rate` per second.

    A bucket holds up to `burst` tokens and gains `rate` per second; a request takes one or, when
    the bucket has less than one, is refused with the time until it will have one. A bucket that has
    refilled is dropped at the next sweep (it equals a new one), so the keys held stay bounded by the
    keys active within `burst / rate` seconds.
    """

    def __init__(self, rate: float, burst: int, monotonic: Callable[[], float]) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got rate={rate}, burst={burst}")
        self.rate = rate
        self.burst = burst
        self._monotonic = monotonic
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when counted)
        self._sweep_at = SWEEP_MIN

    def take(self, key: str) -> float:
        """Take a token for `key`: 0.0 if granted, else the seconds until the bucket will hold one."""
        now = self._monotonic()
        tokens, counted = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - counted) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
        if len(self._buckets) > self._sweep_at:
            self._sweep(now)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)

    def _sweep(self, now: float) -> None:
        """Drop the buckets that have refilled; sweep next when the count has doubled."""
        full = [
            key
            for key, (tokens, counted) in self._buckets.items()
            if tokens + (now - counted) * self.rate >= self.burst
        ]
        for key in full:
            del self._buckets[key]
        self._sweep_at = max(SWEEP_MIN, 2 * len(self._buckets))


def caller_key(scope: Scope) -> str:
    """Whose budget a request spends: `key:<name>` for an API key, `client:<host>` for an anonymous caller."""
    principal = scope.get("user")
    if isinstance(principal, Principal) and principal != ANONYMOUS:
        return f"key:{principal.name}"
    client = scope.get("client")
    return f"client:{client[0] if client else 'unknown'}"


def _who(key: str) -> str:
    """The caller of a bucket key, as a refusal names it."""
    kind, _, name = key.partition(":")
    return f"API key {name!r}" if kind == "key" else f"client address {name}"


class RateLimitMiddleware(ASGIMiddleware):
    """Refuses a request with 429 and `Retry-After` when its caller's bucket of the handler's group is empty.

    Runs after the auth middleware (it reads the caller that middleware found). Limits are per
    process: with N workers or replicas the effective limit is N times the configured one.
    """

    scopes = (ScopeType.HTTP,)

    def __init__(self, buckets: dict[Group, TokenBuckets]) -> None:
        """`buckets` per group; a group without one is not limited."""
        self._buckets = buckets

    @classmethod
    def from_settings(cls, settings: Settings, monotonic: Callable[[], float]) -> RateLimitMiddleware:
        """The limits of `settings` (a rate of 0 turns its group's limit off) on this clock."""
        rates: dict[Group, tuple[float, int]] = {
            "traffic": (settings.rate_limit_traffic_per_s, settings.rate_limit_traffic_burst),
            "operator": (settings.rate_limit_operator_per_s, settings.rate_limit_operator_burst),
        }
        return cls({group: TokenBuckets(rate, burst, monotonic) for group, (rate, burst) in rates.items() if rate > 0})

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Spend a token of the caller's bucket, or refuse with 429."""
        role = required_role(scope)
        group = GROUP_OF_ROLE[role] if role is not None else None
        buckets = self._buckets.get(group) if group is not None else None
        if group is not None and buckets is not None:
            key = caller_key(scope)
            wait = buckets.take(key)
            if wait > 0.0:
                retry_after = max(1, math.ceil(wait))
                raise TooManyRequestsException(
                    detail=f"rate limit of {_DESCRIPTION[group]} requests exceeded for {_who(key)}: at most "
                    f"{buckets.rate:g} per second with bursts of {buckets.burst} (per process); "
                    f"retry in {retry_after} s",
                    headers={"Retry-After": str(retry_after)},
                )
        await next_app(scope, receive, send)
