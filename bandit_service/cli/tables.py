"""Rich renderings of what the service answers: experiment lists, one experiment's status, events, history.

The report is read through `ReportView`, the few fields the tables show (msgspec ignores the rest),
so that `list` and `status` stay fast: the full `Report` imports numpy and scipy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

__all__ = [
    "ReportView",
    "events_table",
    "experiment_row",
    "experiments_table",
    "features_table",
    "history_table",
    "keys_table",
    "percent",
    "policy_label",
    "read_report_view",
    "status_view",
    "warnings",
    "weight_bars",
]

BAR_WIDTH = 12
DASH = "\u2013"  # an en dash between an interval's bounds: a hyphen would read as a minus
_EIGHTHS = " ▏▎▍▌▋▊▉"
STATUS_STYLES = {"draft": "dim", "active": "green", "paused": "yellow", "completed": "blue"}
NOTICE_STYLES = {"ship": "green", "stop_no_winner": "yellow", "stop_guardrail": "red"}


class _View(msgspec.Struct, frozen=True, kw_only=True):
    """The fields of a report a table shows (NaN arrives as null, hence the `| None`)."""


class ArmView(_View, frozen=True, kw_only=True):
    arm: str
    units: int
    trials: int
    rewarded: int
    mean: float | None
    credible_interval: tuple[float | None, float | None]
    prob_best: float | None


class ComparisonView(_View, frozen=True, kw_only=True):
    arm: str
    relative: float | None
    lift_credible_interval: tuple[float | None, float | None]
    prob_beats_control: float | None
    always_valid_p_value: float | None


class MetricView(_View, frozen=True, kw_only=True):
    name: str
    arms: tuple[ArmView, ...]
    comparisons: tuple[ComparisonView, ...]


class OperationalView(_View, frozen=True, kw_only=True):
    arm: str
    units: int
    trials: int
    pending: int


class SrmView(_View, frozen=True, kw_only=True):
    p_value: float | None
    flagged: bool


class SampleSizeView(_View, frozen=True, kw_only=True):
    configured: bool
    reached: bool | None
    more_units: int | None


class HealthView(_View, frozen=True, kw_only=True):
    srm: SrmView
    sample_size: SampleSizeView


class GuardrailView(_View, frozen=True, kw_only=True):
    metric: str
    arm: str
    breached: bool


class RecommendationView(_View, frozen=True, kw_only=True):
    action: str
    arm: str | None
    reason: str


class ReportView(_View, frozen=True, kw_only=True):
    """What `list` and `status` show of the report."""

    control: str
    level: float
    primary: MetricView
    operational: tuple[OperationalView, ...]
    guardrails: tuple[GuardrailView, ...]
    health: HealthView
    recommendation: RecommendationView
    notes: tuple[str, ...]

    @property
    def leader(self) -> ArmView | None:
        """The arm most likely to be best (None before any P(best) is known)."""
        known = [a for a in self.primary.arms if a.prob_best is not None and not math.isnan(a.prob_best)]
        return max(known, key=lambda a: a.prob_best or 0.0) if known else None

    @property
    def units(self) -> int:
        """Units assigned over every arm."""
        return sum(o.units for o in self.operational)

    @property
    def trials(self) -> int:
        """Trials over every arm (units' trials, or single decisions)."""
        return sum(o.trials for o in self.operational)


def read_report_view(report: Mapping[str, Any]) -> ReportView:
    """The report's JSON as the tables read it (msgspec.ValidationError if the service changed its shape)."""
    return msgspec.convert(report, ReportView)


def percent(value: float | None, digits: int = 0) -> str:
    """`0.125` as `12.5%` (`-` when unknown)."""
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}%}"


def _number(value: float | None, spec: str = ".3g") -> str:
    return "-" if value is None or math.isnan(value) else format(value, spec)


def _bar(share: float) -> str:
    """A bar of BAR_WIDTH cells, in eighths of a cell."""
    eighths = round(max(0.0, min(1.0, share)) * BAR_WIDTH * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[rest] if rest else "")).ljust(BAR_WIDTH)


def weight_bars(weights: Mapping[str, float], winner: str | None = None) -> Text:
    """One line per arm: name, bar, share; the winner in bold."""
    text = Text()
    width = max((len(arm) for arm in weights), default=0)
    for i, (arm, weight) in enumerate(weights.items()):
        if i:
            text.append("\n")
        text.append(arm.ljust(width) + " ", style="bold" if arm == winner else "")
        text.append(_bar(weight), style="cyan")
        text.append(f" {percent(weight):>4}")
    return text


def policy_label(policy: Mapping[str, Any]) -> str:
    """`thompson`, `epsilon_greedy 0.1`, `fixed`, ... with the weight floor when there is one."""
    label = str(policy.get("kind", "?"))
    if "epsilon" in policy:
        label += f" ε={policy['epsilon']:g}"
    if policy.get("min_weight"):
        label += f", floor {percent(policy['min_weight'])}"
    return label


def _status(experiment: Mapping[str, Any]) -> Text:
    status = str(experiment.get("status"))
    text = Text(status, style=STATUS_STYLES.get(status, ""))
    if experiment.get("winner"):
        text.append(f" → {experiment['winner']}", style="bold")
    return text


def warnings(report: ReportView) -> list[Text]:
    """What needs an operator's eye: a sample-ratio mismatch, breached guardrails, a recommendation to act."""
    out = []
    if report.health.srm.flagged:
        out.append(Text(f"sample ratio mismatch (p={_number(report.health.srm.p_value, '.2g')})", style="red"))
    out += [Text(f"guardrail {g.metric} breached on {g.arm}", style="red") for g in report.guardrails if g.breached]
    rec = report.recommendation
    if rec.action in NOTICE_STYLES:
        what = f"ship {rec.arm}" if rec.action == "ship" else rec.action.replace("_", " ")
        out.append(Text(f"recommended: {what}", style=NOTICE_STYLES[rec.action]))
    return out


def experiment_row(experiment: Mapping[str, Any], report: ReportView | None, problem: str | None) -> list[Any]:
    """One row of `list`: key, status, policy, weights, leader, units, warnings."""
    leader = report.leader if report is not None else None
    if report is None:
        units = "-"
    elif report.units or not report.trials:
        units = f"{report.units:,}"
    else:
        units = f"{report.trials:,} trials"
    notes = warnings(report) if report is not None else []
    if problem is not None:
        notes.append(Text(f"report: {problem}", style="yellow"))
    return [
        Text(str(experiment.get("key")), style="bold"),
        _status(experiment),
        policy_label(experiment.get("policy") or {}),
        weight_bars(experiment.get("weights") or {}, experiment.get("winner")),
        "-" if leader is None else f"{leader.arm} {_number(leader.prob_best, '.2f')}",
        units,
        Text("\n").join(notes) if notes else "",
    ]


def experiments_table(rows: Sequence[list[Any]]) -> Table:
    """The `list` table."""
    table = Table(show_lines=True)
    for name, justify in [
        ("key", "left"),
        ("status", "left"),
        ("policy", "left"),
        ("weights", "left"),
        ("leader P(best)", "left"),
        ("units", "right"),
        ("warnings", "left"),
    ]:
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*row)
    return table


def _interval(bounds: tuple[float | None, float | None], as_percent: bool = False) -> str:
    """`0.08-0.42` with an en dash (or `-12%-35%`)."""
    low, high = bounds
    return f"{percent(low)}{DASH}{percent(high)}" if as_percent else f"{_number(low)}{DASH}{_number(high)}"


def _share(weight: float) -> Text:
    """A short bar and the share, for a table cell."""
    return Text(_bar(weight)[: BAR_WIDTH // 2 + 1].ljust(BAR_WIDTH // 2 + 1), style="cyan") + f" {percent(weight):>4}"


def _arms_table(experiment: Mapping[str, Any], report: ReportView | None) -> Table:
    level = f"{report.level:.0%}" if report is not None else ""
    table = Table(title="arms", title_justify="left")
    table.add_column("arm", no_wrap=True)
    table.add_column("weight", no_wrap=True)
    # `trials`: units for a sticky experiment, single decisions otherwise (what the statistics count)
    for name in ("trials", "pending", "mean", f"{level} CrI", "P(best)", f"lift ({level} CrI)", "P(>ctrl)"):
        table.add_column(name, justify="right", no_wrap=True)
    weights: Mapping[str, float] = experiment.get("weights") or {}
    figures = {a.arm: a for a in report.primary.arms} if report else {}
    operational = {o.arm: o for o in report.operational} if report else {}
    versus = {c.arm: c for c in report.primary.comparisons} if report else {}
    for arm in (a["name"] for a in experiment.get("arms", ())):
        f, o, c = figures.get(arm), operational.get(arm), versus.get(arm)
        label = Text(arm, style="bold" if arm == experiment.get("winner") else "")
        if arm == experiment.get("control"):
            label.append(" (control)", style="dim")
        table.add_row(
            label,
            _share(weights[arm]) if arm in weights else "-",
            "-" if f is None else f"{f.trials:,}",
            "-" if o is None else f"{o.pending:,}",
            "-" if f is None else _number(f.mean),
            "-" if f is None else _interval(f.credible_interval),
            "-" if f is None else _number(f.prob_best, ".3f"),
            "-" if c is None else f"{percent(c.relative)} ({_interval(c.lift_credible_interval, True)})",
            "-" if c is None else _number(c.prob_beats_control, ".3f"),
        )
    return table


def status_view(
    experiment: Mapping[str, Any], report: ReportView | None, plans: Sequence[tuple[str, str]]
) -> RenderableType:
    """`status KEY`: the experiment's settings, its arms with the report's figures, warnings and plans."""
    head = Text()
    head.append(str(experiment.get("key")), style="bold")
    head.append(f"  {experiment.get('name', '')}  ")
    head.append_text(_status(experiment))
    facts = [
        f"policy {policy_label(experiment.get('policy') or {})}",
        f"reward {experiment.get('reward')}",
        f"control {experiment.get('control')}",
        f"exposure {percent(experiment.get('exposure'))}",
        f"weights v{experiment.get('weights_version')}",
    ]
    if experiment.get("feature"):
        facts.append(f"feature {experiment['feature']}")
    if experiment.get("next_reweight_at"):
        facts.append(f"next reweight {experiment['next_reweight_at']}")
    parts: list[RenderableType] = [head, Text(" · ".join(facts), style="dim"), _arms_table(experiment, report)]
    if report is not None:
        rec = report.recommendation
        line = Text("recommendation: ", style="bold")
        line.append(rec.action.replace("_", " ") + (f" {rec.arm}" if rec.action == "ship" else ""))
        line.append(f" ({rec.reason})", style="dim")
        parts.append(line)
        parts += [Text(f"warning: {w.plain}", style=w.style) for w in warnings(report)]
        parts += [Text(f"note: {note}", style="dim") for note in report.notes]
    parts += [Text(f"{name}: {detail}") for name, detail in plans]
    return Group(*parts)


def _change(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> str:
    """What an audit entry changed, in short: `status: draft → active`."""
    if before is None:
        if after and "key" in after:
            return "created"
        return ", ".join(f"{k}: {_short(v)}" for k, v in (after or {}).items())
    after = after or {}
    keys = [k for k in {**before, **after} if before.get(k) != after.get(k)]
    return ", ".join(f"{k}: {_short(before.get(k))} → {_short(after.get(k))}" for k in keys)


def _rounded(value: Any) -> Any:
    """`value` with its floats at 4 significant digits (0.9500000000000001 -> 0.95)."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def _short(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else msgspec.json.encode(_rounded(value)).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def events_table(events: Sequence[Mapping[str, Any]]) -> Table:
    """`events KEY`: the audit log, oldest first."""
    table = Table()
    for name in ("id", "time", "actor", "action", "change"):
        table.add_column(name, justify="right" if name == "id" else "left", overflow="fold")
    for e in events:
        table.add_row(str(e["id"]), str(e["time"]), str(e["actor"]), str(e["action"]), _change(e["before"], e["after"]))
    return table


def history_table(history: Sequence[Mapping[str, Any]]) -> Table:
    """`weights KEY`: the weights history, oldest first, each row with why it moved."""
    table = Table()
    for name in ("version", "time", "reason", "weights", "churn", "moved"):
        table.add_column(name, justify="right" if name in ("version", "churn", "moved") else "left")
    table.add_column("why", overflow="fold", ratio=1)
    for h in history:
        table.add_row(
            str(h["version"]),
            str(h["created_at"]),
            str(h["reason"]),
            weight_bars(h["weights"]),
            percent(h.get("churn"), 1),
            percent(h.get("moved"), 1),
            Text(str(h.get("because", ""))),  # absent from a server older than the explanations
        )
    return table


def keys_table(keys: Sequence[Mapping[str, Any]]) -> Table:
    """`keys list --remote`: names, roles, creation and last use."""
    table = Table()
    for name in ("name", "role", "created", "last used"):
        table.add_column(name)
    for k in keys:
        table.add_row(str(k["name"]), str(k["role"]), str(k["created_at"]), str(k.get("last_used_at") or "never"))
    return table


def features_table(features: Sequence[Mapping[str, Any]]) -> Table:
    """`features list`: key, description, default payload."""
    table = Table()
    for name in ("key", "description", "default payload"):
        table.add_column(name, overflow="fold")
    for f in features:
        table.add_row(str(f["key"]), str(f.get("description", "")), _short(f.get("default_payload"), 60))
    return table
