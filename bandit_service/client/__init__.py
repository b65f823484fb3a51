"""The Python SDK of the bandit service (being rebuilt: see issue 13)."""

from bandit_service.client._legacy import BanditClient, RewardReport
from bandit_service.client.decisions import ClientDecision, Fallback

__all__ = ["BanditClient", "ClientDecision", "Fallback", "RewardReport"]
