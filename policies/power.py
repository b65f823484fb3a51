"""Sample size, power and duration for comparing each arm with a control (normal approximation)."""

from __future__ import annotations

import math
from typing import Literal, assert_never

import msgspec
from scipy import stats as sps

from policies.corrections import Correction

__all__ = [
    "SampleSize",
    "duration_days",
    "power_means",
    "power_proportions",
    "sample_size_means",
    "sample_size_proportions",
]


class SampleSize(msgspec.Struct, frozen=True):
    """Units needed per arm to detect `difference` with the target power; `days` if traffic was given."""

    metric: Literal["proportion", "mean"]
    control: int
    treatment: int  # per treatment arm
    arms: int
    total: int
    difference: float  # the minimum detectable effect, absolute
    alpha: float  # per comparison, after the correction over arms - 1 comparisons
    power: float  # the target
    achieved_power: float  # at the rounded-up sizes
    days: int | None
    correction: str  # what was applied to alpha, e.g. "bonferroni over 2 comparisons (conservative for holm)"


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: must be a finite number, got {value!r}")
    return float(value)


def _open_unit(name: str, value: float) -> float:
    v = _finite(name, value)
    if not 0.0 < v < 1.0:
        raise ValueError(f"{name}: must lie in (0, 1), got {value!r}")
    return v


def _positive(name: str, value: float) -> float:
    v = _finite(name, value)
    if v <= 0.0:
        raise ValueError(f"{name}: must be positive, got {value!r}")
    return v


def _per_comparison_alpha(alpha: float, arms: int, correction: Correction) -> tuple[float, str]:
    """Alpha per comparison and a description of the correction applied, for the report to print.

    Holm's first (smallest) p-value faces alpha / m, so planning every comparison at the
    Bonferroni level alpha / m, m = arms - 1, is conservative for Holm as well.
    """
    _open_unit("alpha", alpha)
    if isinstance(arms, bool) or not isinstance(arms, int) or arms < 2:
        raise ValueError(f"arms: must be an integer >= 2 (control included), got {arms!r}")
    if correction not in ("holm", "bonferroni", "none"):
        raise ValueError(f"correction: must be 'holm', 'bonferroni' or 'none', got {correction!r}")
    m = arms - 1
    match correction:
        case "none":
            return alpha, "none"
        case "holm" | "bonferroni":
            noun = "comparison" if m == 1 else "comparisons"
            note = " (conservative for holm)" if correction == "holm" else ""
            return alpha / m, f"bonferroni over {m} {noun}{note}"
        case _:
            assert_never(correction)


def _difference(baseline: float, mde: float, relative: bool) -> float:
    d = _finite("mde", mde) * (baseline if relative else 1.0)
    if d == 0.0:
        raise ValueError("mde: the minimum detectable effect must be non-zero")
    return d


def _treatment_rate(baseline: float, mde: float, relative: bool) -> tuple[float, float]:
    pc = _open_unit("baseline", baseline)
    d = _difference(pc, mde, relative)
    if not 0.0 < pc + d < 1.0:
        raise ValueError(f"mde: baseline + effect = {pc + d!r} is not a rate in (0, 1)")
    return pc, d


def _two_tailed_power(diff: float, alpha: float, se_null: float, se_alt: float) -> float:
    z = sps.norm.isf(alpha / 2.0)
    d = abs(diff)
    return float(sps.norm.cdf((d - z * se_null) / se_alt) + sps.norm.cdf((-d - z * se_null) / se_alt))


def duration_days(total: int, daily_traffic: float) -> int:
    """Whole days to collect `total` units at `daily_traffic` eligible units per day."""
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise ValueError(f"total: must be a non-negative integer, got {total!r}")
    return math.ceil(total / _positive("daily_traffic", daily_traffic))


def power_proportions(
    baseline: float, mde: float, n_control: float, *, relative: bool = False, alpha: float = 0.05, ratio: float = 1.0
) -> float:
    """Power of the two-sided pooled two-proportion z-test with n_control and ratio * n_control units.

    Pooled variance under H0, unpooled under H1, both tails (Fleiss, Levin & Paik, 2003, eq. 4.14;
    statsmodels `power_proportions_2indep`).
    """
    pc, d = _treatment_rate(baseline, mde, relative)
    _open_unit("alpha", alpha)
    nc = _positive("n_control", n_control)
    nt = _positive("ratio", ratio) * nc
    pt = pc + d
    pbar = (nc * pc + nt * pt) / (nc + nt)
    se_null = math.sqrt(pbar * (1.0 - pbar) * (1.0 / nc + 1.0 / nt))
    se_alt = math.sqrt(pc * (1.0 - pc) / nc + pt * (1.0 - pt) / nt)
    return _two_tailed_power(d, alpha, se_null, se_alt)


def power_means(
    baseline: float,
    std: float,
    mde: float,
    n_control: float,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    ratio: float = 1.0,
    treatment_std: float | None = None,
) -> float:
    """Power of the two-sided two-sample z-test of means (normal approximation to Welch's test).

    Power = Phi(|d|/se - z) + Phi(-|d|/se - z), se = sqrt(s_c^2/n_c + s_t^2/n_t) (Chow, Shao &
    Wang, 2008, "Sample Size Calculations in Clinical Research", 3.2; statsmodels `NormalIndPower`).
    """
    d = _difference(_finite("baseline", baseline), mde, relative)
    _open_unit("alpha", alpha)
    sc = _positive("std", std)
    st = sc if treatment_std is None else _positive("treatment_std", treatment_std)
    nc = _positive("n_control", n_control)
    nt = _positive("ratio", ratio) * nc
    se = math.sqrt(sc**2 / nc + st**2 / nt)
    return _two_tailed_power(d, alpha, se, se)


def _sizes(n_exact: float, ratio: float) -> tuple[int, int]:
    # 1e-9 so that a float a hair above an integer is not rounded up to the next one.
    return max(1, math.ceil(n_exact - 1e-9)), max(1, math.ceil(ratio * n_exact - 1e-9))


def _days(total: int, daily_traffic: float | None) -> int | None:
    return None if daily_traffic is None else duration_days(total, daily_traffic)


def sample_size_proportions(
    baseline: float,
    mde: float,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    arms: int = 2,
    daily_traffic: float | None = None,
    correction: Correction = "bonferroni",
) -> SampleSize:
    """Units per arm for the pooled two-proportion z-test to detect `mde` (absolute or relative).

    n_c = (z_{1-a/2} sqrt(pbar qbar (1 + 1/r)) + z_{power} sqrt(p_c q_c + p_t q_t / r))^2 / d^2,
    r = n_t / n_c, pbar = (p_c + r p_t) / (1 + r): the one-tail closed form without continuity
    correction (Fleiss, Levin & Paik, 2003, eq. 4.14; statsmodels
    `samplesize_proportions_2indep_onetail`). Alpha is split over the arms - 1 comparisons for
    "holm" and "bonferroni" (Bonferroni, conservative for Holm) and kept per comparison for "none".
    """
    pc, d = _treatment_rate(baseline, mde, relative)
    a, applied = _per_comparison_alpha(alpha, arms, correction)
    _open_unit("power", power)
    r = _positive("ratio", ratio)
    pt = pc + d
    pbar = (pc + r * pt) / (1.0 + r)
    za, zb = sps.norm.isf(a / 2.0), sps.norm.ppf(power)
    root = za * math.sqrt(pbar * (1.0 - pbar) * (1.0 + 1.0 / r)) + zb * math.sqrt(pc * (1 - pc) + pt * (1 - pt) / r)
    nc, nt = _sizes(max(root, 0.0) ** 2 / d**2, r)
    achieved = power_proportions(pc, d, nc, alpha=a, ratio=nt / nc)
    total = nc + (arms - 1) * nt
    return SampleSize("proportion", nc, nt, arms, total, d, a, power, achieved, _days(total, daily_traffic), applied)


def sample_size_means(
    baseline: float,
    std: float,
    mde: float,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    arms: int = 2,
    treatment_std: float | None = None,
    daily_traffic: float | None = None,
    correction: Correction = "bonferroni",
) -> SampleSize:
    """Units per arm to detect a difference in means `mde` (absolute, or relative to `baseline`).

    n_c = (z_{1-a/2} + z_{power})^2 (s_c^2 + s_t^2 / r) / d^2 with r = n_t / n_c (Chow, Shao &
    Wang, 2008, 3.2.1; statsmodels `NormalIndPower` for s_t = s_c). Alpha is split over the
    arms - 1 comparisons for "holm" and "bonferroni" and kept per comparison for "none".
    """
    d = _difference(_finite("baseline", baseline), mde, relative)
    a, applied = _per_comparison_alpha(alpha, arms, correction)
    _open_unit("power", power)
    sc = _positive("std", std)
    st = sc if treatment_std is None else _positive("treatment_std", treatment_std)
    r = _positive("ratio", ratio)
    n_exact = (sps.norm.isf(a / 2.0) + sps.norm.ppf(power)) ** 2 * (sc**2 + st**2 / r) / d**2
    nc, nt = _sizes(n_exact, r)
    achieved = power_means(0.0, sc, d, nc, alpha=a, ratio=nt / nc, treatment_std=st)
    total = nc + (arms - 1) * nt
    return SampleSize("mean", nc, nt, arms, total, d, a, power, achieved, _days(total, daily_traffic), applied)
