"""Offline commands: sample-size planning and the analysis of a CSV of rewards, no service needed."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from policies import StatsArray, bayesian_comparison, holm, sample_size_means, sample_size_proportions
from policies.frequentist import welch_test, z_test
from policies.posterior import RewardKind

__all__ = ["analyze_csv", "format_analysis", "format_sample_size", "plan_sample_size", "read_rewards"]


def plan_sample_size(
    baseline: float,
    mde: float,
    *,
    std: float | None = None,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    arms: int = 2,
    daily_traffic: float | None = None,
) -> str:
    """Units needed to detect `mde` (a rate difference, or a mean difference when `std` is given)."""
    if std is None:
        plan = sample_size_proportions(
            baseline, mde, relative=relative, alpha=alpha, power=power, arms=arms, daily_traffic=daily_traffic
        )
    else:
        plan = sample_size_means(
            baseline, std, mde, relative=relative, alpha=alpha, power=power, arms=arms, daily_traffic=daily_traffic
        )
    return format_sample_size(plan)


def format_sample_size(plan: object) -> str:
    """The plan as aligned `name: value` lines."""
    fields = getattr(plan, "__struct_fields__", ())
    lines = []
    for name in fields:
        value = getattr(plan, name)
        if isinstance(value, float):
            value = "-" if math.isnan(value) else f"{value:.6g}"
        lines.append(f"{name:>15}: {value}")
    return "\n".join(lines)


def read_rewards(path: Path) -> tuple[list[str], StatsArray]:
    """Arms (in order of first appearance) and their statistics from a CSV with `arm,reward` columns."""
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"arm", "reward"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected a header with the columns 'arm' and 'reward'")
        rewards: dict[str, list[float]] = {}
        for line, row in enumerate(reader, start=2):
            try:
                value = float(row["reward"])
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{line}: reward {row['reward']!r} is not a number") from None
            if not math.isfinite(value):
                raise ValueError(f"{path}:{line}: reward must be finite, got {row['reward']!r}")
            rewards.setdefault(row["arm"], []).append(value)
    if len(rewards) < 2:
        raise ValueError(f"{path}: need rewards of at least two arms, found {len(rewards)}")
    arms = list(rewards)
    return arms, StatsArray.from_rewards([rewards[a] for a in arms])


def _is_binary(stats: StatsArray) -> bool:
    return bool(np.all(stats.total_sq == stats.total) and np.all(stats.total <= stats.n))


def analyze_csv(path: Path, control: str | None, seed: int, level: float = 0.95) -> str:
    """Frequentist and Bayesian comparisons of every arm against the control, as a text table."""
    arms, stats = read_rewards(path)
    control_name = arms[0] if control is None else control
    if control_name not in arms:
        raise ValueError(f"control: no arm {control_name!r} in {path} (arms: {', '.join(arms)})")
    return format_analysis(arms, stats, arms.index(control_name), np.random.default_rng(seed), level)


def format_analysis(arms: list[str], stats: StatsArray, control: int, rng: np.random.Generator, level: float) -> str:
    """The comparison table for arms with the given statistics."""
    reward: RewardKind = "bernoulli" if _is_binary(stats) else "continuous"
    tests = z_test(stats, control, level) if reward == "bernoulli" else welch_test(stats, control, level)
    p_values = np.array([t.p_value for t in tests])
    defined = ~np.isnan(p_values)
    adjusted = np.full(p_values.shape, np.nan)
    if defined.any():
        adjusted[defined] = holm(p_values[defined])
    bayes = bayesian_comparison(stats, control, reward, rng, level=level)
    pct = f"{level:.0%}"
    out = [f"{reward} rewards, control {arms[control]!r}, {pct} intervals", ""]
    out.append(f"{'arm':<16}{'n':>9}{'mean':>10}{'sd':>10}{'P(best)':>9}{'exp.loss':>10}")
    sd = stats.std
    for i, name in enumerate(arms):
        b = bayes.arms[i]
        out.append(
            f"{name:<16}{stats.n[i]:>9.0f}{stats.mean[i]:>10.4g}{sd[i]:>10.4g}{b.prob_best:>9.3f}{b.expected_loss:>10.3g}"
        )
    out += ["", f"{'vs control':<16}{'diff':>10}{pct + ' CI':>22}{'lift':>9}{'p':>9}{'p(Holm)':>9}{'P(beats)':>9}"]
    for t, p_adj in zip(tests, adjusted, strict=True):
        lo, hi = t.difference_interval
        beats = bayes.arms[t.arm].prob_beats_control
        out.append(
            f"{arms[t.arm]:<16}{t.difference:>10.4g}{f'[{lo:.4g}, {hi:.4g}]':>22}{t.relative:>9.2%}"
            f"{t.p_value:>9.4f}{p_adj:>9.4f}{(beats if beats is not None else math.nan):>9.3f}"
        )
    return "\n".join(out)
