"""Vectorised regret simulation: one policy, many seeds at once, online or in scheduled batches."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import msgspec
import numpy as np
from numpy.typing import ArrayLike

from policies.allocation import sample_arms
from policies.beta_thompson_kernel import fits_beta_thompson_kernel, run_beta_thompson_online
from policies.environments import Environment
from policies.regret_curve import record_block
from policies.stats import FloatArray, IntArray, StatsArray

__all__ = ["SimulatedPolicy", "SimulationResult", "checkpoint_times", "simulate"]


class SimulatedPolicy(Protocol):
    """The two methods of every policy config that the simulator calls."""

    def allocate(self, stats: StatsArray, rng: np.random.Generator, active: ArrayLike | None = None) -> FloatArray:
        """Weights of shape (..., k) summing to 1 along the last axis."""
        ...

    def choose(
        self, stats: StatsArray, rng: np.random.Generator, size: int | None = None, active: ArrayLike | None = None
    ) -> IntArray:
        """Arm indices of shape (...,) or (..., size)."""
        ...


class SimulationResult(msgspec.Struct, frozen=True):
    """Cumulative pseudo-regret curves of one policy over many seeds.

    The pseudo-regret of a run is the sum over decisions of mu*(t) - mu(arm_t, t), the gaps of
    the chosen arms (Bubeck & Cesa-Bianchi, 2012, section 1): it removes the reward noise
    but keeps the policy's own randomness.
    """

    times: IntArray  # (G,) decisions made at each checkpoint; the last one is the horizon
    regret: FloatArray  # (seeds, G) cumulative pseudo-regret of every seed at every checkpoint
    pulls: IntArray  # (seeds, k) pulls of every arm after the horizon
    horizon: int
    batch_size: int | None  # None: online (update after every decision)

    @property
    def seeds(self) -> int:
        """Number of independent runs."""
        return int(self.regret.shape[0])

    @property
    def final_regret(self) -> FloatArray:
        """Cumulative regret of every seed at the horizon, shape (seeds,)."""
        return self.regret[:, -1]

    @property
    def mean_regret(self) -> FloatArray:
        """Mean cumulative regret over seeds at every checkpoint, shape (G,)."""
        return self.regret.mean(axis=0)

    @property
    def se_regret(self) -> FloatArray:
        """Standard error of the mean regret (sample sd / sqrt(seeds)); NaN with one seed."""
        if self.seeds < 2:
            return np.full(self.times.shape, np.nan)
        return self.regret.std(axis=0, ddof=1) / np.sqrt(self.seeds)


def checkpoint_times(horizon: int, checkpoints: int | Sequence[int] = 100) -> IntArray:
    """Sorted decision counts at which the regret is recorded; the horizon is always included.

    An integer asks for that many evenly spaced points in [1, horizon]; a sequence gives them.
    """
    if isinstance(checkpoints, int) and not isinstance(checkpoints, bool):
        if checkpoints < 1:
            raise ValueError(f"checkpoints: need at least one checkpoint, got {checkpoints}")
        times = np.round(np.linspace(horizon / checkpoints, horizon, checkpoints)).astype(np.int64)
    else:
        times = np.asarray(checkpoints)
        if times.ndim != 1 or times.dtype.kind not in "iu":
            raise ValueError("checkpoints: expected a count or a list of integer decision counts")
        if times.size and (times.min() < 1 or times.max() > horizon):
            raise ValueError(f"checkpoints: decision counts must lie in [1, {horizon}]")
    return np.union1d(times.astype(np.int64), [horizon])


def _stats_view(n: FloatArray, total: FloatArray, total_sq: FloatArray) -> StatsArray:
    """A StatsArray over the simulator's own arrays, without the public constructor's copy and checks.

    The public constructor copies and re-validates three (seeds, k) arrays, which would cost
    more than the policy itself on every online step. The invariants it checks (finite, n and
    sum of squares non-negative) hold by construction here: the arrays start at zero and only
    grow by counts and finite rewards. Read-only views keep policies from writing into them;
    they see the simulator's later in-place updates, so one view serves every step.
    """
    stats = StatsArray.__new__(StatsArray)
    views = []
    for arr in (n, total, total_sq):
        v = arr.view()
        v.flags.writeable = False
        views.append(v)
    stats.n, stats.total, stats.total_sq = views
    return stats


def simulate(
    policy: SimulatedPolicy,
    env: Environment,
    horizon: int,
    seeds: int,
    rng: np.random.Generator,
    *,
    batch_size: int | None = None,
    checkpoints: int | Sequence[int] = 100,
    on_progress: Callable[[int], None] | None = None,
) -> SimulationResult:
    """Run `policy` on `env` for `horizon` decisions in `seeds` independent runs at once.

    batch_size=None is online: `choose` picks one arm per seed and the statistics are updated
    after every decision. batch_size=B is scheduled reweighting as in the service: `allocate`
    fixes the weights, B arms per seed are drawn from them, and the statistics are updated
    once the batch is over. The state is a StatsArray of shape (seeds, k); all draws come from
    `rng` in a fixed order, so the result is determined by the generator's seed.
    `on_progress(d)` is called now and then with the number d of decisions per seed just done.
    """
    for name, value in (("horizon", horizon), ("seeds", seeds)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: must be a positive integer, got {value!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size: must be a positive integer or None (online), got {batch_size!r}")
    times = checkpoint_times(horizon, checkpoints)
    k = env.k
    n = np.zeros((seeds, k))
    total = np.zeros((seeds, k))
    total_sq = np.zeros((seeds, k))
    stats = _stats_view(n, total, total_sq)
    regret = np.empty((seeds, times.size))
    report = on_progress if on_progress is not None else _ignore
    arrays = (n, total, total_sq)
    if batch_size is None and fits_beta_thompson_kernel(policy, env):
        # The same policy with a fused loop (see policies.beta_thompson_kernel): several times faster.
        run_beta_thompson_online(policy, env, horizon, rng, times, arrays, regret, report)
    elif batch_size is None:
        _run_online(policy, env, horizon, rng, times, stats, arrays, regret, report)
    else:
        _run_batches(policy, env, horizon, rng, batch_size, times, stats, arrays, regret, report)
    pulls = n.astype(np.int64)
    for arr in (times, regret, pulls):
        arr.flags.writeable = False  # the result is a value
    return SimulationResult(times, regret, pulls, horizon, batch_size)


def _ignore(done: int) -> None:
    """The default progress callback: nothing to report to."""


def _run_online(
    policy: SimulatedPolicy,
    env: Environment,
    horizon: int,
    rng: np.random.Generator,
    times: IntArray,
    stats: StatsArray,
    arrays: tuple[FloatArray, FloatArray, FloatArray],
    regret: FloatArray,
    report: Callable[[int], None],
) -> None:
    """One `choose` per step for all seeds, then an in-place update of the chosen arms' stats."""
    seeds, k = arrays[0].shape
    n_flat, total_flat, sq_flat = (a.reshape(-1) for a in arrays)  # views: the arrays are contiguous
    row_start = np.arange(seeds) * k
    stationary = env.stationary
    gaps = env.gaps_at(0)
    cum = np.zeros(seeds)
    next_g = 0
    next_time = int(times[0])
    stride = max(1, horizon // 100)  # about a hundred progress reports per run
    for t in range(horizon):
        arms = policy.choose(stats, rng)
        rewards = env.draw(arms, rng, t)
        # One arm per seed, so the flat indices are distinct and plain fancy-index += is exact.
        idx = row_start + arms
        n_flat[idx] += 1.0
        total_flat[idx] += rewards
        sq_flat[idx] += rewards * rewards
        cum += (gaps if stationary else env.gaps_at(t))[arms]
        if t + 1 == next_time:
            regret[:, next_g] = cum
            next_g += 1
            next_time = int(times[next_g]) if next_g < times.size else -1
        if (t + 1) % stride == 0:
            report(stride)
    if horizon % stride:
        report(horizon % stride)


def _run_batches(
    policy: SimulatedPolicy,
    env: Environment,
    horizon: int,
    rng: np.random.Generator,
    batch_size: int,
    times: IntArray,
    stats: StatsArray,
    arrays: tuple[FloatArray, FloatArray, FloatArray],
    regret: FloatArray,
    report: Callable[[int], None],
) -> None:
    """Weights fixed per batch by `allocate`; B arms per seed drawn at once; stats updated after."""
    seeds, k = arrays[0].shape
    size = seeds * k
    n_flat, total_flat, sq_flat = (a.reshape(-1) for a in arrays)
    row_start = (np.arange(seeds) * k)[:, None]
    cum = np.zeros(seeds)
    for start in range(0, horizon, batch_size):
        b = min(batch_size, horizon - start)
        weights = policy.allocate(stats, rng)
        arms = sample_arms(weights, rng, b)  # (seeds, b)
        t = np.arange(start, start + b)
        rewards = env.draw(arms, rng, t)
        # Many pulls of the same arm in a batch: bincount sums repeated indices, fancy += would not.
        idx = (row_start + arms).reshape(-1)
        r = rewards.reshape(-1)
        n_flat += np.bincount(idx, minlength=size)
        total_flat += np.bincount(idx, weights=r, minlength=size)
        sq_flat += np.bincount(idx, weights=r * r, minlength=size)
        cum = record_block(regret, times, start, env.gaps_at(t)[np.arange(b), arms], cum)
        report(b)
