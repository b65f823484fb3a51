"""Conjugate posteriors of arm means: Beta for 0/1 rewards, Student-t (Normal-Inverse-Gamma) otherwise."""

from __future__ import annotations

from typing import Literal

import msgspec
import numpy as np
from scipy import special
from scipy import stats as sps

from policies.stats import FloatArray, StatsArray

__all__ = [
    "BetaPosterior",
    "Posterior",
    "RewardKind",
    "StudentTPosterior",
    "beta_posterior",
    "normal_posterior",
    "posterior",
    "prob_best_beta_exact",
    "prob_best_monte_carlo",
]

RewardKind = Literal["bernoulli", "continuous"]


class BetaPosterior(msgspec.Struct, frozen=True):
    """Independent Beta(alpha, beta) posteriors of the arms' success rates."""

    alpha: FloatArray
    beta: FloatArray

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        """Draws of every arm's rate, shape (size, ..., k)."""
        return rng.beta(self.alpha, self.beta, size=(size, *self.alpha.shape))

    @property
    def mean(self) -> FloatArray:
        return self.alpha / (self.alpha + self.beta)

    def interval(self, level: float) -> tuple[FloatArray, FloatArray]:
        """Equal-tailed credible interval per arm."""
        tail = (1.0 - level) / 2.0
        return sps.beta.ppf(tail, self.alpha, self.beta), sps.beta.ppf(1.0 - tail, self.alpha, self.beta)


class StudentTPosterior(msgspec.Struct, frozen=True):
    """Marginal Student-t posteriors of the arms' means (Normal likelihood, unknown variance)."""

    df: FloatArray
    loc: FloatArray
    scale: FloatArray

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        """Draws of every arm's mean, shape (size, ..., k)."""
        return self.loc + self.scale * rng.standard_t(self.df, size=(size, *self.df.shape))

    @property
    def mean(self) -> FloatArray:
        return self.loc

    def interval(self, level: float) -> tuple[FloatArray, FloatArray]:
        """Equal-tailed credible interval per arm."""
        tail = (1.0 - level) / 2.0
        q = sps.t.ppf(1.0 - tail, self.df)
        return self.loc - q * self.scale, self.loc + q * self.scale


Posterior = BetaPosterior | StudentTPosterior


def beta_posterior(stats: StatsArray, prior_alpha: float = 1.0, prior_beta: float = 1.0) -> BetaPosterior:
    """Beta(prior_alpha + successes, prior_beta + failures) per arm (Gelman et al., BDA3, 2.4).

    Requires 0/1 rewards: 0 <= successes <= n and sum of squares equal to the sum.
    """
    if prior_alpha <= 0 or prior_beta <= 0:
        raise ValueError(f"prior_alpha, prior_beta: must be positive, got {prior_alpha}, {prior_beta}")
    s, n = stats.total, stats.n
    if np.any(s < 0) or np.any(s > n) or not np.allclose(stats.total_sq, s):
        raise ValueError("stats: Beta posteriors need 0/1 rewards (0 <= sum <= n and sum of squares = sum)")
    return BetaPosterior(prior_alpha + s, prior_beta + (n - s))


def normal_posterior(
    stats: StatsArray,
    prior_mean: float = 0.0,
    prior_kappa: float = 1e-3,
    prior_shape: float = 1.0,
    prior_scale: float = 1.0,
) -> StudentTPosterior:
    """Marginal posterior of the mean under a Normal-Inverse-Gamma prior (Murphy, 2007, eq. 110).

    kappa_n = kappa_0 + n, mu_n = (kappa_0 mu_0 + sum) / kappa_n, a_n = a_0 + n/2,
    b_n = b_0 + SS/2 + kappa_0 n (xbar - mu_0)^2 / (2 kappa_n); the mean is
    Student-t with 2 a_n degrees of freedom, location mu_n and scale sqrt(b_n / (a_n kappa_n)).
    """
    if prior_kappa <= 0 or prior_shape <= 0 or prior_scale <= 0:
        raise ValueError("prior_kappa, prior_shape, prior_scale: must be positive")
    n, total = stats.n, stats.total
    safe_n = np.where(n > 0, n, 1.0)
    xbar = np.where(n > 0, total / safe_n, prior_mean)
    ss = np.maximum(stats.total_sq - total * total / safe_n, 0.0)
    kappa_n = prior_kappa + n
    mu_n = (prior_kappa * prior_mean + total) / kappa_n
    a_n = prior_shape + n / 2.0
    b_n = prior_scale + ss / 2.0 + prior_kappa * n * (xbar - prior_mean) ** 2 / (2.0 * kappa_n)
    return StudentTPosterior(2.0 * a_n, mu_n, np.sqrt(b_n / (a_n * kappa_n)))


def posterior(stats: StatsArray, reward: RewardKind, **prior: float) -> Posterior:
    """The conjugate posterior for the reward kind, with optional prior parameters."""
    if reward == "bernoulli":
        return beta_posterior(stats, **prior)
    return normal_posterior(stats, **prior)


def prob_best_monte_carlo(post: Posterior, rng: np.random.Generator, draws: int = 10_000) -> FloatArray:
    """P(arm has the highest mean), shape (..., k), from `draws` joint posterior draws."""
    if draws < 1:
        raise ValueError(f"draws: must be at least 1, got {draws}")
    samples = post.sample(rng, draws)
    k = samples.shape[-1]
    winners = samples.argmax(axis=-1)
    return (winners[..., None] == np.arange(k)).mean(axis=0)


# Composite Gauss-Legendre rule on [0, 1]: 128 panels of 16 nodes.
_PANELS, _ORDER = 128, 16
_gl_x, _gl_w = np.polynomial.legendre.leggauss(_ORDER)
_edges = np.linspace(0.0, 1.0, _PANELS + 1)
_U = ((_edges[:-1, None] + _edges[1:, None]) / 2 + (_edges[1:, None] - _edges[:-1, None]) / 2 * _gl_x).ravel()
_W = (np.diff(_edges)[:, None] / 2 * _gl_w).ravel()


def prob_best_beta_exact(alpha: FloatArray, beta: FloatArray) -> FloatArray:
    """P(arm i best) for independent Beta posteriors by one-dimensional quadrature.

    P_i = integral f_i(x) prod_{j != i} F_j(x) dx; substituting x = F_i^{-1}(u) gives
    P_i = integral_0^1 prod_{j != i} F_j(F_i^{-1}(u)) du, a bounded monotone integrand however
    peaked the posteriors are, integrated by composite Gauss-Legendre (2,048 nodes).
    """
    a = np.asarray(alpha, dtype=np.float64)
    b = np.asarray(beta, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError("alpha, beta: expected two equal-length, non-empty 1-D arrays")
    x = special.betaincinv(a[None, :], b[None, :], _U[:, None])  # (M, k): quantile u of arm i
    log_cdf = np.log(np.clip(special.betainc(a[None, None, :], b[None, None, :], x[:, :, None]), 1e-300, 1.0))
    k = a.size
    log_cdf[:, np.arange(k), np.arange(k)] = 0.0  # leave out j == i
    integrand = np.exp(log_cdf.sum(axis=-1))  # (M, k)
    p = _W @ integrand
    return np.clip(p, 0.0, 1.0)
