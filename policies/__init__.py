"""Pure bandit policies, posteriors, statistics and simulation over numpy arrays.

No I/O, no clock, no global random state: every random function takes a
`numpy.random.Generator`.
"""

from policies.epsilon_greedy import EpsilonGreedy
from policies.fixed import FixedSplit, validate_weights
from policies.policy import Policy, PolicyConfig, decode_policy
from policies.posterior import BetaPosterior, StudentTPosterior, posterior, prob_best_beta_exact
from policies.stats import ArmStats, StatsArray
from policies.thompson import ThompsonSampling

__all__ = [
    "ArmStats",
    "BetaPosterior",
    "EpsilonGreedy",
    "FixedSplit",
    "Policy",
    "PolicyConfig",
    "StatsArray",
    "StudentTPosterior",
    "ThompsonSampling",
    "decode_policy",
    "posterior",
    "prob_best_beta_exact",
    "validate_weights",
]
