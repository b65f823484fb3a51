"""The tagged union of policy configurations."""

from __future__ import annotations

import msgspec

from policies.epsilon_greedy import EpsilonGreedy
from policies.fixed import FixedSplit
from policies.thompson import ThompsonSampling
from policies.ucb import UCB1

__all__ = ["PolicyConfig", "decode_policy"]

# Adding a policy: one module with a frozen PolicyBase subclass (its `allocate` and `choose`, and
# `check_arms`, `bind` or `adaptive` where the defaults do not fit), and one member here. The
# service and the benchmarks take every member of this union (a test walks it).
PolicyConfig = FixedSplit | EpsilonGreedy | ThompsonSampling | UCB1


def decode_policy(data: bytes | str) -> PolicyConfig:
    """Decode a policy config from JSON like `{"kind": "thompson", "min_weight": 0.01}`."""
    return msgspec.json.decode(data, type=PolicyConfig)
