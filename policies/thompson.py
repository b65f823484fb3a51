"""Thompson sampling: each arm's weight is the posterior probability that it is the best."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Annotated, Literal, Self

import msgspec
import numpy as np
from numpy.typing import ArrayLike

from policies.allocation import (
    active_mask,
    apply_floor,
    check_floor,
    check_floor_fits,
    check_size,
    in_burn_in,
    sample_arms,
    uniform_over,
)
from policies.base import ConfigError, Count, PolicyBase, Probability, check_count, check_probability
from policies.posterior import (
    EXACT_MAX_ARMS,
    BetaPosterior,
    Posterior,
    RewardKind,
    beta_posterior,
    normal_posterior,
    prob_best_beta_exact,
    prob_best_monte_carlo,
)
from policies.stats import BoolArray, FloatArray, IntArray, StatsArray

__all__ = ["ThompsonSampling"]

MAX_DRAWS = 1_000_000
# One Monte Carlo P(best) draws arms x draws values: bounding the product bounds the CPU of one
# reweight whatever the number of arms (50 arms x 1,000,000 draws took seconds). Figures: README.
MAX_DRAW_VALUES = 2_000_000
MAX_PRIOR = 1e9  # a prior worth more than a billion observations is a typo, not a belief
MAX_PRIOR_SCALE = 1e15  # a sum of squares: continuous rewards are bounded by 1e15 in size
MAX_PRIOR_MEAN = 1e15
Prior = Annotated[float, msgspec.Meta(gt=0.0, le=MAX_PRIOR)]


class ThompsonSampling(PolicyBase, frozen=True, tag="thompson"):
    """Thompson sampling (Thompson, 1933; Chapelle & Li, 2011) as probability matching.

    Bernoulli rewards use Beta(prior_alpha, prior_beta) priors; continuous rewards a
    Normal likelihood with unknown variance under a Normal-Inverse-Gamma prior
    (prior_mean, prior_kappa, prior_shape, prior_scale). P(best) comes from `draws`
    Monte Carlo draws with the given generator, or, for Beta posteriors with
    `method="integration"`, from exact one-dimensional quadrature.
    """

    reward: RewardKind = "bernoulli"
    burn_in: Count = 0
    min_weight: Probability = 0.0
    method: Literal["monte_carlo", "integration"] = "monte_carlo"
    draws: Annotated[
        int, msgspec.Meta(ge=1, le=MAX_DRAWS, description=f"Monte Carlo draws; arms x draws <= {MAX_DRAW_VALUES:,}.")
    ] = 10_000
    prior_alpha: Prior = 1.0
    prior_beta: Prior = 1.0
    prior_mean: Annotated[float, msgspec.Meta(ge=-MAX_PRIOR_MEAN, le=MAX_PRIOR_MEAN)] = 0.0
    prior_kappa: Prior = 1e-3
    prior_shape: Prior = 1.0
    prior_scale: Annotated[float, msgspec.Meta(gt=0.0, le=MAX_PRIOR_SCALE)] = 1.0

    def __post_init__(self) -> None:
        check_count("burn_in", self.burn_in)
        check_probability("min_weight", self.min_weight)
        if self.reward not in ("bernoulli", "continuous"):
            raise ConfigError("reward", f"must be 'bernoulli' or 'continuous', got {self.reward!r}")
        if self.method not in ("monte_carlo", "integration"):
            raise ConfigError("method", f"must be 'monte_carlo' or 'integration', got {self.method!r}")
        if self.method == "integration" and self.reward != "bernoulli":
            raise ConfigError("method", "'integration' is available for bernoulli rewards only")
        draws_is_int = isinstance(self.draws, numbers.Integral) and not isinstance(self.draws, bool)
        if not (draws_is_int and 1 <= self.draws <= MAX_DRAWS):
            raise ConfigError("draws", f"must be an integer in [1, {MAX_DRAWS}], got {self.draws!r}")
        for name in ("prior_alpha", "prior_beta", "prior_kappa", "prior_shape", "prior_scale"):
            value = getattr(self, name)
            high = MAX_PRIOR_SCALE if name == "prior_scale" else MAX_PRIOR
            if not (np.isfinite(value) and 0 < value <= high):
                raise ConfigError(name, f"must be a positive finite number (at most {high:g}), got {value!r}")
        if not (np.isfinite(self.prior_mean) and abs(self.prior_mean) <= MAX_PRIOR_MEAN):
            raise ConfigError("prior_mean", f"must be finite, |x| <= {MAX_PRIOR_MEAN:g}, got {self.prior_mean!r}")

    def check_arms(self, k: int, *, weighted_arms: bool = False) -> None:
        """Refuse a floor that k arms cannot all receive, and a P(best) too costly for k arms."""
        check_floor_fits(self.min_weight, k)
        if self.method == "monte_carlo" and k * self.draws > MAX_DRAW_VALUES:
            raise ConfigError(
                "draws",
                f"arms x draws must be at most {MAX_DRAW_VALUES:,}, got {k} x {self.draws:,}; "
                f"with {k} arms use at most {MAX_DRAW_VALUES // k:,} draws",
            )
        if self.method == "integration" and k > EXACT_MAX_ARMS:
            raise ConfigError(
                "method",
                f"'integration' serves at most {EXACT_MAX_ARMS} arms (its cost grows as arms^3), got {k}; "
                "use 'monte_carlo'",
            )

    def bind(self, *, reward: RewardKind, weights: Sequence[float]) -> Self:
        """This config with the experiment's reward kind (the posterior depends on it).

        Refuses an explicit "continuous" on a bernoulli experiment. The other conflict cannot be
        seen: the default "bernoulli" is not told apart from one written out, so it just follows
        the experiment.
        """
        if self.reward == "continuous" and reward == "bernoulli":
            raise ConfigError("reward", "the policy says 'continuous' but the experiment's reward is 'bernoulli'")
        # Through the constructor, so __post_init__ checks the result (integration needs bernoulli).
        return type(self)(**{**msgspec.structs.asdict(self), "reward": reward})

    def posterior(self, stats: StatsArray) -> Posterior:
        """The posterior of every arm's mean under this config's prior."""
        if self.reward == "bernoulli":
            return beta_posterior(stats, self.prior_alpha, self.prior_beta)
        return normal_posterior(stats, self.prior_mean, self.prior_kappa, self.prior_shape, self.prior_scale)

    def prob_best(self, stats: StatsArray, rng: np.random.Generator, active: ArrayLike | None = None) -> FloatArray:
        """P(arm is the best among the active arms), shape (..., k); held arms get 0."""
        mask = active_mask(active, stats)
        post = self.posterior(stats)
        if self.method == "integration":
            assert isinstance(post, BetaPosterior)  # enforced in __post_init__
            return self._prob_best_exact(post, mask)
        # A held arm can never be chosen: give it a draw below every other.
        return prob_best_monte_carlo(_MaskedPosterior(post, mask), rng, self.draws)

    def _prob_best_exact(self, post: BetaPosterior, mask: BoolArray) -> FloatArray:
        flat_mask = mask.reshape(-1, mask.shape[-1])
        alpha = post.alpha.reshape(flat_mask.shape)
        beta = post.beta.reshape(flat_mask.shape)
        out = np.zeros(flat_mask.shape)
        for row, (m, a, b) in enumerate(zip(flat_mask, alpha, beta, strict=True)):
            p = prob_best_beta_exact(a[m], b[m])
            out[row, m] = p / p.sum()
        return out.reshape(mask.shape)

    def allocate(self, stats: StatsArray, rng: np.random.Generator, active: ArrayLike | None = None) -> FloatArray:
        """Allocation weights (..., k): P(best), equal during burn-in, floored, zero on held arms."""
        mask = active_mask(active, stats)
        check_floor(self.min_weight, mask)
        w = self.prob_best(stats, rng, mask)
        w = w / w.sum(axis=-1, keepdims=True)
        burning = in_burn_in(stats, mask, self.burn_in)[..., None]
        w = np.where(burning, uniform_over(mask), w)
        return apply_floor(w, mask, self.min_weight)

    @property
    def _draws_can_tie(self) -> bool:
        # Beta draws round to exactly 0 or 1 (and so tie) only when a posterior parameter is
        # below 1, which needs a prior parameter below 1; other ties have probability ~2^-53.
        return self.reward == "bernoulli" and min(self.prior_alpha, self.prior_beta) < 1.0

    def choose(
        self, stats: StatsArray, rng: np.random.Generator, size: int | None = None, active: ArrayLike | None = None
    ) -> IntArray:
        """Per-decision arms: one posterior draw per decision, the arm with the highest draw wins.

        The floor is honoured as a mixture: with probability m * min_weight a decision goes to
        a uniformly chosen active arm, which matches the additive floor of `allocate`.
        """
        check_size(size)
        mask = active_mask(active, stats)
        check_floor(self.min_weight, mask)
        n_draws = 1 if size is None else size
        post = self.posterior(stats)
        # Online simulation calls this once per decision: skip the mask when nothing is held.
        samples = post.sample(rng, n_draws) if active is None else _MaskedPosterior(post, mask).sample(rng, n_draws)
        if self._draws_can_tie:
            is_max = samples == samples.max(axis=-1, keepdims=True)
            if np.any(is_max.sum(axis=-1) > 1):
                # A tie (a Beta draw rounded to exactly 0 or 1) goes to a uniformly chosen tied
                # arm, not to the first one in the list.
                samples = np.where(is_max, rng.random(samples.shape), -1.0)
        arms = np.moveaxis(samples.argmax(axis=-1), 0, -1)  # (..., size)
        if self.burn_in == 0 and self.min_weight == 0.0:
            return arms[..., 0] if size is None else arms  # no exploration share to draw
        uniform_share = self.min_weight * mask.sum(axis=-1)
        burning = in_burn_in(stats, mask, self.burn_in)
        explore_p = np.where(burning, 1.0, uniform_share)[..., None]
        explore = rng.random(arms.shape) < explore_p
        if np.any(explore):
            uniform_arms = sample_arms(uniform_over(mask), rng, arms.shape[-1])
            arms = np.where(explore, uniform_arms, arms)
        return arms[..., 0] if size is None else arms


class _MaskedPosterior:
    """A posterior whose held arms always draw -inf, so they never win."""

    def __init__(self, post: Posterior, mask: BoolArray) -> None:
        self.post, self.mask = post, mask

    def sample(self, rng: np.random.Generator, size: int) -> FloatArray:
        """Draws of every arm's mean, shape (size, ..., k), -inf on held arms."""
        draws = self.post.sample(rng, size)
        return np.where(self.mask, draws, -np.inf)
