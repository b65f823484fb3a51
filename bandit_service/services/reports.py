"""Reports: gather an experiment's counters from storage and hand them to the pure report builder.

`GET /v1/experiments/{key}/report` and the guarded rollouts (`guardrail_breach`) both go
through `ReportService`. The figures are computed by `bandit_service.core.reporting`; this module
only turns stored counters into a `ReportInput`:

- per-period rows are the weights versions that saw traffic, with the weights each version
  had (from the weights history); the arm totals are their sums, so every figure in one
  report comes from the same snapshot;
- the arm choices that test the allocation (sample-ratio check, period weights of the
  drift-corrected estimate) are first assignments of new units in a sticky experiment
  (a returning unit keeps its old arm) and all decisions otherwise;
- the Monte Carlo seed is blake2b keyed by the experiment's salt over the weights version
  (and the segment), so the same data give the same report, and it is echoed in the report;
- a report over a range of UTC days (`since`, `until`, inclusive) is the same report computed
  from the counters of the trials opened in the range; it is not a look (its figures are not
  the experiment's), and it names its window;
- every whole-experiment report is a look at the always-valid figures: the stored running
  figures of the earlier looks go into the builder, and this look's own figures are merged into
  the stored ones (`core.looks`), so the always-valid p-value shown never rises. Segment
  reports are not looks (their figures are not the experiment's).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import math
from collections.abc import Sequence

import msgspec
import numpy as np

from bandit_service.core.errors import InvalidFieldError
from bandit_service.core.experiment_rules import initial_weights
from bandit_service.core.looks import SequentialLook, look_settings
from bandit_service.core.model import Experiment, WeightsRecord
from bandit_service.core.report_data import PeriodCounters, ReportData, SegmentData, day_of
from bandit_service.core.reporting import (
    PRIMARY,
    DecisionCriteria,
    GuardrailCheck,
    Recommendation,
    Report,
    ReportInput,
    SegmentReport,
    build_report,
    build_segment_reports,
)
from bandit_service.core.reporting.timeseries import Timeseries, build_timeseries, iso_day
from bandit_service.core.reporting.values import WeightsStep
from bandit_service.core.weights_story import explain
from bandit_service.ports import Clock, Storage
from bandit_service.services.lookup import load_experiment
from policies.stats import StatsArray

__all__ = ["DRAWS", "MAX_SEGMENTS", "ReportService", "breach_reason", "report_input", "report_seed", "this_look"]

DRAWS = 20_000  # Monte Carlo draws per metric: P(best) within about +-0.004 (2 standard errors at 0.5)
MAX_SEGMENTS = 50  # more values than this is an id, not a segment


def report_seed(salt: str, version: int, scope: str = "") -> int:
    """A 63-bit seed: blake2b keyed by the experiment's salt over ("report", weights version, scope)."""
    message = b"\x00".join((b"report", str(version).encode(), scope.encode()))
    digest = hashlib.blake2b(message, digest_size=8, key=salt.encode()).digest()
    return int.from_bytes(digest, "big") >> 1


def _rows(a: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(x) for x in row) for row in a)


def _total(stats: StatsArray) -> StatsArray:
    return stats.pooled()


def _ints(a: np.ndarray) -> tuple[int, ...]:
    return tuple(round(float(x)) for x in a.sum(axis=0))  # (0, k) sums to zeros


def report_input(
    experiment: Experiment,
    counters: PeriodCounters,
    history: Sequence[WeightsRecord],
    seed: int,
    draws: int = DRAWS,
    *,
    local: Sequence[int] = (),
    contradicted: Sequence[int] = (),
    looks: Sequence[SequentialLook] = (),
) -> ReportInput:
    """The builder's input from an experiment's (or a segment's) counters and its weights history.

    `local` and `contradicted`: per arm, decisions SDKs logged and those that contradicted the
    sticky store (empty: none, or not known, as for segments). `looks`: the stored always-valid
    figures of the earlier looks.
    """
    k = len(experiment.arms)
    current = experiment.weights or initial_weights(experiment.arms, experiment.config.policy)
    weights_of = {r.version: r.weights for r in history}
    if counters.versions:
        missing = [v for v in counters.versions if v not in weights_of]
        if missing:
            raise RuntimeError(f"experiment {experiment.key!r}: no weights-history row for versions {missing}")
        period_weights = tuple(tuple(float(w) for w in weights_of[v]) for v in counters.versions)
        period_stats = counters.reward
        assigned = counters.units if experiment.config.sticky else counters.trials
        period_metrics = dict(counters.metrics)
    else:  # nothing logged yet (a draft, or no traffic so far): one empty period at today's weights
        period_weights = (tuple(float(w) for w in current),)
        period_stats = StatsArray.zeros(k, (1,))
        assigned = np.zeros((1, k))
        period_metrics = {}
    # "reward" names the primary reward in the criteria; a metric sent under that name cannot be reported.
    period_metrics.pop(PRIMARY, None)
    config = experiment.config
    return ReportInput(
        arms=experiment.arm_names,
        control=experiment.control_index,
        reward=config.reward,
        weights=tuple(float(w) for w in current),
        units=_ints(counters.units),
        trials=_ints(counters.trials),
        rewarded=_ints(counters.rewarded),
        expired=_ints(counters.expired),
        excluded=_ints(counters.excluded),
        exposures=None if counters.exposures is None else _ints(counters.exposures),
        local=tuple(local) or None,
        contradicted=tuple(contradicted) or None,
        trial=config.trial,
        aggregate=config.aggregate,
        missing=config.missing_reward,
        stats=_total(period_stats),
        period_stats=period_stats,
        period_assigned=_rows(assigned),
        period_weights=period_weights,
        period_versions=tuple(counters.versions),
        metrics={name: _total(stats) for name, stats in period_metrics.items()},
        period_metrics=period_metrics,
        sketches={name: s for name, s in counters.sketches.items() if name != PRIMARY},
        criteria=config.criteria or DecisionCriteria(),
        min_sample_size=config.min_sample_size,
        minimum_detectable_effect=config.minimum_detectable_effect,
        mde_relative=config.mde_relative,
        level=config.level,
        correction=config.correction,
        sequential_tuning_n=config.sequential_tuning_n,
        seed=seed,
        draws=draws,
        looks=tuple(looks),
    )


def _figure(x: float, relative: bool) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x * 100:+.3g}%" if relative else f"{x:+.4g}"


def breach_reason(checks: Sequence[GuardrailCheck], control: str, level: float) -> str | None:
    """A sentence per breached guardrail (metric, arm, limit, observed change, one-sided bound); None if none."""
    parts = []
    for g in checks:
        if not g.breached:
            continue
        relative = "relative" in g.bound
        limit = f"{g.limit * 100:g}%" if relative else f"{g.limit:g}"
        parts.append(
            f"guardrail on {g.metric} breached by arm {g.arm}: {g.bound.replace('_', ' ')} {limit} against "
            f"{control}, observed change {_figure(g.estimate, relative)}, one-sided {level:.0%} "
            f"confidence bound {_figure(g.one_sided_bound, relative)}"
        )
    return "; ".join(parts) or None


class ReportService:
    """Experiment reports, whole or split by a decision attribute, and the guardrail check of guarded rollouts."""

    def __init__(
        self, storage: Storage, *, draws: int = DRAWS, max_segments: int = MAX_SEGMENTS, clock: Clock | None = None
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._draws = draws
        self._max_segments = max_segments

    async def build(
        self, key: str, *, segment: str | None = None, since: dt.date | None = None, until: dt.date | None = None
    ) -> Report | SegmentReport:
        """The report of experiment `key`, or one report per value of the decision attribute `segment`; with
        `since` or `until` (UTC days, inclusive), of the trials opened in that range only."""
        experiment = await load_experiment(self._storage, key)
        window = self._window(experiment, since, until)
        if segment is None:
            return await self._whole(experiment) if window is None else await self._in_window(experiment, window)
        return await self._segments(experiment, segment, window)

    async def timeseries(self, key: str, since: dt.date | None = None, until: dt.date | None = None) -> Timeseries:
        """Per UTC day and arm: traffic and the means of the reward and extra metrics, of the trials opened that day."""
        experiment = await load_experiment(self._storage, key)
        window = self._window(experiment, since, until)
        days = (None, None) if window is None else window.days
        daily = await self._storage.daily_counters(experiment, *days)
        labels = None if window is None else window.labels
        return build_timeseries(experiment.arm_names, daily, experiment.config.level, labels)

    def _window(self, experiment: Experiment, since: dt.date | None, until: dt.date | None) -> _Window | None:
        """The range asked for (None: none); an open end is the experiment's first day, or today."""
        if since is not None and until is not None and since > until:
            raise InvalidFieldError(f"from: {since.isoformat()} is after to ({until.isoformat()})", field="from")
        if since is None and until is None:
            return None
        since_day = None if since is None else (since - _EPOCH).days
        until_day = None if until is None else (until - _EPOCH).days
        first = since_day if since_day is not None else day_of(experiment.created_at)
        today = day_of(self._clock.time()) if self._clock is not None else first
        last = until_day if until_day is not None else max(first, today)
        return _Window(days=(since_day, until_day), labels=(iso_day(first), iso_day(last)))

    async def _in_window(self, experiment: Experiment, window: _Window) -> Report:
        data = await self._storage.report_data(experiment, since_day=window.days[0], until_day=window.days[1])
        # Not a look (no looks in or out), and the weights history is the whole experiment's, not the range's.
        report = await asyncio.to_thread(self._whole_from, experiment, data, (), whole=False)
        return _windowed(report, window)

    async def whole(self, experiment: Experiment) -> Report:
        """The report of an experiment already read (the automation's look)."""
        return await self._whole(experiment)

    async def guardrail_breach(self, key: str) -> str | None:
        """None when every guardrail holds (or none is configured); else why, naming metric, arm and figures."""
        experiment = await load_experiment(self._storage, key)
        criteria = experiment.config.criteria
        if criteria is None or not criteria.guardrails:
            return None
        report = await self._whole(experiment)
        return breach_reason(report.guardrails, report.control, report.level)

    async def _whole(self, experiment: Experiment) -> Report:
        data = await self._storage.report_data(experiment)
        looks = await self._storage.sequential_looks(experiment.id)
        # The figures draw from posteriors: CPU work kept off the event loop.
        report = await asyncio.to_thread(self._whole_from, experiment, data, looks)
        now = self._clock.time() if self._clock is not None else 0.0
        await self._storage.record_looks(experiment.id, this_look(report, now))
        return report

    def _whole_from(
        self, experiment: Experiment, data: ReportData, looks: Sequence[SequentialLook], *, whole: bool = True
    ) -> Report:
        seed = report_seed(experiment.salt, experiment.weights_version)
        inp = report_input(
            experiment,
            data.counters,
            data.history,
            seed,
            self._draws,
            local=data.local,
            contradicted=data.contradicted,
            looks=looks,
        )
        report = build_report(inp)
        if whole:
            report = _with_weights_history(report, experiment, data.history)
        return _with_notes(report, data.counters)

    async def _segments(self, experiment: Experiment, attribute: str, window: _Window | None = None) -> SegmentReport:
        days = (None, None) if window is None else window.days
        data = await self._storage.segment_data(experiment, attribute, self._max_segments, *days)
        segments = await asyncio.to_thread(self._segments_from, experiment, attribute, data)
        if window is None:
            return segments
        entries = tuple(msgspec.structs.replace(e, report=_windowed(e.report, window)) for e in segments.segments)
        return msgspec.structs.replace(segments, segments=entries)

    def _segments_from(self, experiment: Experiment, attribute: str, data: SegmentData) -> SegmentReport:
        inputs = {
            value: report_input(
                experiment,
                counters,
                data.history,
                report_seed(experiment.salt, experiment.weights_version, f"{attribute}={value}"),
                self._draws,
            )
            for value, counters in data.segments.items()
        }
        segments = build_segment_reports(attribute, inputs)
        entries = tuple(
            msgspec.structs.replace(
                entry,
                report=_not_a_decision(
                    _with_notes(entry.report, data.segments[entry.value]), f"the report of {attribute}={entry.value}"
                ),
            )
            for entry in segments.segments
        )
        return msgspec.structs.replace(segments, segments=entries)


_EPOCH = dt.date(1970, 1, 1)


class _Window(msgspec.Struct, frozen=True):
    """A report's range: the UTC day numbers read (None: unbounded) and the ISO dates it names."""

    days: tuple[int | None, int | None]
    labels: tuple[str, str]


def _windowed(report: Report, window: _Window) -> Report:
    first, last = window.labels
    note = f"figures cover trials opened from {first} to {last} (UTC days)"
    report = _not_a_decision(report, f"a report over {first} to {last}")
    return msgspec.structs.replace(report, window=window.labels, notes=(*report.notes, note))


def _not_a_decision(report: Report, what: str) -> Report:
    """A range or segment report never says `ship`: its figures are not looks, and trying ranges or
    segment values until one ships would be peeking by another name. It says what it would do."""
    rec = report.recommendation
    if rec.action != "ship":
        return report
    reason = (
        f"{what} is not a decision (its figures are not looks at the always-valid evidence): on its own it would "
        f"ship {rec.arm} ({rec.reason}); decide on the whole experiment's report"
    )
    kept = Recommendation(action="keep_running", arm=None, guardrail=None, more_units=None, reason=reason)
    return msgspec.structs.replace(report, recommendation=kept)


def this_look(report: Report, now: float) -> tuple[SequentialLook, ...]:
    """This report's own always-valid figures, one per (metric, arm) against the control, to merge into the stored."""
    return tuple(
        SequentialLook(
            metric=m.name,
            arm=c.arm,
            p_value=c.always_valid_p_this_look,
            lower=c.confidence_sequence_this_look[0],
            upper=c.confidence_sequence_this_look[1],
            looks=1,
            first_at=now,
            last_at=now,
            settings=look_settings(report.level, report.sequential.tuning_n),
        )
        for m in (report.primary, *report.metrics)
        for c in m.comparisons
    )


# The report shows the latest moves; `GET .../weights` has every row, each explained the same way.
WEIGHTS_HISTORY_SHOWN = 5


def _with_weights_history(report: Report, experiment: Experiment, history: Sequence[WeightsRecord]) -> Report:
    """The report with the latest weights-history rows and why each moved (from the posteriors behind them)."""
    shown = history[-WEIGHTS_HISTORY_SHOWN:]
    previous = history[-WEIGHTS_HISTORY_SHOWN - 1] if len(history) > WEIGHTS_HISTORY_SHOWN else None
    explained = explain(shown, experiment.arm_names, experiment.config.reward, experiment.config.level, previous)
    steps = tuple(
        WeightsStep(version=e.version, created_at=e.created_at, reason=e.reason, weights=e.weights, because=e.because)
        for e in explained
    )
    return msgspec.structs.replace(report, weights_history=steps)


def _with_notes(report: Report, counters: PeriodCounters) -> Report:
    notes = list(report.notes)
    if PRIMARY in counters.metrics:
        notes.append(f"a metric named {PRIMARY!r} is left out: that name is the primary reward's")
    if not counters.versions:
        notes.append("no decisions logged yet: every figure is empty")
    return msgspec.structs.replace(report, notes=tuple(notes)) if len(notes) > len(report.notes) else report
