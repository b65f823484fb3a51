"""Operator commands over HTTP: new, create, list, status, show, report, timeseries, lifecycle, weights, exposure,
plans, events."""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path
from typing import Any, cast

import click
import msgspec
from rich.table import Table
from rich.text import Text

from bandit_service.cli.context import INPUT_ERROR, echo_json, fail, make_console, remote
from bandit_service.cli.tables import (
    ReportView,
    events_table,
    experiment_row,
    experiments_table,
    history_table,
    percent,
    policy_label,
    read_report_view,
    status_view,
    weight_bars,
)
from bandit_service.cli.template import template
from bandit_service.cli.values import parse_assignments, parse_share, parse_steps
from bandit_service.client.manage import BanditError, Json, Management
from bandit_service.client.manage_core import Status
from bandit_service.client.specs import FORMATS, SpecFormat, load_document, load_spec

__all__ = ["COMMANDS"]

STATUSES = ("draft", "active", "paused", "completed")
KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
json_option = click.option("--json", "as_json", is_flag=True, help="Print the service's JSON instead of a table.")
DAY = click.DateTime(formats=["%Y-%m-%d"])
from_option = click.option(
    "--from", "since", type=DAY, help="First UTC day (YYYY-MM-DD): count only trials opened from this day."
)
to_option = click.option("--to", "until", type=DAY, help="Last UTC day (YYYY-MM-DD), inclusive.")


def _day(value: dt.datetime | None) -> dt.date | None:
    return None if value is None else value.date()


def _weights_line(experiment: Json) -> str:
    weights = experiment.get("weights") or {}
    shares = ", ".join(f"{arm} {percent(w)}" for arm, w in weights.items())
    return f"weights v{experiment.get('weights_version')}: {shares}" if shares else "no weights yet"


def _said(experiment: Json, as_json: bool) -> None:
    """What a change answers: the experiment as JSON, or one line on its status and weights."""
    if as_json:
        echo_json(experiment)
        return
    line = Text(f"{experiment['key']}: ")
    line.append(str(experiment["status"]), style="bold")
    if experiment.get("winner"):
        line.append(f" (winner {experiment['winner']})")
    line.append(f"; exposure {percent(experiment.get('exposure'))}; {_weights_line(experiment)}")
    make_console().print(line)


@click.command()
@click.option("--key", default="checkout-button", show_default=True, help="The experiment's key.")
@click.option("--name", default="Checkout button colour", show_default=True, help="Its human name.")
def new(key: str, name: str) -> None:
    """Print a commented YAML spec to start from: bandit-service new > experiment.yaml."""
    if not KEY_PATTERN.match(key):
        raise click.BadParameter(f"{key!r}: lowercase letters, digits, - and _, at most 64", param_hint="--key")
    click.echo(template(key, name), nl=False)


@click.command()
@click.argument("spec", metavar="FILE")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["yaml", "toml", "json"]),
    help="The spec's format (default: by suffix; standard input is sniffed).",
)
@click.option("--start", is_flag=True, help="Start the experiment once created.")
@json_option
@remote
def create(manage: Management, spec: str, fmt: str | None, start: bool, as_json: bool) -> None:
    """Create a draft experiment from a YAML, TOML or JSON FILE (- for standard input)."""
    fields = load_spec(spec, format=cast(SpecFormat | None, fmt))
    made = manage.create(fields)
    if start:
        made = manage.start(made["key"])
    if as_json:
        echo_json(made)
        return
    arms = ", ".join(a["name"] for a in made["arms"])
    make_console().print(
        f"created {made['key']} ({made['status']}): {len(made['arms'])} arms ({arms}), "
        f"policy {policy_label(made['policy'])}, control {made['control']}"
    )
    if not start:
        make_console().print(Text(f"start it with: bandit-service start {made['key']}", style="dim"))


def _report(manage: Management, experiment: Json) -> tuple[Json | None, ReportView | None, str | None]:
    """The report of an experiment that has one (not a draft): as sent, as the tables read it, or why not."""
    if experiment.get("status") == "draft":
        return None, None, None
    try:
        raw = manage.report_json(experiment["key"])
        return raw, read_report_view(raw), None
    except BanditError as exc:  # one unreadable report (a rate limit, say) does not hide the others
        return None, None, str(exc)
    except msgspec.ValidationError as exc:
        return None, None, f"unexpected shape ({exc})"


@click.command(name="list")
@click.option("--status", type=click.Choice(STATUSES), help="Only experiments of this status.")
@click.option("--limit", type=click.IntRange(1, 1_000), default=50, show_default=True, help="At most this many.")
@json_option
@remote
def list_(manage: Management, status: str | None, limit: int, as_json: bool) -> None:
    """List experiments: status, policy, weights, leader with P(best), units, warnings."""
    found = manage.list(cast(Status | None, status), limit=limit)
    if as_json:
        echo_json(found)
        return
    if not found:
        make_console().print("no experiments" + (f" with status {status}" if status else ""))
        return
    rows = [experiment_row(e, *_report(manage, e)[1:]) for e in found]
    make_console().print(experiments_table(rows))


def _plans(manage: Management, key: str) -> list[tuple[str, str]]:
    """The running ramp and gradual completion, in words (404: none)."""
    plans = []
    for name, read in (("ramp", manage.ramp), ("completion", manage.completion)):
        try:
            plans.append((name, str(read(key)["detail"])))
        except BanditError as exc:
            if exc.status != 404:
                raise
    return plans


@click.command()
@click.argument("key")
@json_option
@remote
def status(manage: Management, key: str, as_json: bool) -> None:
    """One experiment: settings, arms with weights and figures, recommendation, warnings, plans."""
    experiment = manage.get(key)
    raw, report, problem = _report(manage, experiment)
    if as_json:
        echo_json({"experiment": experiment, "report": raw})
        return
    console = make_console()
    console.print(status_view(experiment, report, _plans(manage, key)))
    if problem is not None:
        console.print(Text(f"report: {problem}", style="yellow"))


@click.command()
@click.argument("key")
@remote
def show(manage: Management, key: str) -> None:
    """One experiment as JSON: configuration, status, weights, per-arm counts."""
    echo_json(manage.get(key))


@click.command()
@click.argument("key")
@click.option("--segment", help="Split every figure by this decision attribute.")
@from_option
@to_option
@json_option
@remote
def report(
    manage: Management,
    key: str,
    segment: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    as_json: bool,
) -> None:
    """The report: frequentist and Bayesian figures side by side, health, recommendation."""
    first, last = _day(since), _day(until)
    if as_json:
        echo_json(manage.report_json(key, segment=segment, since=first, until=last))
    else:
        click.echo(manage.report_text(key, segment=segment, since=first, until=last).rstrip("\n"))


def _figure(value: float | None, spec: str = ".4g") -> str:
    return "-" if value is None or math.isnan(value) else format(value, spec)


def _series_table(series: Json) -> Table:
    """Per day, arm and metric: traffic (reward rows) and the mean with its interval."""
    level = f"{series['level']:.0%}"
    days = len(series["days"])
    table = Table(title=f"{days} day{'' if days == 1 else 's'}, UTC (trials counted on the day they opened)")
    for name in ("day", "arm", "metric", "units", "trials", "exposures", "rewarded", "n", "mean", f"{level} interval"):
        table.add_column(name, justify="left" if name in ("day", "arm", "metric") else "right", no_wrap=True)
    for row in [*series["primary"], *series["metrics"]]:
        traffic = [str(row[c]) if c in row else "" for c in ("units", "trials", "exposures", "rewarded")]
        interval = f"[{_figure(row['lower'], '.3g')}, {_figure(row['upper'], '.3g')}]"
        table.add_row(row["day"], row["arm"], row["metric"], *traffic, str(row["n"]), _figure(row["mean"]), interval)
    return table


@click.command()
@click.argument("key")
@from_option
@to_option
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV: one row per (day, arm, metric), with a header.")
@json_option
@remote
def timeseries(
    manage: Management, key: str, since: dt.datetime | None, until: dt.datetime | None, as_csv: bool, as_json: bool
) -> None:
    """Per UTC day and arm: units, trials, exposures, rewarded and each metric's mean with its interval."""
    window = {"since": _day(since), "until": _day(until)}
    if as_csv:
        click.echo(manage.timeseries_csv(key, **window), nl=False)
        return
    series = manage.timeseries(key, **window)
    if as_json:
        echo_json(series)
    else:
        make_console().print(_series_table(series))


def _lifecycle(action: str, summary: str) -> click.Command:
    @click.command(name=action, help=summary)
    @click.argument("key")
    @json_option
    @remote
    def run(manage: Management, key: str, as_json: bool) -> None:
        _said(manage.start(key) if action == "start" else manage.pause(key), as_json)

    return run


start = _lifecycle("start", "Start (or resume) an experiment: draft or paused -> active.")
pause = _lifecycle("pause", "Pause an experiment: every unit gets the control arm.")


@click.command()
@click.argument("key")
@json_option
@remote
def reweight(manage: Management, key: str, as_json: bool) -> None:
    """Recompute an experiment's weights now through its policy."""
    record = manage.reweight(key)
    if as_json:
        echo_json(record)
        return
    console = make_console()
    console.print(f"{key}: weights v{record['version']} ({record['reason']})")
    console.print(weight_bars(record["weights"]))
    console.print(record.get("because", ""), markup=False)


def _plan(value: str) -> list[Any]:
    """`--plan`: a YAML, TOML or JSON file (a list of steps, or a mapping with `plan`), or steps inline."""
    if value == "-" or Path(value).suffix.lower() in FORMATS:
        document = load_document(value)
        steps = document.get("plan") if isinstance(document, dict) else document
        if not isinstance(steps, list):
            fail(f"--plan {value}: expected a list of steps ({{share, hold_s}}), or a mapping with `plan`", INPUT_ERROR)
        return steps
    return parse_steps([value], "--plan")


@click.command()
@click.argument("key")
@click.option("--winner", help="The winning arm (default: none, serve the control).")
@click.option(
    "--plan",
    metavar="STEPS|FILE",
    help="Shift traffic to the winner step by step first: SHARE:HOLD,... (e.g. 0.5:1h,0.8:1h,1) or a file.",
)
@json_option
@remote
def complete(manage: Management, key: str, winner: str | None, plan: str | None, as_json: bool) -> None:
    """Complete an experiment, serving the winner (or the control)."""
    steps = _plan(plan) if plan is not None else None
    done = manage.complete(key, winner, steps)
    if as_json or steps is None:
        _said(done, as_json)
        return
    make_console().print(f"{key}: {manage.completion(key)['detail']}")


@click.command()
@click.argument("key")
@click.argument("weights", nargs=-1, metavar="[ARM=WEIGHT]...")
@click.option("--rebalance", is_flag=True, help="Also move stored sticky units, fewest first, to the new split.")
@json_option
@remote
def weights(manage: Management, key: str, weights: tuple[str, ...], rebalance: bool, as_json: bool) -> None:
    """Set a fixed split's weights (a=0.3 b=70%), or show the weights history without ARM=WEIGHT."""
    if not weights:
        history = manage.weights_history(key)
        echo_json(history) if as_json else make_console().print(history_table(history))
        return
    split = {arm: parse_share(str(w), "ARM=WEIGHT") for arm, w in parse_assignments(weights, "ARM=WEIGHT").items()}
    record = manage.set_weights(key, split, rebalance=rebalance)
    if as_json:
        echo_json(record)
        return
    moved = "" if record.get("moved") is None else f", moved {percent(record['moved'], 1)} of stored units"
    make_console().print(f"{key}: weights v{record['version']}{moved}")
    make_console().print(weight_bars(record["weights"]))
    make_console().print(record.get("because", ""), markup=False)


@click.command()
@click.argument("key")
@click.argument("share")
@json_option
@remote
def exposure(manage: Management, key: str, share: str, as_json: bool) -> None:
    """Set the share of units that enter the experiment: 0.3 or 30%."""
    _said(manage.set_exposure(key, parse_share(share, "SHARE")), as_json)


@click.command()
@click.argument("key")
@click.argument("steps", nargs=-1, metavar="[EXPOSURE[:HOLD]]...")
@click.option("--cancel", is_flag=True, help="Cancel the running ramp (the exposure stays where it is).")
@json_option
@remote
def ramp(manage: Management, key: str, steps: tuple[str, ...], cancel: bool, as_json: bool) -> None:
    """Show the exposure ramp, start one (0.1:1h 0.5:1d 1.0), or --cancel it."""
    if cancel and steps:
        raise click.UsageError("give steps or --cancel, not both")
    if cancel:
        found = manage.cancel_ramp(key)
    elif steps:
        found = manage.set_ramp(key, parse_steps(steps, "STEPS"))
    else:
        found = manage.ramp(key)
    echo_json(found) if as_json else make_console().print(f"{key}: {found['detail']}")


@click.command()
@click.argument("key")
@click.option("--cancel", is_flag=True, help="Cancel the running gradual completion.")
@json_option
@remote
def completion(manage: Management, key: str, cancel: bool, as_json: bool) -> None:
    """Show the gradual completion (complete --plan), or --cancel it."""
    found = manage.cancel_completion(key) if cancel else manage.completion(key)
    echo_json(found) if as_json else make_console().print(f"{key}: {found['detail']}")


@click.command()
@click.argument("key")
@click.option("--after", type=click.IntRange(min=0), default=0, help="Only entries after this id (a cursor).")
@click.option("--limit", type=click.IntRange(1, 1_000), default=100, show_default=True, help="At most this many.")
@json_option
@remote
def events(manage: Management, key: str, after: int, limit: int, as_json: bool) -> None:
    """The audit log: who changed what, when, oldest first."""
    page = manage.events(key, after=after, limit=limit)
    if as_json:
        echo_json(page)
        return
    console = make_console()
    console.print(events_table(page["events"]))
    if page.get("next_after") is not None:
        console.print(Text(f"more: --after {page['next_after']}", style="dim"))


@click.command()
@click.argument("key")
@click.argument("changes", nargs=-1, required=True, metavar="FILE|FIELD=VALUE...")
@json_option
@remote
def patch(manage: Management, key: str, changes: tuple[str, ...], as_json: bool) -> None:
    """Change fields: a YAML/TOML/JSON FILE of them, or FIELD=VALUE pairs (exposure=0.5 description="...")."""
    if len(changes) == 1 and "=" not in changes[0]:
        fields: dict[str, Any] = load_spec(changes[0])
    else:
        fields = parse_assignments(changes, "FIELD=VALUE")
    _said(manage.patch(key, fields), as_json)


COMMANDS = [
    new,
    create,
    list_,
    status,
    show,
    report,
    timeseries,
    start,
    pause,
    reweight,
    complete,
    completion,
    weights,
    exposure,
    ramp,
    events,
    patch,
]
"""The operator commands, in the order `--help` lists them."""
