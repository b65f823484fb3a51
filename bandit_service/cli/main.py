"""The `bandit-service` command (click): `serve`, `migrate`, `keys`, operator commands over HTTP, offline ones, `demo`.

Every failure is one line on stderr naming the command (and the field or variable at fault):
exit 2 for usage and input errors (an option, a file, a setting), 1 for the service refusing or
being out of reach. Operator commands talk to --url (BANDIT_URL) with --api-key (BANDIT_API_KEY).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
import httpx

from bandit_service.cli.admin import features, keys
from bandit_service.cli.context import INPUT_ERROR, SERVICE_ERROR, CliError, CliState, fail, make_console
from bandit_service.cli.experiments import COMMANDS
from bandit_service.cli.offline import analyze, sample_size
from bandit_service.settings import Settings

__all__ = ["cli", "main", "parse"]

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
DATABASE_URLS = "sqlite:///PATH (a file) or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE"


def _one_line(exc: click.ClickException) -> str:
    """The error as one line naming the command: `bandit-service list: Invalid value for '--status': ...`."""
    if isinstance(exc, CliError):
        message = exc.message
    elif isinstance(exc, click.UsageError) and exc.ctx is not None:
        path = exc.ctx.command_path
        message = f"{path}: {exc.format_message()} (see '{path} --help')"
    else:
        message = f"bandit-service: {exc.format_message()}"
    return " ".join(message.split())


class _Commands(click.Group):
    """The command group: one-line errors and exit statuses, commands listed in the order they were added."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run a command; a failure prints one line. Returns the exit status (or exits, standalone)."""
        if extra.get("obj") is None:
            extra["obj"] = CliState()
        try:
            result = super().main(args, prog_name, standalone_mode=False, **extra)
            code = result if isinstance(result, int) else 0
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()
            code = exc.exit_code
        except click.ClickException as exc:
            click.echo(_one_line(exc), err=True)
            code = exc.exit_code
        except click.Abort:
            click.echo("bandit-service: aborted", err=True)
            code = SERVICE_ERROR
        if standalone_mode:
            sys.exit(code)
        return code


@click.group(cls=_Commands, name="bandit-service", context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bandit-service", prog_name="bandit-service", message="%(prog)s %(version)s")
def cli() -> None:
    """Adaptive multi-armed bandit service: serve it, run experiments, read reports."""


def _settings() -> Settings:
    """The service's settings from BANDIT_* variables; a bad one is one line naming it and what is allowed."""
    try:
        settings = Settings.from_env(os.environ)
    except ValueError as exc:
        fail(exc, INPUT_ERROR)
    _check_database_url(settings.database_url)
    return settings


def _check_database_url(url: str) -> None:
    """Refuse a database URL SQLAlchemy cannot open, before a worker starts (its traceback is long)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    # The URL is never echoed: it may hold a password.
    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()
    except ArgumentError as exc:
        reason = "unknown database scheme" if isinstance(exc, NoSuchModuleError) else "not a database URL"
        fail(f"BANDIT_DATABASE_URL: {reason}; allowed: {DATABASE_URLS}", INPUT_ERROR)
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        hint = " (pip install 'bandit-service[postgres]')" if parsed.get_backend_name() == "postgresql" else ""
        fail(f"BANDIT_DATABASE_URL: its driver is not installed: {exc}{hint}; allowed: {DATABASE_URLS}", INPUT_ERROR)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(str(parsed.database)).parent
        if not folder.is_dir():
            fail(f"BANDIT_DATABASE_URL: the SQLite file's folder {folder} does not exist", INPUT_ERROR)


@cli.command(
    help="Run the HTTP service. BANDIT_* variables configure it; BANDIT_DATABASE_URL selects the database "
    "(default sqlite:///bandit.db)."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65_535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes.")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True, help="Uvicorn's.")
@click.option(
    "--no-auth",
    is_flag=True,
    help="Serve without API keys (same as BANDIT_AUTH=off): anyone who reaches the port may do anything; "
    "for local play only.",
)
def serve(host: str, port: int, workers: int, log_level: str, no_auth: bool) -> None:
    """Run the HTTP service."""
    import uvicorn  # imported here so that other commands start fast

    from bandit_service.server_limits import raise_open_file_limit, uvicorn_limits
    from bandit_service.serving import serving_observability

    if no_auth:  # the workers read their settings from the environment (asgi.py)
        os.environ["BANDIT_AUTH"] = "off"
    settings = _settings()
    try:
        limits = uvicorn_limits(settings, raise_open_file_limit())
    except ValueError as exc:
        fail(exc, INPUT_ERROR)
    with serving_observability(settings, workers, log_level, os.environ) as observed:
        uvicorn.run(
            "bandit_service.asgi:app",
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            proxy_headers=False,
            **limits,  # read deadline, connection cap (server_limits.py)
            **observed,  # JSON logs, the metrics directory of several workers (serving.py)
        )


@cli.command(
    help="Upgrade the schema of the database named by BANDIT_DATABASE_URL (default sqlite:///bandit.db) to the "
    "newest revision and print the revision before and after. A database made before migrations existed is "
    "recognised and stamped first. Safe to run while replicas start: one migrates, the others wait, then find "
    "nothing to do. `serve` runs the same upgrade at start-up."
)
def migrate() -> None:
    """Upgrade the database schema to the newest revision."""
    # Imported here, like uvicorn in `serve`, so that other commands start fast.
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from bandit_service.storage.database import open_database
    from bandit_service.storage.schema import current_revision, upgrade_schema

    settings = _settings()
    try:
        db = open_database(settings)
        try:
            before = current_revision(db)
            upgrade_schema(db)
            after = current_revision(db)
        finally:
            db.dispose()
    except (CommandError, SQLAlchemyError) as exc:
        fail(exc, SERVICE_ERROR)
    click.echo(f"schema revision: {before or 'none'} -> {after}")


@cli.command()
@click.option("--duration", type=click.FloatRange(min=1), default=60.0, show_default=True, help="Seconds of traffic.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("bandit-demo"),
    show_default=True,
    help="Folder for the PNG of weights over time and posteriors.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the simulated users.")
def demo(duration: float, out_dir: Path, seed: int) -> None:
    """Watch the bandit learn: a service on a temporary database, simulated users, a report and a picture."""
    from bandit_service.demo import DemoError, run_demo  # numpy, uvicorn: imported only by the demo

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"--out {out_dir}: {exc.strerror or exc}", INPUT_ERROR)
    try:
        run_demo(duration_s=duration, out_dir=out_dir, seed=seed, console=make_console())
    except DemoError as exc:
        fail(exc, SERVICE_ERROR)


cli.add_command(keys)
for command in COMMANDS:
    cli.add_command(command)
cli.add_command(features)
cli.add_command(analyze)
cli.add_command(sample_size)


def parse(argv: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The command `argv` names and its parameters, without running it (tests read `serve`'s options)."""
    name, *rest = argv
    command = cli.commands[name]
    with command.make_context(name, list(rest)) as ctx:
        return name, dict(ctx.params)


def main(argv: Sequence[str] | None = None, *, http: httpx.Client | None = None) -> int:
    """Entry point of the console script; `http` lets tests talk to an in-process app. Returns the exit status."""
    code: int = cli.main(args=argv, prog_name="bandit-service", standalone_mode=False, obj=CliState(http=http))
    return code
