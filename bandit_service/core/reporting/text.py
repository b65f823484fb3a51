"""A fixed-width text rendering of a report (`?format=text`), for terminals and chat messages."""

from __future__ import annotations

import datetime as dt
import math
import textwrap
from collections.abc import Sequence

from bandit_service.core.reporting.values import MetricReport, Report, SegmentReport

__all__ = ["render_segments_text", "render_text"]

WIDTH = 100


def _num(x: float | None, spec: str = ".4g") -> str:
    """A number; "-" where undefined and "unbounded" where infinite (never "inf")."""
    if x is None or math.isnan(x):
        return "-"
    if math.isinf(x):
        return "unbounded"
    return format(x, spec)


def _pct(x: float) -> str:
    return _num(x * 100.0, ".3g") + "%" if math.isfinite(x) else _num(x)


def _interval(pair: tuple[float, float], spec: str = ".4g") -> str:
    if any(math.isinf(x) for x in pair):
        return "unbounded"
    return f"[{_num(pair[0], spec)}, {_num(pair[1], spec)}]"


def _pcts(pair: tuple[float, float]) -> str:
    if any(math.isinf(x) for x in pair):
        return "unbounded"
    return f"[{_pct(pair[0])}, {_pct(pair[1])}]"


def _relative(x: float, pair: tuple[float, float]) -> tuple[str, str]:
    """The lift and its interval; "undefined" where the control's mean is 0 or the interval is unbounded."""
    if not math.isfinite(x):
        return "undefined", "-"
    if not all(math.isfinite(v) for v in pair):
        return _pct(x), "undefined"
    return _pct(x), _pcts(pair)


_TESTS = {"z_pooled": "z-test", "welch": "Welch t-test", "stratified_z": "z-test on period-stratified means"}


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell; the first (arm names) left-aligned, numbers right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        out = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join(out).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _metric(m: MetricReport, control: str, level: float, correction: str) -> list[str]:
    lv = f"{level:.0%}"
    test = _TESTS[m.comparisons[0].test] if m.comparisons else ""
    estimator = f"drift-corrected: {m.periods} weights periods, stratified" if m.estimator == "stratified" else "pooled"
    lines = [f"== {m.name} ({m.kind}; {estimator}; {test}) =="]
    stratified = m.estimator == "stratified"
    lines += _table(
        [
            "arm",
            "weight",
            "n",
            "mean",
            "pooled sd" if stratified else "sd",
            f"{lv} CI",
            f"{lv} CrI",
            *(("pooled mean (naive)",) if stratified else ()),
        ],
        [
            [
                a.arm,
                _num(a.weight, ".3f"),
                str(a.n),
                _num(a.mean),
                _num(a.sd),
                _interval(a.confidence_interval),
                _interval(a.credible_interval),
                *((_num(a.pooled_mean),) if stratified else ()),
            ]
            for a in m.arms
        ],
    )
    adjusted = "p adj." if correction == "none" else f"p {correction}"
    lines += ["", f"against control {control}, always valid (ship decisions rest on these; any number of looks):"]
    lines += _table(
        ["arm", "difference", "p always-valid", adjusted, "confidence sequence", "looks", "this look: p"],
        [
            [
                c.arm,
                _num(c.difference),
                _num(c.always_valid_p_value, ".3g"),
                _num(c.always_valid_p_adjusted, ".3g"),
                _interval(c.confidence_sequence),
                str(c.looks),
                _num(c.always_valid_p_this_look, ".3g"),
            ]
            for c in m.comparisons
        ],
    )
    lines += ["", f"against control {control}, fixed horizon (valid for one look at the planned horizon):"]
    lines += _table(
        ["arm", "difference", f"{lv} CI", "relative", f"{lv} CI", "p", adjusted],
        [
            [
                c.arm,
                _num(c.difference),
                _interval(c.difference_interval),
                *_relative(c.relative, c.relative_interval),
                _num(c.p_value, ".3g"),
                _num(c.p_value_adjusted, ".3g"),
            ]
            for c in m.comparisons
        ],
    )
    if stratified:
        lines += ["", f"against control {control}, pooled (naive, secondary: biased when rates drift):"]
        lines += _table(
            ["arm", "difference", f"{lv} CI", "p"],
            [
                [c.arm, _num(c.pooled_difference), _interval(c.pooled_interval), _num(c.pooled_p_value, ".3g")]
                for c in m.comparisons
            ],
        )
    beats = {c.arm: c for c in m.comparisons}
    lines += ["", "Bayesian" + (" (posterior of the drift-corrected mean):" if stratified else ":")]
    lines += _table(
        ["arm", "P(best)", f"P(> {control})", f"lift {lv} CrI", "expected loss"],
        [
            [
                a.arm,
                _num(a.prob_best, ".3f"),
                _num(beats[a.arm].prob_beats_control, ".3f") if a.arm in beats else "-",
                _relative(beats[a.arm].relative, beats[a.arm].lift_credible_interval)[1] if a.arm in beats else "-",
                _num(a.expected_loss, ".3g"),
            ]
            for a in m.arms
        ],
    )
    return lines


def _attribution(report: Report) -> str:
    a = report.attribution
    missing = "excluded" if a.missing is None else f"count as {a.missing:g}"
    if a.trial == "unit":
        return f"Trials: units (rewards combine by {a.aggregate}); trials without a reward {missing}"
    return f"Trials: single decisions; decisions without a reward {missing}"


def render_text(report: Report) -> str:
    """The report as fixed-width tables: metrics, operations, guardrails, health and the recommendation."""
    lines = [
        f"Experiment report: {len(report.arms)} arms, control {report.control}, reward {report.reward}, "
        f"level {report.level:.0%}, seed {report.seed}",
        *([] if report.window is None else [f"Trials opened from {report.window[0]} to {report.window[1]} (UTC days)"]),
        _attribution(report),
        f"Comparisons: {report.correction} correction across the arms; always-valid figures: mSPRT tuned for "
        f"{report.sequential.tuning_n:,.0f} observations per arm (rho {report.sequential.rho:.3g})",
        *textwrap.wrap(report.sequential.horizon[0].upper() + report.sequential.horizon[1:], WIDTH),
        "",
    ]
    for m in (report.primary, *report.metrics):
        lines += [*_metric(m, report.control, report.level, report.correction), ""]

    sketched = sorted({name for o in report.operational for name in o.quantiles})
    local = any(o.local for o in report.operational)  # columns shown once SDKs have logged decisions
    lines.append("== operational ==")
    lines += _table(
        [
            "arm",
            "weight",
            "units",
            "trials",
            "exposures",
            "rewarded",
            "pending",
            "excluded",
            "error rate",
            *(("local", "contradicted") if local else ()),
            *(f"{s} p50/p95/p99" for s in sketched),
        ],
        [
            [
                o.arm,
                _num(o.weight, ".3f"),
                str(o.units),
                str(o.trials),
                "-" if o.exposures is None else str(o.exposures),
                str(o.rewarded),
                str(o.pending),
                str(o.excluded),
                _num(o.error_rate),
                *((str(o.local), str(o.contradicted)) if local else ()),
                *(
                    "/".join(_num(q, ".4g") for q in (o.quantiles[s].p50, o.quantiles[s].p95, o.quantiles[s].p99))
                    for s in sketched
                ),
            ]
            for o in report.operational
        ],
    )
    lines.append("")
    if report.guardrails:
        lines.append("== guardrails ==")
        lines += _table(
            ["metric", "arm", "limit", "estimate", "one-sided bound", "breached"],
            [
                [
                    g.metric,
                    g.arm,
                    f"{g.bound} {g.limit:g}",
                    _num(g.estimate),
                    _num(g.one_sided_bound),
                    "BREACHED" if g.breached else ("no" if g.note is None else g.note),
                ]
                for g in report.guardrails
            ],
        )
        lines.append("")

    srm, size = report.health.srm, report.health.sample_size
    lines.append("== health ==")
    lines.append(
        f"sample ratio: chi-square {_num(srm.statistic)} (df {srm.df}), p = {_num(srm.p_value, '.3g')}, "
        f"threshold {srm.threshold:g}: {'MISMATCH' if srm.flagged else 'ok'}"
    )
    lines.append(
        "  observed "
        + " / ".join(_num(x, ".0f") for x in srm.observed)
        + "; expected "
        + " / ".join(_num(x, ".1f") for x in srm.expected)
    )
    if report.health.srm_periods:
        flagged = [p for p in report.health.srm_periods if p.flagged]
        worst = min(report.health.srm_periods, key=lambda p: p.p_value)
        lines.append(
            f"  per weights period ({len(report.health.srm_periods)}): "
            + (
                "MISMATCH in " + ", ".join(f"version {p.version} (p = {_num(p.p_value, '.3g')})" for p in flagged)
                if flagged
                else f"ok (lowest p = {_num(worst.p_value, '.3g')}, version {worst.version})"
            )
        )
    if not size.configured:
        lines.append("minimum sample size: not configured")
    elif size.reached:
        lines.append("minimum sample size: reached (" + " / ".join(map(str, size.required)) + " per arm)")
    else:
        missing = ", ".join(f"{a} {m}" for a, m in zip(report.arms, size.missing, strict=False) if m > 0)
        more = "" if size.more_units is None else f"; about {size.more_units} more units at the current weights"
        lines.append(f"minimum sample size: not reached (missing {missing or '-'}{more})")
    if size.correction:
        lines.append(f"  power calculation: {size.correction}")
    if size.note:
        lines.append(f"  {size.note}")
    lines.append("")

    if report.weights_history:
        lines += _weights_history(report)

    rec = report.recommendation
    target = f" {rec.arm}" if rec.action == "ship" else ""
    lines.append(f"== recommendation: {rec.action.upper().replace('_', ' ')}{target} ==")
    lines += textwrap.wrap(rec.reason, WIDTH)
    for note in report.notes:
        lines += ["", *textwrap.wrap(f"note: {note}", WIDTH)]
    return "\n".join(lines) + "\n"


def _weights_history(report: Report) -> list[str]:
    """The latest weights-history rows: when, what wrote them, the weights, and why they moved."""
    lines = [f"== why the weights moved (latest {len(report.weights_history)}) =="]
    for step in report.weights_history:
        at = dt.datetime.fromtimestamp(step.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M")
        weights = " ".join(f"{arm} {w:.2f}" for arm, w in zip(report.arms, step.weights, strict=False))
        lines += textwrap.wrap(
            f"v{step.version} {at} {step.reason}: {weights}; {step.because}", WIDTH, subsequent_indent="    "
        )
    return [*lines, ""]


def render_segments_text(segments: SegmentReport) -> str:
    """Each segment's report under a heading, with the too-small notes."""
    parts = [*textwrap.wrap(f"Segments by {segments.attribute}: {segments.note}", WIDTH), ""]
    for entry in segments.segments:
        parts.append(f"######## {segments.attribute} = {entry.value} ########")
        if entry.note:
            parts += textwrap.wrap(entry.note, WIDTH)
        parts.append(render_text(entry.report))
    return "\n".join(parts)
