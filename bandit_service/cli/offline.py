"""Offline commands, no service needed: `analyze` a CSV of rewards, plan a `sample-size`.

numpy and scipy are imported inside the commands, so that the others start fast.
"""

from __future__ import annotations

import math
from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from bandit_service.cli.context import INPUT_ERROR, echo_json, fail, make_console

__all__ = ["analyze", "sample_size"]


@click.command()
@click.argument("csv", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--control", help="The control arm (default: the first arm in the file).")
@click.option("--level", type=click.FloatRange(0.5, 1.0, min_open=True, max_open=True), default=0.95, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the Bayesian Monte Carlo draws.")
def analyze(csv: Path, control: str | None, level: float, seed: int) -> None:
    """Compare arms from a CSV with the columns arm,reward (frequentist and Bayesian)."""
    from bandit_service.offline import analyze_csv

    try:
        click.echo(analyze_csv(csv, control, seed, level))
    except (OSError, ValueError) as exc:
        fail(exc, INPUT_ERROR)


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


@click.command(name="sample-size")
@click.option("--baseline", type=float, required=True, help="The control's rate (or mean, with --std).")
@click.option("--mde", type=float, required=True, help="Minimum detectable effect (absolute unless --relative).")
@click.option("--relative", is_flag=True, help="The MDE is a share of the baseline (0.1 = +10%).")
@click.option("--std", type=float, help="Standard deviation of a continuous metric.")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="Two-sided significance level.")
@click.option("--power", type=float, default=0.8, show_default=True)
@click.option("--arms", type=int, default=2, show_default=True, help="Arms including the control.")
@click.option(
    "--correction",
    type=click.Choice(["bonferroni", "holm", "none"]),
    default="bonferroni",
    show_default=True,
    help="How alpha is split over the arms' comparisons with the control (holm plans as bonferroni).",
)
@click.option(
    "--daily-traffic",
    type=float,
    multiple=True,
    help="Units per day entering the experiment; repeat it for one row per traffic level.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def sample_size(
    baseline: float,
    mde: float,
    relative: bool,
    std: float | None,
    alpha: float,
    power: float,
    arms: int,
    correction: str,
    daily_traffic: tuple[float, ...],
    as_json: bool,
) -> None:
    """Units per arm to detect an effect, and the days it takes at each --daily-traffic."""
    from policies import sample_size_means, sample_size_proportions

    plans = []
    try:
        for traffic in daily_traffic or (None,):
            options = {
                "relative": relative,
                "alpha": alpha,
                "power": power,
                "arms": arms,
                "correction": correction,
                "daily_traffic": traffic,
            }
            if std is None:
                plans.append(sample_size_proportions(baseline, mde, **options))  # type: ignore[arg-type]
            else:
                plans.append(sample_size_means(baseline, std, mde, **options))  # type: ignore[arg-type]
    except ValueError as exc:
        fail(exc, INPUT_ERROR)
    first = plans[0]
    if as_json:
        echo_json(
            {
                "metric": first.metric,
                "control": first.control,
                "treatment": first.treatment,
                "arms": first.arms,
                "total": first.total,
                "difference": first.difference,
                "alpha": first.alpha,
                "power": first.power,
                "achieved_power": first.achieved_power,
                "correction": first.correction,
                "durations": [{"daily_traffic": t, "days": p.days} for t, p in zip(daily_traffic, plans, strict=False)],
            }
        )
        return
    console = make_console()
    head = Text(f"{first.metric}: baseline {baseline:g}, detect a difference of {first.difference:.4g}", style="bold")
    console.print(head)
    console.print(
        f"alpha {first.alpha:.4g} per comparison ({arms - 1} vs control; {first.correction}), "
        f"power {first.power:g} (achieved {first.achieved_power:.3f})",
        style="dim",
    )
    table = Table()
    for name in ("daily traffic", "control", "per treatment arm", "total", "days"):
        table.add_column(name, justify="right")
    for traffic, plan in zip(daily_traffic or (math.nan,), plans, strict=True):
        shown = "-" if math.isnan(traffic) else f"{traffic:,.0f}"
        table.add_row(shown, _count(plan.control), _count(plan.treatment), _count(plan.total), _count(plan.days))
    console.print(table)
