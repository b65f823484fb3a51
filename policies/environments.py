"""Simulated bandit environments: stationary Bernoulli and Gaussian arms, and piecewise drift."""

from __future__ import annotations

from typing import ClassVar, Protocol

import msgspec
import numpy as np
from numpy.typing import ArrayLike

from policies.posterior import RewardKind
from policies.stats import FloatArray, IntArray

__all__ = ["BernoulliEnv", "DriftingEnv", "Environment", "EnvironmentConfig", "GaussianEnv", "StationaryEnv"]


class Environment(Protocol):
    """What the simulator needs from an environment: arm means over time and reward draws."""

    @property
    def k(self) -> int:
        """Number of arms."""
        ...

    @property
    def reward(self) -> RewardKind:
        """The kind of rewards drawn: 0/1 ("bernoulli") or real numbers ("continuous")."""
        ...

    @property
    def stationary(self) -> bool:
        """True when the means never change, so the simulator may compute the gaps once."""
        ...

    def means_at(self, t: ArrayLike) -> FloatArray:
        """Arm means at 0-based decision times t, shape (*t.shape, k)."""
        ...

    def gaps_at(self, t: ArrayLike) -> FloatArray:
        """Gap of every arm to the best arm at times t, shape (*t.shape, k)."""
        ...

    def draw(self, arms: IntArray, rng: np.random.Generator, t: ArrayLike = 0) -> FloatArray:
        """One reward per chosen arm (shape of `arms`); t (broadcast against arms) is the decision time."""
        ...


def _as_vector(name: str, values: tuple[float, ...]) -> FloatArray:
    """A non-empty, finite 1-D float array, or a ValueError naming the parameter."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a list of numbers, got {values!r}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a flat list of numbers, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: the arm list is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: values must be finite (no NaN or infinity)")
    return arr


def _check_arms(arms: IntArray, k: int) -> IntArray:
    a = np.asarray(arms)
    if a.dtype.kind not in "iu":
        raise ValueError(f"arms: expected integer arm indices, got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= k):
        raise ValueError(f"arms: indices must lie in [0, {k}), got range [{a.min()}, {a.max()}]")
    return a


class _Stationary(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="kind"):
    """Shared read-outs of an environment whose arm means never change."""

    means: tuple[float, ...]
    stationary: ClassVar[bool] = True

    @property
    def k(self) -> int:
        """Number of arms."""
        return len(self.means)

    @property
    def mean_array(self) -> FloatArray:
        """The arm means as a float array of shape (k,)."""
        return np.asarray(self.means, dtype=np.float64)

    @property
    def best_mean(self) -> float:
        """The highest arm mean, mu*."""
        return float(max(self.means))

    @property
    def gaps(self) -> FloatArray:
        """mu* - mu_i per arm (0 for the best arm): the expected regret of one pull of arm i."""
        m = self.mean_array
        return m.max() - m

    def means_at(self, t: ArrayLike) -> FloatArray:
        """Arm means at times t, shape (*t.shape, k): the same means at every time."""
        return np.broadcast_to(self.mean_array, (*np.shape(t), self.k))

    def gaps_at(self, t: ArrayLike) -> FloatArray:
        """Gaps at times t, shape (*t.shape, k): the same gaps at every time."""
        return np.broadcast_to(self.gaps, (*np.shape(t), self.k))


class BernoulliEnv(_Stationary, frozen=True, tag="bernoulli"):
    """Arms paying 1 with probability means[i], else 0."""

    reward: ClassVar[RewardKind] = "bernoulli"

    def __post_init__(self) -> None:
        m = _as_vector("means", self.means)
        if np.any((m < 0) | (m > 1)):
            raise ValueError(f"means: Bernoulli means must lie in [0, 1], got {m.tolist()}")

    def draw(self, arms: IntArray, rng: np.random.Generator, t: ArrayLike = 0) -> FloatArray:
        """0/1 rewards, one per chosen arm; t is ignored (stationary)."""
        a = _check_arms(arms, self.k)
        return (rng.random(a.shape) < self.mean_array[a]).astype(np.float64)


class GaussianEnv(_Stationary, frozen=True, tag="gaussian"):
    """Arms paying Normal(means[i], sds[i]^2) rewards."""

    sds: tuple[float, ...]
    reward: ClassVar[RewardKind] = "continuous"

    def __post_init__(self) -> None:
        m = _as_vector("means", self.means)
        s = _as_vector("sds", self.sds)
        if s.size != m.size:
            raise ValueError(f"sds: mismatched lengths, {s.size} standard deviations for {m.size} arms")
        if np.any(s <= 0):
            raise ValueError(f"sds: standard deviations must be positive, got {s.tolist()}")

    def draw(self, arms: IntArray, rng: np.random.Generator, t: ArrayLike = 0) -> FloatArray:
        """Normal rewards, one per chosen arm; t is ignored (stationary)."""
        a = _check_arms(arms, self.k)
        sds = np.asarray(self.sds, dtype=np.float64)
        return self.mean_array[a] + sds[a] * rng.standard_normal(a.shape)


StationaryEnv = BernoulliEnv | GaussianEnv


class DriftingEnv(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="kind", tag="drifting"):
    """Piecewise-stationary arms: phase p's environment holds for change_times[p-1] <= t < change_times[p].

    Times are 0-based decision indices; the first phase starts at t = 0 and the last one
    never ends. All phases have the same number of arms and the same reward kind.
    """

    phases: tuple[StationaryEnv, ...]
    change_times: tuple[int, ...] = ()
    stationary: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if len(self.phases) == 0:
            raise ValueError("phases: need at least one phase")
        for i, p in enumerate(self.phases):
            if not isinstance(p, (BernoulliEnv, GaussianEnv)):
                raise ValueError(f"phases[{i}]: expected a BernoulliEnv or GaussianEnv, got {type(p).__name__}")
        if len({p.k for p in self.phases}) != 1:
            raise ValueError(f"phases: mismatched lengths, arm counts {[p.k for p in self.phases]}")
        if len({type(p) for p in self.phases}) != 1:
            raise ValueError("phases: all phases must have the same reward kind")
        if len(self.change_times) != len(self.phases) - 1:
            raise ValueError(
                f"change_times: mismatched lengths, {len(self.change_times)} for {len(self.phases)} phases"
                " (need one fewer than phases)"
            )
        for c in self.change_times:
            if isinstance(c, bool) or not isinstance(c, int) or c < 1:
                raise ValueError(f"change_times: must be positive integers, got {c!r}")
        if any(b <= a for a, b in zip(self.change_times, self.change_times[1:], strict=False)):
            raise ValueError(f"change_times: must be strictly increasing, got {list(self.change_times)}")

    @property
    def k(self) -> int:
        """Number of arms."""
        return self.phases[0].k

    @property
    def reward(self) -> RewardKind:
        """The reward kind shared by all phases."""
        return self.phases[0].reward

    def phase_at(self, t: ArrayLike) -> IntArray:
        """Index of the phase in force at 0-based times t."""
        t_arr = np.asarray(t)
        if t_arr.dtype.kind not in "iu":
            raise ValueError(f"t: expected integer decision times, got dtype {t_arr.dtype}")
        return np.searchsorted(np.asarray(self.change_times, dtype=np.int64), t_arr, side="right")

    def means_at(self, t: ArrayLike) -> FloatArray:
        """Arm means at times t, shape (*t.shape, k)."""
        table = np.stack([p.mean_array for p in self.phases])
        return table[self.phase_at(t)]

    def gaps_at(self, t: ArrayLike) -> FloatArray:
        """Gap of every arm to the best arm of the phase in force at t, shape (*t.shape, k)."""
        table = np.stack([p.gaps for p in self.phases])
        return table[self.phase_at(t)]

    def draw(self, arms: IntArray, rng: np.random.Generator, t: ArrayLike = 0) -> FloatArray:
        """One reward per chosen arm from the phase in force at its time t (broadcast against arms)."""
        a = _check_arms(arms, self.k)
        phase = self.phase_at(t)
        if phase.ndim == 0:  # one time for every arm (an online step): a single phase
            return self.phases[int(phase)].draw(a, rng)
        phase = np.broadcast_to(phase, a.shape)
        out = np.empty(a.shape)
        for p in np.unique(phase):  # a batch straddles at most a few change times
            sel = phase == p
            out[sel] = self.phases[int(p)].draw(a[sel], rng)
        return out


EnvironmentConfig = BernoulliEnv | GaussianEnv | DriftingEnv
