"""Per experiment and arm metrics, read from the database's counters at scrape time.

Decisions, units, rewards, expiries, the reward sum, pending decisions, the current weight and
the extra reward metrics (error, latency, ...) come from the per-arm counter rows that every write
already keeps (`Storage.arm_counts`), not from counters in the process. Why: every worker and every
replica then answers a scrape with the same totals, the totals of the whole service, which a
process's own counters cannot give (a replica counts only what it served, and restarts from zero);
`pending` is a state of the database, not an event of one process; and the decision path does no
metric work at all. The cost moves to the scrape: two indexed reads per experiment.

Only active and paused experiments are listed (the ones whose counters still move), the newest
`MAX_EXPERIMENTS` of each. If the database cannot be read, the scrape still answers, with the
process metrics and `bandit_counters_up 0`, so an outage shows on the dashboard instead of a gap.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy.exc import OperationalError

from bandit_service.core.errors import UnavailableError
from bandit_service.core.model import ArmCounts, Experiment
from bandit_service.ports import Storage

__all__ = ["MAX_EXPERIMENTS", "CounterSnapshot", "read_counters"]

MAX_EXPERIMENTS = 1_000
"""Experiments per status (active, paused) that a scrape reports, newest first."""

ARM = ["experiment", "arm"]


class CounterSnapshot:
    """The families of one scrape, as a prometheus-client collector (`generate_latest(snapshot)`)."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> list[Metric]:
        """The metric families read at this scrape."""
        return self._families


async def read_counters(storage: Storage) -> CounterSnapshot:
    """Read every listed experiment's per-arm counters and turn them into metric families."""
    up = GaugeMetricFamily("bandit_counters_up", "1 if this scrape read the per-arm counters from the database")
    try:
        experiments = [
            *await storage.experiments("active", MAX_EXPERIMENTS, 0),
            *await storage.experiments("paused", MAX_EXPERIMENTS, 0),
        ]
        counts = [await storage.arm_counts(experiment) for experiment in experiments]
    except (UnavailableError, OperationalError):
        # The driver's message is the storage's to log; a scrape says only that the read failed.
        up.add_metric([], 0)
        return CounterSnapshot([up])
    up.add_metric([], 1)
    return CounterSnapshot([up, *families(experiments, counts)])


def families(experiments: Sequence[Experiment], counts: Sequence[Sequence[ArmCounts]]) -> list[Metric]:
    """The per-arm families of these experiments and their counters (in arm order)."""
    decisions = CounterMetricFamily(
        "bandit_arm_decisions", "Decisions served in the experiment on the arm (all replicas)", labels=ARM
    )
    trials = CounterMetricFamily(
        "bandit_arm_trials", "Trials opened on the arm (what the statistics count)", labels=ARM
    )
    excluded = CounterMetricFamily(
        "bandit_arm_excluded", "Trials whose window closed without a reward, left out of the statistics", labels=ARM
    )
    units = CounterMetricFamily("bandit_arm_units", "Units first assigned to the arm", labels=ARM)
    rewards = CounterMetricFamily("bandit_arm_rewards", "Trials of the arm with a reward", labels=ARM)
    expired = CounterMetricFamily(
        "bandit_arm_expired", "Trials whose reward window closed, counted with the missing value", labels=ARM
    )
    reward_sum = GaugeMetricFamily(
        "bandit_arm_reward_sum", "Sum of the arm's counted rewards (received and expired defaults)", labels=ARM
    )
    local = CounterMetricFamily(
        "bandit_arm_local_decisions", "Decisions SDKs evaluated locally and logged on the arm", labels=ARM
    )
    contradicted = CounterMetricFamily(
        "bandit_arm_contradicted",
        "Locally logged decisions whose arm differed from the unit's sticky arm on the service",
        labels=ARM,
    )
    pending = GaugeMetricFamily("bandit_arm_pending", "Trials still waiting for their reward", labels=ARM)
    weight = GaugeMetricFamily("bandit_arm_weight", "The arm's current allocation weight", labels=ARM)
    metric_n = CounterMetricFamily(
        "bandit_arm_metric_observations", "Observations of an extra reward metric", labels=[*ARM, "metric"]
    )
    metric_sum = GaugeMetricFamily("bandit_arm_metric_sum", "Sum of an extra reward metric", labels=[*ARM, "metric"])
    version = GaugeMetricFamily(
        "bandit_experiment_weights_version", "The experiment's current weights version", labels=["experiment", "status"]
    )
    for experiment, arms in zip(experiments, counts, strict=True):
        version.add_metric([experiment.key, experiment.status], experiment.weights_version)
        for name, w, c in zip(experiment.arm_names, experiment.weights, arms, strict=True):
            labels = [experiment.key, name]
            decisions.add_metric(labels, c.exposures)
            trials.add_metric(labels, c.trials)
            excluded.add_metric(labels, c.excluded)
            units.add_metric(labels, c.units)
            rewards.add_metric(labels, c.rewarded)
            expired.add_metric(labels, c.expired)
            reward_sum.add_metric(labels, c.stats.total)
            pending.add_metric(labels, c.pending)
            local.add_metric(labels, c.local)
            contradicted.add_metric(labels, c.contradicted)
            weight.add_metric(labels, w)
            for metric, stats in sorted(c.metrics.items()):
                metric_n.add_metric([*labels, metric], stats.n)
                metric_sum.add_metric([*labels, metric], stats.total)
    return [
        decisions,
        trials,
        units,
        rewards,
        expired,
        excluded,
        local,
        contradicted,
        reward_sum,
        pending,
        weight,
        metric_n,
        metric_sum,
        version,
    ]
