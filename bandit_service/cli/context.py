"""What the commands of `bandit-service` share: the HTTP seam, the remote options, one-line errors, the console."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn, ParamSpec, TypeVar

import click
import httpx
from rich.console import Console

from bandit_service.client.manage import BanditError, Management, SpecError
from bandit_service.settings import API_KEY_VARIABLE, URL_VARIABLE

__all__ = [
    "DEFAULT_URL",
    "INPUT_ERROR",
    "SERVICE_ERROR",
    "URL_VARIABLE",
    "CliError",
    "CliState",
    "echo_json",
    "fail",
    "make_console",
    "remote",
]

DEFAULT_URL = "http://127.0.0.1:8000"
INPUT_ERROR = 2
"""Exit status of a usage or input error: a bad option, a missing or unreadable file."""
SERVICE_ERROR = 1
"""Exit status of a refusal by the service, or of a service that cannot be reached."""
PIPE_WIDTH = 120
"""Console width when the output is not a terminal (a file, a pipe, a test) and COLUMNS is not set."""

P = ParamSpec("P")
R = TypeVar("R")


class CliError(click.ClickException):
    """A failed command: one line for stderr that names the command, and the exit status."""

    def __init__(self, message: str, exit_code: int = SERVICE_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it on the class; each error has its own


def fail(problem: object, exit_code: int) -> NoReturn:
    """Stop the current command with one line naming it (`bandit-service create: ...`)."""
    ctx = click.get_current_context(silent=True)
    raise CliError(f"{ctx.command_path if ctx else 'bandit-service'}: {problem}", exit_code)


def make_console(*, stderr: bool = False) -> Console:
    """A rich console: colours only on a terminal and without NO_COLOR (rich decides), wide when piped."""
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPE_WIDTH
    return console


def echo_json(value: Any) -> None:
    """Print JSON for scripts: indented, no colours, nothing else on stdout."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


@dataclass
class CliState:
    """The click context's object: an injected `httpx.Client` (tests: the app in-process), else one per command."""

    http: httpx.Client | None = None

    @contextmanager
    def management(self, url: str, api_key: str | None, timeout: float) -> Iterator[Management]:
        """Management over the injected client (sending `api_key` for this command only) or a new one."""
        if self.http is None:
            headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
            try:
                http = httpx.Client(base_url=url, timeout=timeout, headers=headers)
            except httpx.InvalidURL as exc:
                fail(f"--url {url!r}: {exc}", INPUT_ERROR)
            with http:
                yield Management(http)
            return
        before = self.http.headers.get("Authorization")
        if api_key:
            self.http.headers["Authorization"] = f"Bearer {api_key}"
        try:
            yield Management(self.http)
        finally:
            if before is None:
                self.http.headers.pop("Authorization", None)
            else:
                self.http.headers["Authorization"] = before


def remote(command: Callable[P, R]) -> Callable[..., R]:
    """Give a command --url, --api-key and --timeout and call it with a `Management` as its first argument.

    A BanditError becomes one line naming the command: exit 2 for a spec that cannot be read, 1 for
    a refusal by the service or a service that cannot be reached.
    """

    @click.option(
        "--url",
        envvar=URL_VARIABLE,
        default=DEFAULT_URL,
        show_default=True,
        show_envvar=True,
        help="The service's address.",
    )
    @click.option(
        "--api-key",
        envvar=API_KEY_VARIABLE,
        show_envvar=True,
        help="The API key to send; reading needs role read, changes need operate, keys need admin.",
    )
    @click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=30.0,
        show_default=True,
        help="Seconds to wait for the service.",
    )
    @functools.wraps(command)
    def run(url: str, api_key: str | None, timeout: float, **kwargs: Any) -> R:
        state = click.get_current_context().find_object(CliState) or CliState()
        with state.management(url, api_key, timeout) as manage:
            try:
                return command(manage, **kwargs)  # type: ignore[arg-type]
            except SpecError as exc:
                fail(exc, INPUT_ERROR)
            except BanditError as exc:
                fail(exc, SERVICE_ERROR)

    return run
