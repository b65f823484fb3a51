"""Pure bandit policies, posteriors, statistics and simulation over numpy arrays.

No I/O, no clock, no global random state: every random function takes a
`numpy.random.Generator`.
"""

from policies.base import ConfigError, PolicyBase
from policies.bayesian import BayesianArm, BayesianComparison, bayesian_comparison, expected_loss
from policies.corrections import Correction, adjust_p_values, bonferroni, holm
from policies.environments import BernoulliEnv, DriftingEnv, EnvironmentConfig, GaussianEnv
from policies.epsilon_greedy import EpsilonGreedy
from policies.estimators import ArmEstimates, IpwDifference, ipw_difference, ipw_means, naive_means, stratified_means
from policies.fixed import FixedSplit, validate_weights
from policies.frequentist import Comparison, welch_test, z_test
from policies.lai_robbins import bernoulli_kl, lai_robbins_bound, lai_robbins_constant
from policies.policy import PolicyConfig, decode_policy
from policies.posterior import (
    BetaPosterior,
    Posterior,
    StudentTPosterior,
    posterior,
    prob_best_beta_exact,
    prob_best_monte_carlo,
    stratified_posterior,
)
from policies.power import (
    SampleSize,
    duration_days,
    power_means,
    power_proportions,
    sample_size_means,
    sample_size_proportions,
)
from policies.ratios import RatioMethod, RelativeIntervals, fieller_interval, log_ratio_interval
from policies.sequential import SequentialComparison, msprt, msprt_running
from policies.simulation import SimulationResult, simulate
from policies.sketch import QuantileSketch
from policies.srm import SrmResult, expected_counts, srm_by_period, srm_check
from policies.stats import ArmStats, StatsArray
from policies.thompson import ThompsonSampling
from policies.ucb import UCB1

__all__ = [
    "UCB1",
    "ArmEstimates",
    "ArmStats",
    "BayesianArm",
    "BayesianComparison",
    "BernoulliEnv",
    "BetaPosterior",
    "Comparison",
    "ConfigError",
    "Correction",
    "DriftingEnv",
    "EnvironmentConfig",
    "EpsilonGreedy",
    "FixedSplit",
    "GaussianEnv",
    "IpwDifference",
    "PolicyBase",
    "PolicyConfig",
    "Posterior",
    "QuantileSketch",
    "RatioMethod",
    "RelativeIntervals",
    "SampleSize",
    "SequentialComparison",
    "SimulationResult",
    "SrmResult",
    "StatsArray",
    "StudentTPosterior",
    "ThompsonSampling",
    "adjust_p_values",
    "bayesian_comparison",
    "bernoulli_kl",
    "bonferroni",
    "decode_policy",
    "duration_days",
    "expected_counts",
    "expected_loss",
    "fieller_interval",
    "holm",
    "ipw_difference",
    "ipw_means",
    "lai_robbins_bound",
    "lai_robbins_constant",
    "log_ratio_interval",
    "msprt",
    "msprt_running",
    "naive_means",
    "posterior",
    "power_means",
    "power_proportions",
    "prob_best_beta_exact",
    "prob_best_monte_carlo",
    "sample_size_means",
    "sample_size_proportions",
    "simulate",
    "srm_by_period",
    "srm_check",
    "stratified_means",
    "stratified_posterior",
    "validate_weights",
    "welch_test",
    "z_test",
]
