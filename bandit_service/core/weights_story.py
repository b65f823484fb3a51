"""Why the weights moved: each weights version's posterior summary per arm, and a one-line reason.

A pure function of the stored history rows (each keeps the arm statistics its weights came
from), computed when the history is read: no migration, and the same rows always read the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import assert_never

import msgspec
import numpy as np

from bandit_service.core.model import RewardKind, WeightsHistory, WeightsReason, WeightsRecord
from policies import ArmStats, BetaPosterior, StatsArray, posterior, prob_best_beta_exact, prob_best_monte_carlo

__all__ = ["DRAWS", "EXACT_ARMS", "ArmSummary", "ExplainedHistory", "WeightsExplanation", "explain", "summarize"]

DRAWS = 10_000
"""Monte Carlo draws of one P(best): a standard error of at most 0.005, the precision the reason shows."""
EXACT_ARMS = 4
"""Most arms whose Beta P(best) comes from quadrature: it costs about arms^3 (4 arms: 4 ms, 10 arms: 40 ms
a row), while DRAWS draws cost about 0.6 ms per arm, and a history page has up to 1,000 rows."""
# Every row's draws come from one fixed seed (common random numbers): two rows' P(best) then
# differ by what their data changed, not by Monte Carlo noise, and equal statistics give equal
# summaries whichever row (or page) they are read in.
_SEED = 0x5EED_14
# A P(best) change smaller than one shown step does not count as a move: 0.4951 -> 0.4949 would
# read "fell from 0.50 to 0.49" (Monte Carlo P(best) also has a standard error of about 0.005).
_PROB_MOVED = 0.01


class ArmSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One arm's conjugate posterior when the weights were computed: mean, credible interval, P(best), n."""

    arm: str
    n: int
    mean: float
    interval: tuple[float, float]
    prob_best: float


class WeightsExplanation(msgspec.Struct, frozen=True, kw_only=True):
    """One weights version with the posterior summary per arm that produced it and why it moved."""

    version: int
    created_at: float
    reason: WeightsReason
    weights: tuple[float, ...]
    arms: tuple[ArmSummary, ...]
    because: str  # one line, every number from the rows


class ExplainedHistory(msgspec.Struct, frozen=True, kw_only=True):
    """A weights history with one explanation per row, in the same order."""

    history: WeightsHistory
    explanations: tuple[WeightsExplanation, ...]

    def __post_init__(self) -> None:
        if len(self.explanations) != len(self.history.records):
            raise ValueError(
                f"explanations: {len(self.explanations)} for {len(self.history.records)} weights-history rows"
            )


def summarize(
    stats: Sequence[ArmStats], arms: Sequence[str], reward: RewardKind, level: float = 0.95
) -> tuple[ArmSummary, ...]:
    """Each arm's conjugate posterior summary (Beta(1, 1) or Normal-Inverse-Gamma prior, `policies.posterior`).

    P(best) is exact quadrature for Beta posteriors of up to EXACT_ARMS arms, otherwise the share
    of DRAWS joint draws each arm wins. Statistics missing from a row (none stored) read as no
    data: the prior's summary with n 0.
    """
    if not arms:
        raise ValueError("arms: the arm list is empty")
    if len(stats) != len(arms):
        stats = (ArmStats(),) * len(arms)
    post = posterior(StatsArray.from_arms(stats), reward)
    lo, hi = post.interval(level)
    if isinstance(post, BetaPosterior) and len(arms) <= EXACT_ARMS:
        best = prob_best_beta_exact(post.alpha, post.beta)
    else:
        best = prob_best_monte_carlo(post, np.random.default_rng(_SEED), DRAWS)
    mean = post.mean
    return tuple(
        ArmSummary(
            arm=name,
            n=round(s.n),
            mean=float(mean[i]),
            interval=(float(lo[i]), float(hi[i])),
            prob_best=float(best[i]),
        )
        for i, (name, s) in enumerate(zip(arms, stats, strict=True))
    )


def explain(
    records: Sequence[WeightsRecord],
    arms: Sequence[str],
    reward: RewardKind,
    level: float = 0.95,
    previous: WeightsRecord | None = None,
) -> tuple[WeightsExplanation, ...]:
    """Each row (oldest first) with its posterior summary and the reason its weights differ from the row before.

    `previous` is the row before the first of `records` (None: the history starts there), so
    that a page of the history explains its first row too.
    """
    cache: dict[tuple[ArmStats, ...], tuple[ArmSummary, ...]] = {}

    def summary(record: WeightsRecord) -> tuple[ArmSummary, ...]:
        key = tuple(record.stats)
        if key not in cache:  # rows without new data repeat their statistics: summarise once
            cache[key] = summarize(record.stats, arms, reward, level)
        return cache[key]

    before = None if previous is None else (previous, summary(previous))
    out = []
    for record in records:
        now = (record, summary(record))
        comparable = before is not None and len(before[0].weights) == len(record.weights) == len(arms)
        out.append(
            WeightsExplanation(
                version=record.version,
                created_at=record.created_at,
                reason=record.reason,
                weights=record.weights,
                arms=now[1],
                because=_because(now, before if comparable else None),
            )
        )
        before = now
    return tuple(out)


_Row = tuple[WeightsRecord, tuple[ArmSummary, ...]]


def _because(now: _Row, before: _Row | None) -> str:
    record, arms = now
    match record.reason:
        case "start":
            total = sum(a.n for a in arms)
            return "initial weights from the policy (" + (f"{total:,} trials so far)" if total else "no data yet)")
        case "schedule":
            return _policy_story(now, before)
        case "manual" if record.seed is not None:  # POST .../reweight: the policy, on an operator's request
            return "reweighted on request: " + _policy_story(now, before)
        case "manual":  # PUT .../weights
            moved = _weight_move(now, before)
            return "set by an operator" + (f": {moved}" if moved else " (weights unchanged)" if before else "")
        case "shift":
            moved = _weight_move(now, before)
            said = "shifted by a completion step or an automation rule, not the policy"
            return said + (f": {moved}" if moved else "")
        case _:
            assert_never(record.reason)


def _policy_story(now: _Row, before: _Row | None) -> str:
    """What the policy saw: the arm whose weight moved most, and the change in its P(best) or in the means."""
    record, arms = now
    leader = max(arms, key=lambda a: a.prob_best)
    if before is None:
        total = sum(a.n for a in arms)
        return f"the policy's weights from {total:,} trials; {leader.arm} leads with P(best) {_p(leader.prob_best)}"
    old, old_arms = before
    trials = _new_trials(sum(a.n for a in arms) - sum(a.n for a in old_arms))
    i = _most_moved(record.weights, old.weights)
    if i is None:
        return f"no change: the weights held {trials}; {leader.arm} leads with P(best) {_p(leader.prob_best)}"
    arm, p0, p1 = arms[i].arm, old_arms[i].prob_best, arms[i].prob_best
    weight = f"weight went from {_w(old.weights[i])} to {_w(record.weights[i])}"
    if abs(p1 - p0) >= _PROB_MOVED and _p(p0) != _p(p1):
        return f"{arm}'s P(best) {'rose' if p1 > p0 else 'fell'} from {_p(p0)} to {_p(p1)} {trials}; its {weight}"
    # P(best) did not move as far as it shows: the policy moved on the observed means
    # (epsilon-greedy's leader, UCB's index) rather than on the posterior.
    stats = _stats(record, len(arms))
    lead0, lead1 = _mean_leader(_stats(old, len(arms))), _mean_leader(stats)
    if lead1 is not None and lead1 != lead0:
        means = [s.mean if s.n > 0 else -np.inf for s in stats]
        second = max((j for j in range(len(means)) if j != lead1), key=lambda j: means[j], default=None)
        vs = f" vs {_m(means[second])} for {arms[second].arm}" if second is not None and means[second] > -np.inf else ""
        return f"{arms[lead1].arm} now leads on mean reward ({_m(means[lead1])}{vs}) {trials}; {arm}'s {weight}"
    return f"{arm}'s {weight} {trials}; its P(best) stayed at {_p(p1)}"


def _weight_move(now: _Row, before: _Row | None) -> str:
    """The arm whose weight moved most, as `b's weight went from 0.50 to 0.80` ('' when none moved)."""
    if before is None:
        return ""
    record, arms = now
    i = _most_moved(record.weights, before[0].weights)
    if i is None:
        return ""
    return f"{arms[i].arm}'s weight went from {_w(before[0].weights[i])} to {_w(record.weights[i])}"


def _most_moved(new: Sequence[float], old: Sequence[float]) -> int | None:
    """The arm whose weight moved most among those whose shown weight changed (None: no shown change).

    Of arms that moved as far (two arms always do), the one that gained is named, then the first.
    """
    moved = [i for i, (a, b) in enumerate(zip(new, old, strict=True)) if _w(a) != _w(b)]
    return max(moved, key=lambda i: (round(abs(new[i] - old[i]), 9), new[i] > old[i]), default=None)


def _stats(record: WeightsRecord, k: int) -> tuple[ArmStats, ...]:
    """The row's statistics, or no data for each arm where the row stored none."""
    return record.stats if len(record.stats) == k else (ArmStats(),) * k


def _mean_leader(stats: Sequence[ArmStats]) -> int | None:
    """The arm with the highest observed mean (None: no arm has data; ties go to the first)."""
    seen = [i for i, s in enumerate(stats) if s.n > 0]
    return max(seen, key=lambda i: stats[i].mean, default=None)


def _new_trials(count: int) -> str:
    if count <= 0:
        return "with no new trials"
    return f"after {count:,} new trial{'s' if count != 1 else ''}"


def _p(value: float) -> str:
    return f"{value:.2f}"


def _w(value: float) -> str:
    return f"{value:.2f}"


def _m(value: float) -> str:
    """A mean with three significant digits (0.112, 12.5), thousands separated when large."""
    return f"{value:,.0f}" if abs(value) >= 1_000 else f"{value:.3g}"
