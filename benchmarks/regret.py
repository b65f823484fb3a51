"""Regret benchmark: our policies on the issue's environments, online and in scheduled batches.

    python -m benchmarks.regret --env ten_arms --horizon 100000 --seeds 100 --out bench-out

Prints, per environment, the mean cumulative pseudo-regret at the horizon with its standard
error, its median and 95th percentile over the seeds (the tail: Thompson's regret is heavy-tailed,
so a mean over 100-200 seeds moves a lot between runs), the ratio to the Lai-Robbins bound
(stationary Bernoulli environments), and decisions simulated per second; saves a PNG of the
regret curves with +-2 SE bands. When MABWiser is installed (`pip install .[bench]`), runs its
Thompson, epsilon-greedy and UCB1 one decision at a time, as it is used, on the same environment
and seed numbers, over a bounded horizon and seed count (`--peer-horizon`, `--peer-seeds`: it
costs ~100-300 us per decision), and prints our regret and speed as ratios against it.
matplotlib, tqdm and MABWiser are optional: without them the plot, the progress bar or the peer
is skipped with a note.

Our runs draw from numpy's SFC64 bit generator by default (`--bit-generator pcg64` for numpy's
default one): both are of good statistical quality and SFC64 is the faster. MABWiser draws from
its own generator, which it does not let a caller choose.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, get_args

import msgspec
import numpy as np

from policies import FixedSplit, PolicyConfig, ThompsonSampling
from policies.environments import BernoulliEnv, DriftingEnv, EnvironmentConfig, GaussianEnv
from policies.lai_robbins import lai_robbins_bound
from policies.simulation import SimulatedPolicy, SimulationResult, simulate

__all__ = ["BIT_GENERATORS", "ENVIRONMENTS", "POLICIES", "PeerRun", "PolicyRun", "main", "make_environment"]

# numpy bit generators our simulations may draw from, by option name.
BIT_GENERATORS: dict[str, Callable[[int], np.random.BitGenerator]] = {
    "sfc64": np.random.SFC64,
    "pcg64": np.random.PCG64,
}


# --- environments: the (a)-(e), by name -------------------------------------------------


def _two_arms(horizon: int) -> EnvironmentConfig:
    return BernoulliEnv((0.10, 0.12))


def _ten_arms(horizon: int) -> EnvironmentConfig:
    return BernoulliEnv(tuple(round(float(p), 4) for p in np.linspace(0.05, 0.14, 10)))


def _five_arms(horizon: int) -> EnvironmentConfig:
    return BernoulliEnv((0.5, 0.45, 0.45, 0.45, 0.45))


def _gaussian(horizon: int) -> EnvironmentConfig:
    return GaussianEnv(means=(0.0, 0.05, 0.10, 0.15, 0.20), sds=(1.0,) * 5)


def _drifting(horizon: int) -> EnvironmentConfig:
    # Half way, arm 1 overtakes arm 0: a stationary policy must unlearn half a run of evidence.
    before, after = BernoulliEnv((0.12, 0.10, 0.08)), BernoulliEnv((0.10, 0.12, 0.08))
    return DriftingEnv(phases=(before, after), change_times=(max(1, horizon // 2),))


ENVIRONMENTS: dict[str, tuple[str, Callable[[int], EnvironmentConfig]]] = {
    "two_arms": ("(a) Bernoulli 0.10 vs 0.12", _two_arms),
    "ten_arms": ("(b) 10 Bernoulli arms 0.05..0.14", _ten_arms),
    "five_arms": ("(c) Bernoulli [0.5, 0.45 x 4]", _five_arms),
    "gaussian": ("(d) Gaussian means 0..0.2 step 0.05, sd 1", _gaussian),
    "drifting": ("(e) Bernoulli [.12 .10 .08] -> [.10 .12 .08] at T/2", _drifting),
}


def make_environment(name: str, horizon: int) -> EnvironmentConfig:
    """The named environment for a run of `horizon` decisions."""
    if name not in ENVIRONMENTS:
        raise ValueError(f"env: unknown environment {name!r}; choose from {', '.join(ENVIRONMENTS)}")
    return ENVIRONMENTS[name][1](horizon)


# --- policies: name -> (factory, batch size or None for online) ---------------------------------

PolicyFactory = Callable[[EnvironmentConfig, int], SimulatedPolicy]


def with_defaults(kind: type[PolicyConfig]) -> PolicyFactory:
    """A factory of the policy with its default parameters, bound to the environment's reward kind."""

    def make(env: EnvironmentConfig, draws: int) -> SimulatedPolicy:
        return kind().bind(reward=env.reward, weights=())

    return make


def _thompson_batches(env: EnvironmentConfig, draws: int) -> SimulatedPolicy:
    # `draws` only matters for `allocate` (scheduled batches): Monte Carlo P(best).
    return ThompsonSampling(draws=draws).bind(reward=env.reward, weights=())


# Every member of the union, online with its defaults (a fixed split with no weights is the
# uniform baseline), then Thompson sampling reweighted in batches as the service does.
POLICIES: dict[str, tuple[PolicyFactory, int | None]] = {
    **{
        "uniform" if kind is FixedSplit else kind.__struct_config__.tag: (with_defaults(kind), None)
        for kind in get_args(PolicyConfig)
    },
    "thompson_b100": (_thompson_batches, 100),
    "thompson_b1000": (_thompson_batches, 1_000),
    "thompson_b10000": (_thompson_batches, 10_000),
}

# Our policies that MABWiser also implements (its learners are built lazily: it is optional).
PEER_POLICIES = ("thompson", "epsilon_greedy", "ucb1")


class PolicyRun(msgspec.Struct, frozen=True):
    """One policy's simulation and its wall time."""

    name: str
    result: SimulationResult
    seconds: float

    @property
    def decisions_per_second(self) -> float:
        """Decisions simulated per second of wall time, all seeds together."""
        return self.result.horizon * self.result.seeds / self.seconds


class PeerRun(msgspec.Struct, frozen=True):
    """MABWiser's run of one policy: final regret per seed and wall time."""

    name: str
    regret: list[float]
    decisions: int
    seconds: float

    @property
    def decisions_per_second(self) -> float:
        """Decisions per second of wall time."""
        return self.decisions / self.seconds


def _progress(total: int, desc: str, enabled: bool) -> AbstractContextManager[Any]:
    """A tqdm bar when tqdm is installed and wanted, else a do-nothing context."""
    if enabled and importlib.util.find_spec("tqdm") is not None:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="dec", unit_scale=True, leave=False, file=sys.stderr)
    return nullcontext()


def run_policies(
    env: EnvironmentConfig,
    names: Sequence[str],
    horizon: int,
    seeds: int,
    seed: int,
    draws: int,
    checkpoints: Sequence[int],
    show_progress: bool,
    label: str,
    bit_generator: str = "sfc64",
) -> list[PolicyRun]:
    """Simulate each named policy with its own generator seeded by `seed`; time each run."""
    runs = []
    with _progress(horizon * seeds * len(names), label, show_progress) as bar:
        for name in names:
            factory, batch_size = POLICIES[name]
            policy = factory(env, draws)
            start = time.perf_counter()
            result = simulate(
                policy,
                env,
                horizon,
                seeds,
                np.random.Generator(BIT_GENERATORS[bit_generator](seed)),
                batch_size=batch_size,
                checkpoints=checkpoints,
                on_progress=(lambda d: bar.update(d * seeds)) if bar is not None else None,
            )
            runs.append(PolicyRun(name, result, time.perf_counter() - start))
    return runs


def run_peer(
    env: EnvironmentConfig,
    wanted: Sequence[str],
    horizon: int,
    seeds: int,
    seed: int,
    show_progress: bool,
    label: str,
) -> list[PeerRun]:
    """MABWiser's Thompson, epsilon-greedy(0.1) and UCB1 (those in `wanted`), one predict/partial_fit per decision.

    Each arm is played once first (`fit` needs data; MABWiser scores an untried arm 0), and
    those decisions count in the regret. Thompson needs 0/1 rewards, so it is left out on
    continuous environments. Seed i uses MABWiser seed `seed + i` and an environment
    generator seeded (seed, i): the same seed numbers as ours, not the same random stream.
    """
    from mabwiser.mab import MAB, LearningPolicy

    learners = {
        "thompson": LearningPolicy.ThompsonSampling(),
        "epsilon_greedy": LearningPolicy.EpsilonGreedy(epsilon=0.1),
        "ucb1": LearningPolicy.UCB1(alpha=1.0),  # alpha = 1 is Auer et al.'s index
    }
    names = [n for n in PEER_POLICIES if n in wanted and not (n == "thompson" and env.reward != "bernoulli")]
    k = env.k
    warm = min(k, horizon)
    runs = []
    with _progress(horizon * seeds * len(names), label, show_progress) as bar:
        for name in names:
            regrets = []
            start = time.perf_counter()
            for i in range(seeds):
                env_rng = np.random.default_rng([seed, i])
                mab = MAB(list(range(k)), learners[name], seed=seed + i)
                first = np.arange(warm)
                mab.fit(decisions=first, rewards=env.draw(first, env_rng, first))
                regret = float(env.gaps_at(first)[first, first].sum())
                for t in range(warm, horizon):
                    arm = int(mab.predict())
                    reward = env.draw(np.array([arm]), env_rng, t)
                    mab.partial_fit(decisions=np.array([arm]), rewards=reward)
                    regret += float(env.gaps_at(t)[arm])
                regrets.append(regret)
                if bar is not None:
                    bar.update(horizon)
            runs.append(PeerRun(name, regrets, horizon * seeds, time.perf_counter() - start))
    return runs


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    se = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else math.nan
    return float(values.mean()), se


def _tail(values: np.ndarray) -> tuple[float, float]:
    """Median and 95th percentile of the per-seed regret: Thompson's regret has heavy tails, so the
    mean and its standard error alone mislead at 100-200 seeds."""
    median, p95 = np.percentile(values, [50, 95])
    return float(median), float(p95)


def _ratio(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """a / b for two independent means, with the delta-method standard error (NaN if either is 0)."""
    if a[0] == 0 or b[0] == 0:
        return math.nan, math.nan
    r = a[0] / b[0]
    return r, abs(r) * math.sqrt((a[1] / a[0]) ** 2 + (b[1] / b[0]) ** 2)


def _bound_at(env: EnvironmentConfig, horizon: int) -> float | None:
    """Lai-Robbins C ln T for stationary Bernoulli environments, else None."""
    if isinstance(env, BernoulliEnv):
        return float(lai_robbins_bound(env.means, [horizon])[0])
    return None


def format_table(env_name: str, env: EnvironmentConfig, runs: Sequence[PolicyRun], bit_generator: str) -> str:
    """The main table: regret at the horizon +- SE, ratio to Lai-Robbins, speed."""
    horizon, seeds = runs[0].result.horizon, runs[0].result.seeds
    bound = _bound_at(env, horizon)
    lines = [
        f"{ENVIRONMENTS[env_name][0]}: T = {horizon:,}, {seeds} seeds, {bit_generator} generator"
        + (f", Lai-Robbins C ln T = {bound:.1f}" if bound is not None else ""),
        f"{'policy':<17} {'mode':<10} {'regret at T':>20} {'median':>9} {'p95':>9} {'/ Lai-Robbins':>14} "
        f"{'decisions/s':>13} {'wall s':>8}",
    ]
    for run in runs:
        mean, se = _mean_se(run.result.final_regret)
        median, p95 = _tail(run.result.final_regret)
        mode = "online" if run.result.batch_size is None else f"B={run.result.batch_size:,}"
        lr = f"{mean / bound:.2f}" if bound else "n/a"
        lines.append(
            f"{run.name:<17} {mode:<10} {mean:>11.1f} +- {se:<6.1f} {median:>9.1f} {p95:>9.1f} {lr:>14} "
            f"{run.decisions_per_second:>13,.0f} {run.seconds:>8.2f}"
        )
    by_name = {r.name: r for r in runs}
    if "thompson" in by_name:
        online = _mean_se(by_name["thompson"].result.final_regret)
        for b in ("thompson_b100", "thompson_b1000", "thompson_b10000"):
            if b in by_name:
                r, se = _ratio(_mean_se(by_name[b].result.final_regret), online)
                lines.append(f"regret {b} / thompson online: {r:.3f} +- {se:.3f}")
    return "\n".join(lines)


def format_peer_table(runs: Sequence[PolicyRun], peers: Sequence[PeerRun], peer_horizon: int) -> str:
    """Our regret (at the peer's horizon) and speed as ratios against MABWiser's."""
    by_name = {r.name: r for r in runs}
    lines = [
        f"peer: MABWiser, one decision at a time, T = {peer_horizon:,}, {len(peers[0].regret)} seeds",
        f"{'policy':<15} {'ours regret':>16} {'MABWiser regret':>18} {'ratio':>14} "
        f"{'ours dec/s':>12} {'MABWiser dec/s':>15} {'speed ratio':>12}",
    ]
    for peer in peers:
        if peer.name not in by_name:
            continue
        run = by_name[peer.name]
        g = int(np.searchsorted(run.result.times, peer_horizon))
        ours = _mean_se(run.result.regret[:, g])
        theirs = _mean_se(np.asarray(peer.regret))
        r, se = _ratio(ours, theirs)
        lines.append(
            f"{peer.name:<15} {ours[0]:>8.1f} +- {ours[1]:<5.1f} {theirs[0]:>9.1f} +- {theirs[1]:<6.1f} "
            f"{r:>6.2f} +- {se:<5.2f} {run.decisions_per_second:>12,.0f} {peer.decisions_per_second:>15,.0f} "
            f"{run.decisions_per_second / peer.decisions_per_second:>11,.0f}x"
        )
    return "\n".join(lines)


def plot(env_name: str, env: EnvironmentConfig, runs: Sequence[PolicyRun], path: Path) -> bool:
    """Save the regret curves with +-2 SE bands (and the Lai-Robbins curve) as a PNG; False without matplotlib."""
    if importlib.util.find_spec("matplotlib") is None:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Left: linear axes, where regret reads as reward lost. Right: log-log, where the slope shows
    # the growth rate (uniform's slope 1 against the learners' flattening curves) and small
    # regrets are not squashed by uniform split.
    fig, (lin, log) = plt.subplots(1, 2, figsize=(14, 5.5), layout="constrained")
    top = 0.0
    for i, run in enumerate(runs):
        res = run.result
        mean, se = res.mean_regret, np.nan_to_num(res.se_regret)
        mode = "online" if res.batch_size is None else f"every {res.batch_size:,}"
        style = "-" if res.batch_size is None else "--"  # scheduled variants dashed
        for ax in (lin, log):
            ax.plot(res.times, mean, style, color=f"C{i}", label=f"{run.name} ({mode})", lw=1.6)
            ax.fill_between(res.times, mean - 2 * se, mean + 2 * se, color=f"C{i}", alpha=0.18, lw=0)
        top = max(top, float((mean + 2 * se).max()))
    res0 = runs[0].result
    if isinstance(env, BernoulliEnv):
        bound = lai_robbins_bound(env.means, res0.times)
        for ax in (lin, log):
            ax.plot(res0.times, bound, "k:", lw=1.2, label="Lai-Robbins C ln T (asymptotic)")
    if isinstance(env, DriftingEnv):
        for c in env.change_times:
            for ax in (lin, log):
                ax.axvline(c, color="grey", ls=":", lw=1)
    # The asymptotic bound exceeds every finite-horizon curve early on: the linear axis follows
    # the policies so that the bound does not flatten them.
    lin.set(xlabel="decisions", ylabel="cumulative pseudo-regret", xlim=(0, res0.horizon), ylim=(0, 1.08 * top))
    log.set(xlabel="decisions (log)", ylabel="cumulative pseudo-regret (log)", xscale="log", yscale="log")
    # Below ~10 decisions every policy is still exploring: start the log axis there.
    start = min(10, res0.horizon)
    later = res0.times >= start
    floor = min(float(r.result.mean_regret[later].min()) for r in runs)
    log.set_xlim(start, res0.horizon)
    log.set_ylim(bottom=0.5 * floor if floor > 0 else None)
    for ax in (lin, log):
        ax.grid(alpha=0.3)
    lin.legend(loc="upper left", fontsize=8, ncols=2)
    fig.suptitle(f"{ENVIRONMENTS[env_name][0]}: mean cumulative regret over {res0.seeds} seeds, bands +-2 SE")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.regret", description=__doc__.splitlines()[0])
    p.add_argument("--env", default="all", help=f"comma-separated names or 'all': {', '.join(ENVIRONMENTS)}")
    p.add_argument("--horizon", type=int, default=100_000, help="decisions per run (default 100,000)")
    p.add_argument("--seeds", type=int, default=100, help="independent runs, simulated at once (default 100)")
    p.add_argument("--out", type=Path, default=Path("bench-out"), help="directory for the PNG and JSON files")
    p.add_argument("--policies", default="all", help=f"comma-separated names or 'all': {', '.join(POLICIES)}")
    p.add_argument("--seed", type=int, default=20261122, help="base seed of every generator")
    p.add_argument("--draws", type=int, default=1_000, help="Monte Carlo draws of P(best) per scheduled reweight")
    p.add_argument(
        "--bit-generator", choices=tuple(BIT_GENERATORS), default="sfc64", help="numpy bit generator of our runs"
    )
    p.add_argument("--checkpoints", type=int, default=200, help="points on each regret curve")
    p.add_argument("--peer", choices=("auto", "off"), default="auto", help="run MABWiser when installed")
    p.add_argument("--peer-horizon", type=int, default=2_000, help="MABWiser's horizon (capped at --horizon)")
    p.add_argument("--peer-seeds", type=int, default=10, help="MABWiser's number of seeds")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    args.env_names = list(ENVIRONMENTS) if args.env == "all" else args.env.split(",")
    args.policy_names = list(POLICIES) if args.policies == "all" else args.policies.split(",")
    for name in args.env_names:
        if name not in ENVIRONMENTS:
            p.error(f"--env: unknown environment {name!r}; choose from {', '.join(ENVIRONMENTS)}")
    for name in args.policy_names:
        if name not in POLICIES:
            p.error(f"--policies: unknown policy {name!r}; choose from {', '.join(POLICIES)}")
    for flag in ("horizon", "seeds", "draws", "checkpoints", "peer_horizon", "peer_seeds"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')}: must be a positive integer")
    return args


def _summary(env_name: str, env: EnvironmentConfig, runs: Sequence[PolicyRun], peers: Sequence[PeerRun]) -> bytes:
    """A JSON record of the run: environment, per-policy figures and curves, peer figures."""
    bound = _bound_at(env, runs[0].result.horizon)
    return msgspec.json.format(
        msgspec.json.encode(
            {
                "environment": env_name,
                "config": env,
                "lai_robbins_at_horizon": bound,
                "policies": [
                    {
                        "name": r.name,
                        "batch_size": r.result.batch_size,
                        "horizon": r.result.horizon,
                        "seeds": r.result.seeds,
                        "regret_mean": _mean_se(r.result.final_regret)[0],
                        "regret_se": _mean_se(r.result.final_regret)[1],
                        "regret_median": _tail(r.result.final_regret)[0],
                        "regret_p95": _tail(r.result.final_regret)[1],
                        "decisions_per_second": r.decisions_per_second,
                        "seconds": r.seconds,
                        "times": r.result.times.tolist(),
                        "curve_mean": r.result.mean_regret.tolist(),
                        "curve_se": np.nan_to_num(r.result.se_regret).tolist(),
                    }
                    for r in runs
                ],
                "peer": [
                    {"name": p.name, "regret": p.regret, "decisions_per_second": p.decisions_per_second} for p in peers
                ],
            }
        ),
        indent=2,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark on each chosen environment; print tables, save PNG and JSON files."""
    args = _parse(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    peer_horizon = min(args.peer_horizon, args.horizon)
    has_peer = args.peer == "auto" and importlib.util.find_spec("mabwiser") is not None
    if args.peer == "auto" and not has_peer:
        print("peer: MABWiser is not installed (pip install .[bench]); skipping the peer comparison")
    for env_name in args.env_names:
        env = make_environment(env_name, args.horizon)
        # Evenly spaced points for the linear plot, geometric ones for the log-log plot.
        even = np.linspace(1, args.horizon, args.checkpoints)
        geometric = np.geomspace(1, args.horizon, args.checkpoints)
        checkpoints = np.union1d(np.round(np.concatenate([even, geometric])).astype(np.int64), [peer_horizon])
        runs = run_policies(
            env,
            args.policy_names,
            args.horizon,
            args.seeds,
            args.seed,
            args.draws,
            checkpoints.tolist(),
            not args.no_progress,
            env_name,
            args.bit_generator,
        )
        print()
        print(format_table(env_name, env, runs, args.bit_generator))
        peers: list[PeerRun] = []
        if has_peer:
            label = f"{env_name} MABWiser"
            peers = run_peer(
                env, args.policy_names, peer_horizon, args.peer_seeds, args.seed, not args.no_progress, label
            )
            if peers:
                print(format_peer_table(runs, peers, peer_horizon))
        png = args.out / f"regret_{env_name}.png"
        if plot(env_name, env, runs, png):
            print(f"plot: {png}")
        else:
            print("plot: matplotlib is not installed (pip install .[bench]); no PNG")
        (args.out / f"regret_{env_name}.json").write_bytes(_summary(env_name, env, runs, peers))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
