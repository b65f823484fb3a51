"""The Python SDK of the bandit service: decisions that never fail the app, rewards that are never lost.

    from bandit_service.client import BanditClient, Fallback

    with BanditClient("http://127.0.0.1:8000", api_key="...", fallbacks={"checkout-button": "blue"}) as client:
        d = client.decide(experiment="checkout-button", unit="user-42")
        ...  # use d.arm and d.payload
        client.reward(d, 1.0)

`AsyncBanditClient` has the same API for asyncio code. Imports only httpx, msgspec and the
service's pure assignment code (no numpy, scipy, Litestar or SQLAlchemy).
"""

from bandit_service.client.aio import AsyncBanditClient
from bandit_service.client.decisions import ClientDecision, Fallback
from bandit_service.client.manage_core import BanditError
from bandit_service.client.retry import Backoff
from bandit_service.client.stats import ClientStats
from bandit_service.client.sticky import MemoryStickyStore, StickyStore
from bandit_service.client.sync import BanditClient

__all__ = [
    "AsyncBanditClient",
    "Backoff",
    "BanditClient",
    "BanditError",
    "ClientDecision",
    "ClientStats",
    "Fallback",
    "MemoryStickyStore",
    "StickyStore",
]
