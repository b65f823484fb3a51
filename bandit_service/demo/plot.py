"""The demo's picture: the weights over time, and each arm's Beta posterior against its true rate.

matplotlib is optional (`pip install 'bandit-service[demo]'`): without it `draw` returns None and the
demo says how to get the picture. The figure is drawn on matplotlib's Agg canvas directly, without
pyplot, so the caller's pyplot state and backend are left alone.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
from scipy import stats

__all__ = ["ArmPosterior", "PictureData", "draw"]

PICTURE_NAME = "demo.png"


class ArmPosterior(msgspec.Struct, frozen=True, kw_only=True):
    """One arm's true rate (known to the demo only) and its Beta posterior's parameters at the end."""

    name: str
    true_rate: float
    trials: int
    alpha: float
    beta: float


class PictureData(msgspec.Struct, frozen=True, kw_only=True):
    """What the picture shows: weights history as steps (seconds since start), and the posteriors."""

    times_s: tuple[float, ...]
    weights: dict[str, tuple[float, ...]]
    end_s: float
    arms: tuple[ArmPosterior, ...]
    best: str
    reweight_every_s: float


def draw(data: PictureData, out_dir: Path) -> Path | None:
    """Write the picture to `out_dir/demo.png`; None when matplotlib is not installed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    figure = Figure(figsize=(12.0, 4.8), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2, width_ratios=(1.25, 1.0))
    colors = {arm.name: _color(arm.name, i) for i, arm in enumerate(data.arms)}

    times = [*data.times_s, data.end_s]
    for arm in data.arms:
        series = data.weights[arm.name]
        best = arm.name == data.best
        label = f"{arm.name}: true rate {arm.true_rate:.0%}{' (the best)' if best else ''}, {arm.trials:,} users"
        left.step(
            times, [*series, series[-1]], where="post", color=colors[arm.name], lw=3.0 if best else 1.6, label=label
        )
    left.set(
        title=f"Weights (Thompson sampling, reweighted every {data.reweight_every_s:g} s)",
        xlabel="seconds since start",
        ylabel="share of new users",
        ylim=(-0.02, 1.02),
        xlim=(0.0, data.end_s),
    )
    left.grid(alpha=0.3)
    figure.legend(loc="outside lower center", ncols=len(data.arms), frameon=False)

    top = max(a.true_rate for a in data.arms)
    grid = np.linspace(0.0, min(1.0, 1.8 * top), 600)
    for arm in data.arms:
        density = stats.beta.pdf(grid, arm.alpha, arm.beta)
        right.plot(grid, density, color=colors[arm.name], lw=2.0)
        right.axvline(arm.true_rate, color=colors[arm.name], ls="--", lw=1.2)
    right.set(
        title="Posterior conversion rates (dashed: the true rates)",
        xlabel="conversion rate",
        ylabel="density",
    )
    right.xaxis.set_major_formatter("{x:.0%}")
    right.grid(alpha=0.3)

    path = out_dir / PICTURE_NAME
    figure.savefig(path)
    return path


def _color(name: str, index: int) -> str:
    """The arm's own colour when its name is one (the demo's arms are blue, green, orange), else the cycle's."""
    from matplotlib.colors import is_color_like

    return f"tab:{name}" if is_color_like(f"tab:{name}") else f"C{index}"
