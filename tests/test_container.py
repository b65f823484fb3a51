"""The container files against the app: what Dockerfile and compose.yaml name must exist in the code.

Builds nothing and pulls nothing. The files are parsed (compose.yaml with PyYAML, the Dockerfile's
instructions by a small reader) and every setting, command, database URL, port and health path in
them is checked with the app's own parts: `Settings.from_env`, the CLI parser, `open_database` and
the route table of `create_app`. One test runs the image's HEALTHCHECK command against a real server.
"""

from __future__ import annotations

import json
import re
import shlex
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping
from importlib.metadata import packages_distributions
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy import MetaData, Table
from sqlalchemy.engine import make_url

from bandit_service.app import create_app
from bandit_service.cli import parse
from bandit_service.settings import Settings
from bandit_service.storage.database import open_database
from bandit_service.storage.memory import MemoryStorage
from tests.multiprocess.replicas import Replicas

ROOT = Path(__file__).resolve().parents[1]
# Stands in for a required `${VAR}`: a valid admin key (>= 32 URL-safe characters) and a URL-safe password.
PLACEHOLDER = "p" * 40
_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?::(?P<op>[-?])(?P<arg>[^}]*))?\}")
_DEFAULT_POSTGRES_PORT = 5432


def _interpolate(value: str) -> str:
    """Compose's `${VAR:-default}` as its default; `${VAR}` and `${VAR:?message}` as the placeholder."""
    result = _VARIABLE.sub(lambda m: m["arg"] if m["op"] == "-" else PLACEHOLDER, value)
    assert "$" not in result, f"an interpolation this test does not understand: {value!r}"
    return result


def _instructions(text: str) -> list[tuple[str, str]]:
    """A Dockerfile's (INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        # Docker drops comment lines even inside a continued instruction.
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        result.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return result


def _stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage, in order (each stage starts at a FROM)."""
    stages: list[list[tuple[str, str]]] = []
    for keyword, arguments in instructions:
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, arguments))
    return stages


def _only(stage: list[tuple[str, str]], keyword: str) -> str:
    """The arguments of the stage's one `keyword` instruction."""
    found = [arguments for k, arguments in stage if k == keyword]
    assert len(found) == 1, f"expected one {keyword} in the final stage, found {len(found)}"
    return found[0]


def _exec_form(arguments: str, what: str) -> list[str]:
    """A JSON-array (exec form) command: the process gets SIGTERM itself, with no shell in between."""
    try:
        argv = json.loads(arguments)
    except json.JSONDecodeError:
        pytest.fail(f"{what} is not in exec form (a JSON array): {arguments}")
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), what
    return argv


def _env(stage: list[tuple[str, str]]) -> dict[str, str]:
    """The variables the stage's ENV instructions set (`ENV NAME=value ...` form)."""
    env: dict[str, str] = {}
    for keyword, arguments in stage:
        if keyword == "ENV":
            for pair in shlex.split(arguments):
                name, sep, value = pair.partition("=")
                assert sep, f"ENV {arguments}: use the NAME=value form"
                env[name] = value
    return env


@pytest.fixture(scope="module")
def final_stage() -> list[tuple[str, str]]:
    """The instructions of the Dockerfile's last stage: the image that runs."""
    return _stages(_instructions((ROOT / "Dockerfile").read_text()))[-1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """compose.yaml as data."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def _app_service(compose: Mapping[str, Any]) -> dict[str, Any]:
    """The compose service built from this repository's Dockerfile."""
    built = [s for s in compose["services"].values() if s.get("build") in (".", {"context": "."})]
    assert len(built) == 1, "compose.yaml should build exactly one service from this directory"
    service: dict[str, Any] = built[0]
    return service


def _app_environment(compose: Mapping[str, Any]) -> dict[str, str]:
    """The app service's environment, interpolated."""
    environment = _app_service(compose)["environment"]
    assert isinstance(environment, dict), "write the service's environment as a mapping"
    return {name: _interpolate(str(value)) for name, value in environment.items()}


def _serve_args(argv: list[str]) -> Any:
    """`argv` parsed by the real CLI parser; it must run the console script's `serve`."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert argv[0] in scripts, f"{argv[0]!r} is not a console script of the package ({sorted(scripts)})"
    command, options = parse(argv[1:])
    assert command == "serve"
    return SimpleNamespace(**options)


def _image_requirements() -> tuple[set[str], set[str]]:
    """The extras the build stage installs, and the distributions they add to the image."""
    stages = _stages(_instructions((ROOT / "Dockerfile").read_text()))
    installs = [a for stage in stages[:-1] for k, a in stage if k == "RUN" and "pip install" in a]
    assert len(installs) == 1, "expected one `pip install` of the package in the build stage"
    match = re.search(r"\.\[([\w,-]+)\]", installs[0])
    extras = set(match[1].split(",")) if match else set()
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0] for e in extras for requirement in optional[e]}
    return extras, {name.lower().replace("_", "-") for name in names}


def _serve_commands(compose: Mapping[str, Any], final_stage: list[tuple[str, str]]) -> dict[str, list[str]]:
    """The argv that starts the service, by the file that says it."""
    return {
        "Dockerfile": _exec_form(_only(final_stage, "CMD"), "CMD"),
        "compose.yaml": _app_service(compose)["command"],
    }


def _healthcheck(final_stage: list[tuple[str, str]]) -> list[str]:
    """The argv of the image's HEALTHCHECK."""
    options, sep, command = _only(final_stage, "HEALTHCHECK").partition("CMD ")
    assert sep and "NONE" not in options.upper(), "the image needs a HEALTHCHECK CMD"
    return _exec_form(command, "HEALTHCHECK CMD")


def _healthcheck_url(argv: list[str]) -> str:
    """The one URL the healthcheck command requests."""
    urls = re.findall(r"https?://[^'\"\s]+", " ".join(argv))
    assert len(urls) == 1, f"expected one URL in the healthcheck, found {urls}"
    url: str = urls[0]
    return url


def test_compose_environment_names_only_settings_the_app_knows(compose: dict[str, Any]) -> None:
    """Every BANDIT_* variable of the service is a setting, and its value is a valid one."""
    environment = _app_environment(compose)
    assert all(name.startswith("BANDIT_") for name in environment), sorted(environment)
    settings = Settings.from_env(environment)  # raises on an unknown name or an invalid value
    assert settings.database_url == environment["BANDIT_DATABASE_URL"]
    assert settings.admin_key == PLACEHOLDER


def test_compose_refuses_to_start_without_an_admin_key(compose: dict[str, Any]) -> None:
    """BANDIT_ADMIN_KEY is `${BANDIT_ADMIN_KEY:?message}`: compose stops with the message when it is unset."""
    value = _app_service(compose)["environment"]["BANDIT_ADMIN_KEY"]
    match = _VARIABLE.fullmatch(value)
    assert match and match["name"] == "BANDIT_ADMIN_KEY" and match["op"] == "?", value
    assert "32" in match["arg"], "the message should say how long a key must be"


def test_compose_database_url_points_at_the_compose_database(compose: dict[str, Any]) -> None:
    """The URL's host, port, user, password and database are those of the PostgreSQL service."""
    url = make_url(_app_environment(compose)["BANDIT_DATABASE_URL"])
    assert url.host is not None
    database = compose["services"][url.host]
    assert database["image"].startswith("postgres:")
    env = {name: _interpolate(str(value)) for name, value in database["environment"].items()}
    assert (url.port or _DEFAULT_POSTGRES_PORT) == _DEFAULT_POSTGRES_PORT
    assert (url.username, url.password, url.database) == (
        env["POSTGRES_USER"],
        env["POSTGRES_PASSWORD"],
        env["POSTGRES_DB"],
    )
    assert "ports" not in database, "the database should be reachable by the service only"


def test_compose_starts_the_service_once_the_database_accepts_tcp(compose: dict[str, Any]) -> None:
    """`depends_on: service_healthy` on a pg_isready probe over TCP, and the data in a named volume."""
    url = make_url(_app_environment(compose)["BANDIT_DATABASE_URL"])
    assert _app_service(compose)["depends_on"][url.host] == {"condition": "service_healthy"}
    database = compose["services"][url.host]
    probe = database["healthcheck"]["test"]
    assert probe[0] == "CMD" and probe[1] == "pg_isready"
    # Without -h the probe uses the Unix socket, which the image's init-time server answers early.
    assert probe[probe.index("-h") + 1] == "127.0.0.1"
    volume, _, mount = database["volumes"][0].partition(":")
    assert volume in compose["volumes"] and mount == "/var/lib/postgresql/data"


@pytest.mark.parametrize("source", ["Dockerfile", "compose.yaml"])
def test_database_urls_use_a_dialect_and_driver_the_image_has(
    source: str, compose: dict[str, Any], final_stage: list[tuple[str, str]]
) -> None:
    """The app accepts the URL's dialect, and its DBAPI driver is stdlib or installed into the image."""
    env = _env(final_stage) if source == "Dockerfile" else _app_environment(compose)
    db = open_database(Settings(database_url=env["BANDIT_DATABASE_URL"]))  # imports the driver, connects to nothing
    try:
        db.upsert(Table("probe", MetaData()))  # the app's own dialect gate: ValueError for any other
        module = db.write.dialect.loaded_dbapi.__name__.partition(".")[0]
    finally:
        db.dispose()
    if module not in sys.stdlib_module_names:
        _, image = _image_requirements()
        provided_by = {d.lower() for d in packages_distributions().get(module, [])}
        assert provided_by & image, f"driver {module} ({provided_by}) is not in the image's extras ({image})"


def test_image_installs_no_test_or_benchmark_extras(final_stage: list[tuple[str, str]]) -> None:
    """The build installs the package with runtime extras only."""
    extras, _ = _image_requirements()
    assert not extras & {"test", "bench"}, extras


def test_dockerfile_environment_names_only_settings_the_app_knows(final_stage: list[tuple[str, str]]) -> None:
    """The image's BANDIT_* defaults are settings, and the SQLite file lives in the declared volume."""
    env = {name: value for name, value in _env(final_stage).items() if name.startswith("BANDIT_")}
    settings = Settings.from_env(env)
    url = make_url(settings.database_url)
    assert url.get_backend_name() == "sqlite" and url.database is not None
    volumes = _exec_form(_only(final_stage, "VOLUME"), "VOLUME")
    assert str(PurePosixPath(url.database).parent) in volumes


@pytest.mark.parametrize("source", ["Dockerfile", "compose.yaml"])
def test_service_command_parses_with_the_cli(
    source: str, compose: dict[str, Any], final_stage: list[tuple[str, str]]
) -> None:
    """CMD and the compose command are `bandit-service serve` listening on every interface."""
    args = _serve_args(_serve_commands(compose, final_stage)[source])
    # 127.0.0.1 inside a container is unreachable through a published port.
    assert args.host in ("0.0.0.0", "::"), args.host


def test_published_ports_are_the_served_port(compose: dict[str, Any], final_stage: list[tuple[str, str]]) -> None:
    """EXPOSE names CMD's --port; compose publishes its command's --port."""
    commands = _serve_commands(compose, final_stage)
    exposed = {int(p.partition("/")[0]) for p in _only(final_stage, "EXPOSE").split()}
    assert _serve_args(commands["Dockerfile"]).port in exposed
    published = {int(str(p).rpartition(":")[2].partition("/")[0]) for p in _app_service(compose)["ports"]}
    assert published == {_serve_args(commands["compose.yaml"]).port}


def test_dockerfile_runs_as_a_non_root_user(final_stage: list[tuple[str, str]]) -> None:
    """The last USER before CMD is neither root nor uid 0."""
    keywords = [k for k, _ in final_stage]
    assert "USER" in keywords and keywords.index("USER") < keywords.index("CMD")
    user = _only(final_stage, "USER").partition(":")[0]
    assert user not in ("root", "0"), user


def test_healthcheck_asks_a_public_get_route_on_the_served_port(
    compose: dict[str, Any], final_stage: list[tuple[str, str]], tmp_path: Path
) -> None:
    """The HEALTHCHECK URL is this container's served port and a GET route anyone may call."""
    url = urlsplit(_healthcheck_url(_healthcheck(final_stage)))
    assert url.hostname in ("127.0.0.1", "localhost")
    assert url.port == _serve_args(_serve_commands(compose, final_stage)["Dockerfile"]).port
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'bandit.db'}"), storage=MemoryStorage())
    roles = {
        handler.opt.get("role")
        for route in app.routes
        if route.path == url.path
        for handler in getattr(route, "route_handlers", [])
        if "GET" in handler.http_methods
    }
    paths = sorted(route.path for route in app.routes)
    assert roles == {"public"}, f"GET {url.path}: roles {roles}; the app's routes: {paths}"
    # compose inherits the image's healthcheck rather than keeping a second copy to drift.
    assert "healthcheck" not in _app_service(compose)


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a healthcheck command as Docker does: only its exit code counts."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def test_healthcheck_command_tells_ready_from_not_ready_and_stopped(
    final_stage: list[tuple[str, str]], tmp_path: Path
) -> None:
    """The HEALTHCHECK argv, aimed at a real `bandit-service serve`: 1 while another process holds the
    database's write lock (503), 0 once it lets go, 1 with nothing listening."""
    argv = _healthcheck(final_stage)
    assert argv[0] == "python"
    original = urlsplit(_healthcheck_url(argv))
    path = tmp_path / "bandit.db"
    settings = {"BANDIT_ADMIN_KEY": PLACEHOLDER, "BANDIT_READY_TIMEOUT_MS": "300"}
    with Replicas(f"sqlite:///{path}", 1, settings, tmp_path / "logs") as replicas:
        aimed = [sys.executable] + [a.replace(original.netloc, f"127.0.0.1:{replicas[0].port}") for a in argv[1:]]
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            # Docker reads 1 as unhealthy (2 is reserved): a 503 must not look healthy.
            locked = _run(aimed)
            assert locked.returncode == 1 and "503" in locked.stderr, f"{locked.stderr}\n{replicas.logs()}"
        finally:
            holder.close()  # rolls back and lets go of the lock
        # Readiness comes back once the waiting probe commits (or the next one, a second later).
        deadline = time.monotonic() + 30
        while (ready := _run(aimed)).returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ready.returncode == 0, f"{ready.stderr}\n{replicas.logs()}"
    stopped = _run(aimed)
    assert stopped.returncode == 1, stopped.stderr
