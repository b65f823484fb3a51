"""Coverage of the report's intervals against the truth, beside the intervals they replaced.

    python -m benchmarks.coverage
    python -m benchmarks.coverage --replicates 3000 --seed 7

Prints, in one run:
- the headline difference's 95% interval in issue 14's trap (three weights periods 50/50, 10/90,
  90/10, rates drifting, b - a = +0.02 in each; 800 units a period) through the report builder:
  how often it covers +0.02, against the naive pooled interval beside it;
- the relative lift's 95% interval for proportions, exact coverage over every outcome of two
  binomials (no Monte Carlo): the log-ratio interval against the delta method on the ratio;
- Fieller's interval for a noisy continuous control by simulation, against the delta method
  (an unbounded Fieller set is checked by its defining inequality);
- the Horvitz-Thompson IPW difference's standard error with and without the covariance of the
  two arms' estimates, against a bootstrap of the decisions, on a log with changing propensities.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from scipy import stats as sps

from bandit_service.core.reporting import ReportInput, build_report
from policies.estimators import ipw_difference, ipw_means
from policies.ratios import fieller_interval, log_ratio_interval
from policies.stats import StatsArray

__all__ = ["main"]

Z = float(sps.norm.ppf(0.975))
TRAP_WEIGHTS = np.array([[0.5, 0.5], [0.1, 0.9], [0.9, 0.1]])
TRAP_RATES = np.array([[0.20, 0.22], [0.05, 0.07], [0.30, 0.32]])


def _trap_input(successes: np.ndarray, assigned: np.ndarray) -> ReportInput:
    period_stats = StatsArray.from_counts(successes, assigned)
    counts = tuple(int(x) for x in assigned.sum(axis=0))
    return ReportInput(
        arms=("a", "b"),
        reward="bernoulli",
        weights=tuple(float(x) for x in TRAP_WEIGHTS[-1]),
        units=counts,
        trials=counts,
        rewarded=counts,
        stats=StatsArray.from_counts(successes.sum(axis=0), assigned.sum(axis=0)),
        period_stats=period_stats,
        period_assigned=tuple(tuple(float(x) for x in row) for row in assigned),
        period_weights=tuple(tuple(float(x) for x in row) for row in TRAP_WEIGHTS),
        seed=1,
        draws=1,
    )


def headline_coverage(replicates: int, rng: np.random.Generator) -> tuple[float, float]:
    """Shares of replicates whose headline and pooled 95% intervals cover b - a = +0.02."""
    covered = pooled = 0
    for _ in range(replicates):
        assigned = np.stack([rng.multinomial(800, w) for w in TRAP_WEIGHTS])
        b = build_report(_trap_input(rng.binomial(assigned, TRAP_RATES), assigned)).primary.comparisons[0]
        covered += b.difference_interval[0] <= 0.02 <= b.difference_interval[1]
        pooled += b.pooled_interval[0] <= 0.02 <= b.pooled_interval[1]
    return covered / replicates, pooled / replicates


def _delta(m_t: np.ndarray, v_t: np.ndarray, m_c: np.ndarray, v_c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The interval the report used before: the delta method on the ratio, symmetric about it."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = m_t / m_c - 1.0
        se = np.sqrt(v_t / m_c**2 + m_t**2 * v_c / m_c**4)
    return rel - Z * se, rel + Z * se


def ratio_coverage_exact(n: int, p_t: float, p_c: float) -> tuple[float, float]:
    """Exact coverage of the log-ratio and the delta-method intervals of p_t / p_c - 1 (n per arm)."""
    x = np.arange(n + 1)
    weight = sps.binom.pmf(x, n, p_t)[:, None] * sps.binom.pmf(x, n, p_c)[None, :]
    m_t, m_c = (x / n)[:, None], (x / n)[None, :]
    v_t, v_c = m_t * (1 - m_t) / n, m_c * (1 - m_c) / n
    truth = p_t / p_c - 1
    new = log_ratio_interval(m_t, v_t, n, m_c, v_c, n)
    lo, hi = _delta(m_t, v_t, m_c, v_c)
    return (
        float(np.sum(weight * ((new.lower <= truth) & (truth <= new.upper)))),
        float(np.sum(weight * ((lo <= truth) & (truth <= hi)))),
    )


def fieller_coverage(runs: int, rng: np.random.Generator) -> tuple[float, float]:
    """Fieller against the delta method with a noisy control mean (1.0 +- 0.3), treatment 1.2 +- 0.25."""
    mu_t, mu_c, se_t, se_c = 1.2, 1.0, 0.25, 0.3
    m_t, m_c = rng.normal(mu_t, se_t, runs), rng.normal(mu_c, se_c, runs)
    truth = mu_t / mu_c - 1
    out = fieller_interval(m_t, se_t**2, m_c, se_c**2)
    member = (m_t - (truth + 1) * m_c) ** 2 <= Z**2 * (se_t**2 + (truth + 1) ** 2 * se_c**2)
    covered = np.where(out.bounded, (out.lower <= truth) & (truth <= out.upper), member)
    lo, hi = _delta(m_t, np.full(runs, se_t**2), m_c, np.full(runs, se_c**2))
    return float(covered.mean()), float(np.mean((lo <= truth) & (truth <= hi)))


def ipw_standard_errors(rng: np.random.Generator, decisions: int = 20_000, resamples: int = 2_000) -> np.ndarray:
    """(covariance-aware SE, sum-of-variances SE, bootstrap SE) of arm 1 - arm 0, Horvitz-Thompson."""
    k = 3
    drift = np.linspace(0.0, 1.0, decisions)[:, None]
    weights = (1 - drift) * np.array([0.6, 0.3, 0.1]) + drift * np.array([0.1, 0.3, 0.6])
    arm = (rng.random(decisions)[:, None] > np.cumsum(weights, axis=1)).sum(axis=1)
    reward = (rng.random(decisions) < np.array([0.30, 0.35, 0.40])[arm]).astype(float)
    propensity = weights[np.arange(decisions), arm]
    est = ipw_difference(arm, reward, propensity, k=k, control=0, self_normalised=False)
    means = ipw_means(arm, reward, propensity, k=k, self_normalised=False)
    old = math.sqrt(means.std_error[1] ** 2 + means.std_error[0] ** 2)
    w = np.zeros((decisions, k))
    w[np.arange(decisions), arm] = 1.0 / propensity
    times = rng.multinomial(decisions, np.full(decisions, 1.0 / decisions), size=resamples)
    boot = times @ (w * reward[:, None]) / decisions
    return np.array([est.std_error[1], old, (boot[:, 1] - boot[:, 0]).std(ddof=1)])


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Print every figure; return them by name."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicates", type=int, default=1_500, help="replicates of the trap (default 1,500)")
    parser.add_argument("--runs", type=int, default=20_000, help="simulated Fieller experiments (default 20,000)")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    out: dict[str, float] = {}
    out["headline"], out["pooled"] = headline_coverage(args.replicates, rng)
    print(
        f"trap (3 periods, b - a = +0.02), {args.replicates} replicates: 95% interval covers the truth in "
        f"{out['headline']:.2%} (headline, drift-corrected), {out['pooled']:.2%} (naive pooled)"
    )
    for n in (400, 200):
        new, old = ratio_coverage_exact(n, 0.06, 0.05)
        out[f"log_ratio_{n}"], out[f"delta_{n}"] = new, old
        print(f"relative lift, 0.06 vs 0.05, {n} per arm, exact: log-ratio {new:.2%}, delta method {old:.2%}")
    out["fieller"], out["fieller_delta"] = fieller_coverage(args.runs, rng)
    print(
        f"relative lift, noisy continuous control, {args.runs:,} runs: Fieller {out['fieller']:.2%}, "
        f"delta method {out['fieller_delta']:.2%}"
    )
    new_se, old_se, boot_se = ipw_standard_errors(rng)
    out["ipw_new"], out["ipw_old"] = new_se / boot_se - 1, old_se / boot_se - 1
    print(
        f"IPW (Horvitz-Thompson) SE of a 1 - arm 0 against the bootstrap: with the covariance "
        f"{out['ipw_new']:+.1%}, sum of variances {out['ipw_old']:+.1%}"
    )
    return out


if __name__ == "__main__":
    main()
