"""The `bandit-service` command: `serve`, `migrate`, operator commands over HTTP, `analyze` and `sample-size`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from bandit_service.operator import OperatorError, run_operator
from bandit_service.settings import API_KEY_VARIABLE, Settings

__all__ = ["build_parser", "main"]


def _serve(args: argparse.Namespace) -> int:
    """Run uvicorn on the ASGI app; BANDIT_* environment variables configure the service."""
    import uvicorn  # imported here so that other subcommands start fast

    from bandit_service.server_limits import raise_open_file_limit, uvicorn_limits
    from bandit_service.serving import serving_observability

    if args.no_auth:  # the workers read their settings from the environment (asgi.py)
        os.environ["BANDIT_AUTH"] = "off"
    try:
        settings = Settings.from_env(os.environ)
        limits = uvicorn_limits(settings, raise_open_file_limit())
    except ValueError as exc:
        print(f"bandit-service serve: {exc}", file=sys.stderr)
        return 2
    with serving_observability(settings, args.workers, args.log_level, os.environ) as observed:
        uvicorn.run(
            "bandit_service.asgi:app",
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
            proxy_headers=False,
            **limits,  # read deadline, connection cap (server_limits.py)
            **observed,  # JSON logs, the metrics directory of several workers (serving.py)
        )
    return 0


def _keys(args: argparse.Namespace) -> int:
    """Create, list or revoke API keys on the database of BANDIT_DATABASE_URL."""
    from sqlalchemy.exc import SQLAlchemyError  # imported here, like uvicorn in `_serve`

    from bandit_service.key_commands import KeyCommandError, run_key_command

    try:
        run_key_command(args.keys_command, getattr(args, "name", None), getattr(args, "role", None), os.environ)
    except KeyCommandError as exc:
        print(f"bandit-service keys {args.keys_command}: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        print(f"bandit-service keys {args.keys_command}: the database failed: {exc}", file=sys.stderr)
        return 1
    return 0


def _migrate(args: argparse.Namespace) -> int:
    """Upgrade the database of BANDIT_DATABASE_URL to the newest schema revision."""
    # Imported here, like uvicorn in `_serve`, so that other subcommands start fast.
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from bandit_service.storage.database import open_database
    from bandit_service.storage.schema import current_revision, upgrade_schema

    try:
        settings = Settings.from_env(os.environ)
    except ValueError as exc:
        print(f"bandit-service migrate: {exc}", file=sys.stderr)
        return 2
    try:
        db = open_database(settings)
        try:
            before = current_revision(db)
            upgrade_schema(db)
            after = current_revision(db)
        finally:
            db.dispose()
    except (CommandError, SQLAlchemyError) as exc:
        print(f"bandit-service migrate: {exc}", file=sys.stderr)
        return 1
    print(f"schema revision: {before or 'none'} -> {after}")
    return 0


OPERATOR_COMMANDS = {
    "create": "create a draft experiment from a JSON spec (a file, or - for standard input)",
    "list": "list experiments",
    "show": "show an experiment: config, status, weights, per-arm counts",
    "start": "start (or resume) an experiment",
    "pause": "pause an experiment (units get the control arm)",
    "complete": "complete an experiment, optionally with a winner",
    "reweight": "recompute an experiment's weights now",
    "report": "print an experiment's report (frequentist and Bayesian side by side)",
}


def _operator(http: httpx.Client | None) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        client = http if http is not None else httpx.Client(base_url=args.url, timeout=args.timeout)
        if args.api_key:
            client.headers["Authorization"] = f"Bearer {args.api_key}"
        try:
            run_operator(args.command, args, client)
        except OperatorError as exc:
            print(f"bandit-service {args.command}: {exc}", file=sys.stderr)
            return 1
        finally:
            if http is None:
                client.close()
        return 0

    return handler


def _analyze(args: argparse.Namespace) -> int:
    from bandit_service.offline import analyze_csv  # numpy and scipy: imported only by the offline commands

    try:
        print(analyze_csv(Path(args.csv), args.control, args.seed, args.level))
    except (OSError, ValueError) as exc:
        print(f"bandit-service analyze: {exc}", file=sys.stderr)
        return 2
    return 0


def _sample_size(args: argparse.Namespace) -> int:
    from bandit_service.offline import plan_sample_size  # numpy and scipy: imported only by the offline commands

    try:
        plan = plan_sample_size(
            args.baseline,
            args.mde,
            std=args.std,
            relative=args.relative,
            alpha=args.alpha,
            power=args.power,
            arms=args.arms,
            daily_traffic=args.daily_traffic,
        )
    except ValueError as exc:
        print(f"bandit-service sample-size: {exc}", file=sys.stderr)
        return 2
    print(plan)
    return 0


def _add_offline_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    analyze = commands.add_parser("analyze", help="compare arms from a CSV of arm,reward rows (offline)")
    analyze.add_argument("csv", help="CSV file with a header and the columns arm, reward")
    analyze.add_argument("--control", help="the control arm (default: the first arm in the file)")
    analyze.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    analyze.add_argument("--seed", type=int, default=0, help="seed of the Bayesian Monte Carlo draws")
    analyze.set_defaults(handler=_analyze)
    size = commands.add_parser("sample-size", help="units per arm to detect an effect, and the duration")
    size.add_argument("--baseline", type=float, required=True, help="control rate (or mean with --std)")
    size.add_argument("--mde", type=float, required=True, help="minimum detectable effect")
    size.add_argument("--relative", action="store_true", help="the MDE is relative to the baseline")
    size.add_argument("--std", type=float, help="standard deviation of a continuous metric")
    size.add_argument("--alpha", type=float, default=0.05, help="two-sided significance level (default 0.05)")
    size.add_argument("--power", type=float, default=0.8, help="power (default 0.8)")
    size.add_argument("--arms", type=int, default=2, help="arms including control (default 2)")
    size.add_argument("--daily-traffic", type=float, help="units per day entering the experiment")
    size.set_defaults(handler=_sample_size)


def _add_operator_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], http: httpx.Client | None
) -> None:
    for name, help_text in OPERATOR_COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--url", default="http://127.0.0.1:8000", help="the service (default http://127.0.0.1:8000)")
        sub.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the service")
        sub.add_argument(
            "--api-key",
            default=os.environ.get(API_KEY_VARIABLE),
            help=f"the API key to send (default: ${API_KEY_VARIABLE}); read needs role read, changes need operate",
        )
        if name == "create":
            sub.add_argument("spec", help="JSON file with the experiment (or - for standard input)")
        elif name == "list":
            sub.add_argument("--status", choices=["draft", "active", "paused", "completed"])
        else:
            sub.add_argument("key", help="the experiment's key")
        if name == "complete":
            sub.add_argument("--winner", help="the winning arm (default: none, serve the control)")
        if name == "report":
            sub.add_argument("--segment", help="split every figure by this decision attribute")
            sub.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
        sub.set_defaults(handler=_operator(http))


def _add_key_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser(
        "keys",
        help="create, list or revoke API keys (on the database, no running service needed)",
        description="Manage API keys directly on the database named by BANDIT_DATABASE_URL (default "
        "sqlite:///bandit.db). Roles, each allowing what the one before allows: decide (decisions and rewards), "
        "read (also experiments, reports, audit log, metrics), operate (also create, change, start, pause, "
        "complete, weights, exposure, ramps), admin (also keys).",
    )
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="make a key and print it (its last line; shown this once)")
    create.add_argument("--name", required=True, help="who holds the key (the audit log's actor)")
    create.add_argument("--role", required=True, choices=["decide", "read", "operate", "admin"])
    actions.add_parser("list", help="names, roles, creation and last use (never the keys)")
    revoke = actions.add_parser("revoke", help="revoke a key by name (not the last admin key)")
    revoke.add_argument("name", help="the key's name")
    keys.set_defaults(handler=_keys)


def build_parser(http: httpx.Client | None = None) -> argparse.ArgumentParser:
    """The argument parser, one subparser per command (each sets `handler`)."""
    parser = argparse.ArgumentParser(prog="bandit-service", description="Adaptive multi-armed bandit service.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the HTTP service",
        description="Run the HTTP service. BANDIT_DATABASE_URL selects the database (default sqlite:///bandit.db).",
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn log level",
    )
    serve.add_argument(
        "--no-auth",
        action="store_true",
        help="serve without API keys (same as BANDIT_AUTH=off): anyone who reaches the port may do anything; "
        "for local play only",
    )
    serve.set_defaults(handler=_serve)
    migrate = commands.add_parser(
        "migrate",
        help="upgrade the database schema to the newest revision",
        description="Upgrade the schema of the database named by BANDIT_DATABASE_URL (default sqlite:///bandit.db) "
        "to the newest revision and print the revision before and after. A database made before migrations "
        "existed is recognised and stamped first. Safe to run while replicas start: one migrates, the others "
        "wait, then find nothing to do. `serve` runs the same upgrade at start-up.",
    )
    migrate.set_defaults(handler=_migrate)
    _add_key_commands(commands)
    _add_operator_commands(commands, http)
    _add_offline_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None, *, http: httpx.Client | None = None) -> int:
    """Entry point of the console script (`http` lets tests talk to an in-process app)."""
    args = build_parser(http).parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
