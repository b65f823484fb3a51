"""Bayesian comparison of arms: posterior summaries, P(best), P(beats control), lift and expected loss."""

from __future__ import annotations

import msgspec
import numpy as np

from policies.frequentist import check_control, check_level
from policies.posterior import (
    EXACT_MAX_ARMS,
    BetaPosterior,
    Posterior,
    RewardKind,
    StudentTPosterior,
    posterior,
    prob_best_beta_exact,
)
from policies.stats import FloatArray, StatsArray

__all__ = ["BayesianArm", "BayesianComparison", "bayesian_comparison", "expected_loss"]

DEFAULT_DRAWS = 100_000


class BayesianArm(msgspec.Struct, frozen=True):
    """One arm's posterior summary; the fields against the control are None on the control itself."""

    arm: int
    mean: float
    interval: tuple[float, float]
    prob_best: float
    expected_loss: float
    prob_beats_control: float | None
    difference_interval: tuple[float, float] | None
    lift_interval: tuple[float, float] | None


class BayesianComparison(msgspec.Struct, frozen=True):
    """Posterior comparison of every arm, with the settings that produced it."""

    reward: RewardKind
    control: int
    level: float
    draws: int
    arms: tuple[BayesianArm, ...]


def expected_loss(samples: FloatArray) -> FloatArray:
    """Expected loss of choosing each arm, E[max_j theta_j - theta_i], from joint draws (draws, ..., k).

    The risk an experimenter accepts by shipping arm i (Stucchio, 2015, "Bayesian A/B Testing
    at VWO"); a Monte Carlo average with standard error sd(max - theta_i) / sqrt(draws).
    """
    if samples.ndim < 2 or samples.shape[0] == 0:
        raise ValueError(f"samples: expected shape (draws, ..., k), got {samples.shape}")
    return (samples.max(axis=-1, keepdims=True) - samples).mean(axis=0)


def _check_posterior(post: Posterior, k: int, reward: RewardKind, prior: dict[str, float]) -> None:
    if prior:
        raise ValueError(f"post: give a posterior or prior parameters, not both (got {sorted(prior)})")
    family = BetaPosterior if reward == "bernoulli" else StudentTPosterior
    if not isinstance(post, family):
        raise ValueError(f"post: a {reward} reward needs a {family.__name__}, got {type(post).__name__}")
    if post.mean.shape != (k,):
        raise ValueError(f"post: expected one value per arm ({k}), got shape {post.mean.shape}")


def _interval(x: FloatArray, level: float) -> tuple[float, float]:
    with np.errstate(invalid="ignore"):  # a lift over a control draw of 0 is infinite
        lo, hi = np.quantile(x, [0.5 - level / 2.0, 0.5 + level / 2.0])
    return float(lo), float(hi)


def bayesian_comparison(
    stats: StatsArray,
    control: int,
    reward: RewardKind,
    rng: np.random.Generator,
    *,
    level: float = 0.95,
    draws: int = DEFAULT_DRAWS,
    post: Posterior | None = None,
    **prior: float,
) -> BayesianComparison:
    """Posterior summaries of every arm against the control under the conjugate posterior.

    Beta(1, 1) priors for 0/1 rewards, Normal-Inverse-Gamma (Student-t on the mean) otherwise,
    with optional prior parameters as in `policies.posterior.posterior`. For Beta posteriors,
    P(beats control) is an exact one-dimensional quadrature, and so is P(best) for up to
    `EXACT_MAX_ARMS` arms (its cost grows as arms^3); everything else (and every figure for
    Student-t posteriors) comes from `draws` joint posterior draws with `rng`.
    Intervals are equal-tailed; the lift is theta_i / theta_c - 1, per draw (meaningful only
    when the control's posterior stays away from 0).

    `post`, when given, replaces the conjugate posterior of `stats` (for example
    `stratified_posterior` over weights periods); `stats` still gives the number of arms and is
    checked, and `post` must be the family of `reward` with one value per arm.
    """
    if stats.n.ndim != 1:
        raise ValueError(f"stats: expected one value per arm, got shape {stats.n.shape}")
    check_control(control, stats.k)
    check_level(level)
    if reward not in ("bernoulli", "continuous"):
        raise ValueError(f"reward: must be 'bernoulli' or 'continuous', got {reward!r}")
    if isinstance(draws, bool) or not isinstance(draws, int) or not 1 <= draws <= 10_000_000:
        raise ValueError(f"draws: must be an integer in [1, 10000000], got {draws!r}")
    if post is None:
        post = posterior(stats, reward, **prior)
    else:
        _check_posterior(post, stats.k, reward, prior)
    samples = post.sample(rng, draws)  # (draws, k)
    lo, hi = post.interval(level)
    loss = expected_loss(samples)
    if isinstance(post, BetaPosterior):
        prob_best = (
            prob_best_beta_exact(post.alpha, post.beta)
            if stats.k <= EXACT_MAX_ARMS
            else np.bincount(samples.argmax(axis=-1), minlength=stats.k) / draws  # the same draws as the loss
        )

        def beats(i: int) -> float:
            pair = [control, i]
            return float(prob_best_beta_exact(post.alpha[pair], post.beta[pair])[1])
    else:
        prob_best = np.bincount(samples.argmax(axis=-1), minlength=stats.k) / draws  # the same draws as the loss

        def beats(i: int) -> float:
            return float(np.mean(samples[:, i] > samples[:, control]))

    mean = post.mean
    base = samples[:, control]
    arms = []
    for i in range(stats.k):
        vs_control = i != control
        with np.errstate(divide="ignore", invalid="ignore"):
            lift = samples[:, i] / base - 1.0
        arms.append(
            BayesianArm(
                arm=i,
                mean=float(mean[i]),
                interval=(float(lo[i]), float(hi[i])),
                prob_best=float(prob_best[i]),
                expected_loss=float(loss[i]),
                prob_beats_control=beats(i) if vs_control else None,
                difference_interval=_interval(samples[:, i] - base, level) if vs_control else None,
                lift_interval=_interval(lift, level) if vs_control else None,
            )
        )
    return BayesianComparison(reward, int(control), float(level), draws, tuple(arms))
