"""What the report builder needs: an experiment's counters, statistics and decision criteria, as one value."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import msgspec
import numpy as np

from bandit_service.core.fields import MetricName
from bandit_service.core.looks import SequentialLook
from policies.corrections import Correction
from policies.sequential import DEFAULT_TUNING_N
from policies.sketch import QuantileSketch
from policies.stats import FloatArray, StatsArray

__all__ = [
    "MAX_GUARDRAILS",
    "PRIMARY",
    "BoundKind",
    "DecisionCriteria",
    "Guardrail",
    "PrimaryCriterion",
    "ReportInput",
    "RewardKind",
]

RewardKind = Literal["bernoulli", "continuous"]
NonNegative = Annotated[float, msgspec.Meta(ge=0.0)]

PRIMARY = "reward"  # the name the criteria use for the reward the policy optimises
MAX_GUARDRAILS = 20

BoundKind = Literal["max_increase", "max_relative_increase", "max_decrease", "max_relative_decrease"]
_BOUNDS: tuple[BoundKind, ...] = ("max_increase", "max_relative_increase", "max_decrease", "max_relative_decrease")


class PrimaryCriterion(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The metric to ship on (higher is better) and the improvement over the control it must show."""

    metric: MetricName = PRIMARY
    min_improvement: NonNegative = 0.0
    relative: bool = False  # min_improvement is a share of the control's mean (0.02 = +2%)

    def __post_init__(self) -> None:
        if not self.metric:
            raise ValueError("metric: must be a non-empty metric name")
        if not math.isfinite(self.min_improvement) or self.min_improvement < 0:
            raise ValueError(f"min_improvement: must be a finite number >= 0, got {self.min_improvement!r}")


class Guardrail(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A limit on how far a metric may move against the control; exactly one bound is set.

    `{"metric": "error", "max_increase": 0.01}` or `{"metric": "latency_ms", "max_relative_increase": 0.10}`;
    the decrease forms guard metrics that must not fall (revenue).
    """

    metric: MetricName
    max_increase: NonNegative | None = None
    max_relative_increase: NonNegative | None = None
    max_decrease: NonNegative | None = None
    max_relative_decrease: NonNegative | None = None

    def __post_init__(self) -> None:
        if not self.metric:
            raise ValueError("metric: must be a non-empty metric name")
        given = [(name, getattr(self, name)) for name in _BOUNDS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"{', '.join(_BOUNDS)}: exactly one bound must be set, got {len(given)}")
        name, value = given[0]
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name}: must be a finite number >= 0, got {value!r}")

    @property
    def bound(self) -> tuple[BoundKind, float]:
        """The one bound that is set, as (name, limit)."""
        for name in _BOUNDS:
            value = getattr(self, name)
            if value is not None:
                return name, float(value)
        raise AssertionError("unreachable: __post_init__ guarantees one bound")


class DecisionCriteria(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The decision rule stored on an experiment: a primary criterion and any number of guardrails."""

    primary: PrimaryCriterion = PrimaryCriterion()
    guardrails: Annotated[tuple[Guardrail, ...], msgspec.Meta(max_length=MAX_GUARDRAILS)] = ()


class ReportInput(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one report is computed from; arms are in configured order, index `control` is the control.

    Per-period arrays have one row per weights period (between two reweights), P >= 1 rows.
    `period_assigned[p][a]` counts the arm choices made by period p's weights: trials for an
    experiment without a sticky store, first assignments of new units for a sticky one (a returning
    unit keeps its old arm, so it says nothing about period p's weights). Those counts drive the
    sample-ratio check and weight the periods of the drift-corrected estimate.
    """

    arms: tuple[str, ...]
    control: int = 0
    reward: RewardKind
    weights: tuple[float, ...]  # current weights
    units: tuple[int, ...]
    trials: tuple[int, ...]  # what the statistics count: units' trials, or single decisions
    rewarded: tuple[int, ...]  # trials with a reward
    expired: tuple[int, ...] | None = None  # trials counted with the missing value (None: all zero)
    excluded: tuple[int, ...] | None = None  # trials left out for want of a reward (None: all zero)
    exposures: tuple[int, ...] | None = None  # decisions served (None: not known)
    local: tuple[int, ...] | None = None  # decisions SDKs evaluated locally and logged (None: none, or not known)
    contradicted: tuple[int, ...] | None = None  # of those, arms that differed from the unit's sticky arm
    trial: Literal["unit", "decision"] = "decision"
    aggregate: Literal["sum", "max", "mean", "last"] = "last"
    missing: float | None = 0.0  # a trial without a reward counts with this (None: excluded)
    stats: StatsArray  # primary reward, shape (k,)
    period_stats: StatsArray  # primary reward per weights period, shape (P, k)
    period_assigned: tuple[tuple[float, ...], ...]  # (P, k)
    period_weights: tuple[tuple[float, ...], ...]  # (P, k), each row sums to 1
    period_versions: tuple[int, ...] = ()  # the weights version of each period (empty: numbered from 1)
    metrics: dict[str, StatsArray] = msgspec.field(default_factory=dict)  # name -> (k,)
    period_metrics: dict[str, StatsArray] = msgspec.field(default_factory=dict)  # name -> (P, k), optional
    sketches: dict[str, tuple[QuantileSketch, ...]] = msgspec.field(default_factory=dict)  # name -> one per arm
    criteria: DecisionCriteria = DecisionCriteria()
    # Minimum sample size per arm: `min_sample_size` observations, or a power calculation (alpha =
    # 1 - level over k - 1 comparisons, `power`) for `minimum_detectable_effect` of the primary
    # criterion's metric (absolute, or relative to the control's mean); the larger when both are set.
    min_sample_size: int | None = None
    minimum_detectable_effect: float | None = None
    mde_relative: bool = False
    power: float = 0.8
    level: float = 0.95  # confidence level in (0.5, 1); alpha = 1 - level
    correction: Correction = "holm"  # across the arms' comparisons with the control: holm, bonferroni or none
    # The always-valid figures' mixture: tightest boundary near this many observations per arm (`policies.sequential`).
    sequential_tuning_n: float = DEFAULT_TUNING_N
    looks: tuple[SequentialLook, ...] = ()  # the stored running figures of the earlier looks (none: first look)
    srm_threshold: float = 0.001
    error_metric: str = "error"
    seed: int  # for the Bayesian Monte Carlo draws, echoed in the report so it can be replayed
    draws: int = 20_000

    def __post_init__(self) -> None:
        k = len(self.arms)
        if k < 2:
            raise ValueError(f"arms: need at least two arms, got {k}")
        if len(set(self.arms)) != k or not all(self.arms):
            raise ValueError("arms: names must be non-empty and unique")
        if isinstance(self.control, bool) or not isinstance(self.control, int) or not 0 <= self.control < k:
            raise ValueError(f"control: must be an arm index in [0, {k}), got {self.control!r}")
        if self.reward not in ("bernoulli", "continuous"):
            raise ValueError(f"reward: must be 'bernoulli' or 'continuous', got {self.reward!r}")
        w = _vector("weights", self.weights, k)
        if not math.isclose(float(w.sum()), 1.0, abs_tol=1e-9):
            raise ValueError(f"weights: must sum to 1, got {float(w.sum())!r}")
        for name in ("units", "trials", "rewarded"):
            _vector(name, getattr(self, name), k)
        for name in ("expired", "excluded", "exposures", "local", "contradicted"):
            if getattr(self, name) is not None:
                _vector(name, getattr(self, name), k)
        _stats("stats", self.stats, (k,))
        periods = self.period_stats.n.shape[0] if self.period_stats.n.ndim == 2 else 0
        if periods < 1:
            raise ValueError(f"period_stats: expected shape (periods >= 1, {k}), got {self.period_stats.n.shape}")
        _stats("period_stats", self.period_stats, (periods, k))
        _matrix("period_assigned", self.period_assigned, (periods, k))
        pw = _matrix("period_weights", self.period_weights, (periods, k))
        if self.period_versions and len(self.period_versions) != periods:
            raise ValueError(f"period_versions: expected one version per period ({periods})")
        if not np.allclose(pw.sum(axis=1), 1.0, rtol=0.0, atol=1e-9):
            raise ValueError("period_weights: every row must sum to 1")
        if PRIMARY in self.metrics:
            raise ValueError(f"metrics: {PRIMARY!r} is the primary reward's name and cannot be an extra metric")
        for name, stats in self.metrics.items():
            _stats(f"metrics[{name!r}]", stats, (k,))
        for name, stats in self.period_metrics.items():
            if name not in self.metrics:
                raise ValueError(f"period_metrics[{name!r}]: no such metric in metrics")
            _stats(f"period_metrics[{name!r}]", stats, (periods, k))
        for name, sketches in self.sketches.items():
            if len(sketches) != k or not all(isinstance(s, QuantileSketch) for s in sketches):
                raise ValueError(f"sketches[{name!r}]: expected one QuantileSketch per arm ({k})")
        _check_optional_sizes(self.min_sample_size, self.minimum_detectable_effect)
        for name, low in (("power", 0.0), ("level", 0.5), ("srm_threshold", 0.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value < 1.0:
                raise ValueError(f"{name}: must be a number in ({low:g}, 1), got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed: must be a non-negative integer, got {self.seed!r}")
        if isinstance(self.draws, bool) or not isinstance(self.draws, int) or not 1 <= self.draws <= 10_000_000:
            raise ValueError(f"draws: must be an integer in [1, 10000000], got {self.draws!r}")

    @property
    def k(self) -> int:
        """Number of arms."""
        return len(self.arms)

    @property
    def alpha(self) -> float:
        """Significance level 1 - level."""
        return 1.0 - self.level

    @property
    def period_traffic(self) -> FloatArray:
        """Each weights period's arm choices (P,): the period weights of the stratified estimate."""
        return np.asarray(self.period_assigned, dtype=np.float64).sum(axis=1)


def _vector(name: str, values: tuple[float, ...], k: int) -> FloatArray:
    a = np.asarray(values, dtype=np.float64)
    if a.shape != (k,):
        raise ValueError(f"{name}: expected one value per arm ({k}), got {len(values)}")
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ValueError(f"{name}: values must be finite and non-negative")
    return a


def _matrix(name: str, rows: tuple[tuple[float, ...], ...], shape: tuple[int, int]) -> FloatArray:
    if len(rows) != shape[0] or any(len(r) != shape[1] for r in rows):
        raise ValueError(f"{name}: expected {shape[0]} rows (one per period) of {shape[1]} values (one per arm)")
    a = np.asarray(rows, dtype=np.float64).reshape(shape)
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ValueError(f"{name}: values must be finite and non-negative")
    return a


def _stats(name: str, stats: StatsArray, shape: tuple[int, ...]) -> None:
    if not isinstance(stats, StatsArray) or stats.n.shape != shape:
        got = stats.n.shape if isinstance(stats, StatsArray) else type(stats).__name__
        raise ValueError(f"{name}: expected a StatsArray of shape {shape}, got {got}")


def _check_optional_sizes(min_sample_size: int | None, mde: float | None) -> None:
    if min_sample_size is not None and (
        isinstance(min_sample_size, bool) or not isinstance(min_sample_size, int) or min_sample_size < 1
    ):
        raise ValueError(f"min_sample_size: must be a positive integer, got {min_sample_size!r}")
    if mde is not None and (
        isinstance(mde, bool) or not isinstance(mde, (int, float)) or not math.isfinite(mde) or mde == 0
    ):
        raise ValueError(f"minimum_detectable_effect: must be a finite non-zero number, got {mde!r}")
