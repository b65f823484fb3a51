"""When to try a failed send again: exponential backoff with full jitter, and the server's Retry-After.

Hand-written rather than taken from a retry library (tenacity, backoff, stamina): the client may
import only httpx, msgspec and the pure assignment code (issue 13), and what it needs is one
formula. Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015) draws each
wait uniformly from [0, min(cap, base * 2**attempt)], so clients that failed together do not
retry together. A `Retry-After` (RFC 9110, section 10.2.3: seconds or an HTTP date) is a floor:
the service said when it can take the request again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC
from email.utils import parsedate_to_datetime

import msgspec

__all__ = ["Backoff", "parse_retry_after"]


class Backoff(msgspec.Struct, frozen=True, kw_only=True):
    """Waits between attempts: full jitter under `min(max_s, base_s * 2**attempt)`, Retry-After as a floor.

    `max_retry_after_s` caps a Retry-After, so a wrong header cannot park the queue for a day.
    """

    base_s: float = 0.1
    max_s: float = 10.0
    max_retry_after_s: float = 120.0

    def __post_init__(self) -> None:
        if not 0.0 < self.base_s <= self.max_s:
            raise ValueError(f"base_s: must be > 0 and <= max_s ({self.max_s}), got {self.base_s}")
        if self.max_retry_after_s < 0.0:
            raise ValueError(f"max_retry_after_s: must be >= 0, got {self.max_retry_after_s}")

    def delay(self, attempt: int, rng: random.Random, retry_after_s: float | None = None) -> float:
        """Seconds to wait before attempt `attempt + 1` (`attempt` counts the failures so far, from 0)."""
        cap = min(self.max_s, self.base_s * 2.0 ** min(attempt, 60))
        wait = rng.uniform(0.0, cap)
        if retry_after_s is not None:
            wait = max(wait, min(retry_after_s, self.max_retry_after_s))
        return wait


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds from a Retry-After header (delay-seconds or HTTP-date); None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": a time in UTC with no zone named (RFC 5322, section 3.3)
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now())
