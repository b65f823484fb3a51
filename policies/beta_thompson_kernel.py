"""A fused online loop for the commonest simulation: Beta-Bernoulli Thompson sampling.

`simulate` runs any policy through its `choose` method, which rebuilds the posterior and draws
Beta variates through `Generator.beta` on every step. For Thompson sampling with Beta priors
on Bernoulli arms this loop does the same sampling with less work per step:

- the state is kept as the posterior parameters (alpha, beta) themselves, shape (2, seeds, k),
  so a step updates one entry per seed instead of three statistics arrays;
- a Beta(a, b) draw is G_a / (G_a + G_b) with independent Gamma(a) and Gamma(b) draws, which
  is how numpy draws Beta variates when a or b exceeds 1. x / (x + y) rises with x / y, so the
  arm with the largest G_a / G_b is the arm with the largest Beta draw: one call draws every
  Gamma variate of a step and one division ranks them;
- reward uniforms are drawn once per block of steps, and regret is summed per block;
- with whole-number priors and fewer than 2^24 decisions the parameters are whole numbers
  that float32 holds exactly, and the Gamma variates are drawn in float32 (numpy's float32
  Gamma sampler, a little faster than the float64 one).

The sampled policy is Thompson sampling: the same conditional law of every decision given the
history, up to ties at the maximum, which go to the lower arm index as in
`ThompsonSampling.choose`. In float32 a tie needs two ratios within about 1e-7 of each other;
none was seen in 900,000 decisions from 10-arm states (tests/policies/test_beta_thompson_kernel.py
holds the oracle checks). The random stream differs from the generic path, so a seed gives
another, equally valid, run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeGuard

import numpy as np

from policies.environments import BernoulliEnv, DriftingEnv, Environment
from policies.regret_curve import record_block
from policies.stats import FloatArray, IntArray
from policies.thompson import ThompsonSampling

__all__ = ["fits_beta_thompson_kernel", "run_beta_thompson_online"]

_BLOCK = 1024  # steps per block of reward uniforms and regret bookkeeping
_FLOAT32_WHOLE = 2**24  # float32 holds every whole number below this exactly


def fits_beta_thompson_kernel(policy: object, env: Environment) -> TypeGuard[ThompsonSampling]:
    """True when `policy` is plain Beta Thompson sampling and `env` pays Bernoulli rewards.

    Plain means no burn-in, no floor and priors of at least 1 (smaller priors can round Beta
    draws to exactly 0 or 1, and the generic path breaks those ties at random).
    """
    return (
        type(policy) is ThompsonSampling
        and policy.reward == "bernoulli"
        and policy.burn_in == 0
        and policy.min_weight == 0.0
        and min(policy.prior_alpha, policy.prior_beta) >= 1.0
        and isinstance(env, (BernoulliEnv, DriftingEnv))
        and env.reward == "bernoulli"
    )


def run_beta_thompson_online(
    policy: ThompsonSampling,
    env: Environment,
    horizon: int,
    rng: np.random.Generator,
    times: IntArray,
    arrays: tuple[FloatArray, FloatArray, FloatArray],
    regret: FloatArray,
    report: Callable[[int], None],
) -> None:
    """Online Thompson sampling for all seeds; fills `arrays` (n, total, total_sq) and `regret`.

    Same contract as the generic online loop of `policies.simulation`: `regret[:, g]` is the
    cumulative pseudo-regret after `times[g]` decisions, and `report(d)` is called with the
    decisions per seed done since the last call.
    """
    n, total, total_sq = arrays
    seeds, k = n.shape
    priors = (policy.prior_alpha, policy.prior_beta)
    whole = all(float(p).is_integer() for p in priors) and horizon + max(priors) < _FLOAT32_WHOLE
    dtype = np.float32 if whole else np.float64
    params = np.empty((2, seeds, k), dtype=dtype)
    params[0] = policy.prior_alpha
    params[1] = policy.prior_beta
    flat = params.reshape(-1)
    success_at = np.arange(seeds) * k  # flat index of (0, seed, 0); failures sit seeds * k further
    failure_offset = seeds * k
    gammas = np.empty_like(params)
    ratio = np.empty((seeds, k), dtype=dtype)
    cum = np.zeros(seeds)
    for start in range(0, horizon, _BLOCK):
        b = min(_BLOCK, horizon - start)
        t = np.arange(start, start + b)
        means = env.means_at(t)  # (b, k)
        uniforms = rng.random((b, seeds))
        arms = np.empty((b, seeds), dtype=np.intp)
        for j in range(b):
            rng.standard_gamma(params, dtype=dtype, out=gammas)
            np.divide(gammas[0], gammas[1], out=ratio)
            chosen = ratio.argmax(axis=1, out=arms[j])
            failed = uniforms[j] >= means[j][chosen]
            flat[success_at + chosen + failure_offset * failed] += 1.0
        # The gap of each chosen arm at its own time, as (seeds, b).
        cum = record_block(regret, times, start, np.take_along_axis(env.gaps_at(t), arms, axis=1).T, cum)
        report(b)
    # Counts are whole numbers; rounding removes the float error of a fractional prior.
    successes = np.rint(params[0] - policy.prior_alpha)
    failures = np.rint(params[1] - policy.prior_beta)
    n[...] = successes + failures
    total[...] = successes
    total_sq[...] = successes  # rewards are 0 or 1
