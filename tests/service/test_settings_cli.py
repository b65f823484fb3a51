"""Settings from an environment mapping, the ASGI entry module, the `bandit-service` command."""

from __future__ import annotations

import importlib

import pytest
from sqlalchemy import inspect

from bandit_service import cli
from bandit_service.app import create_app, runtime_of
from bandit_service.settings import Settings
from tests.service.api import ADMIN_KEY, api_client, connect, read_db

HEALTHY = {"status": "ok", "database": "ok", "process": 0, "commits": 0, "writes": 0}


def test_defaults_use_a_sqlite_file_in_the_working_directory():
    settings = Settings.from_env({"HOME": "/root", "PATH": "/bin"})
    assert settings == Settings() and settings.database_url == "sqlite:///bandit.db"
    assert settings.sqlite_synchronous == "FULL"


def test_the_command_lines_own_variables_are_not_service_settings():
    # The README exports BANDIT_URL and BANDIT_API_KEY for the operator commands; `serve` in the
    # same shell refused to start ("BANDIT_URL: unknown setting").
    settings = Settings.from_env({"BANDIT_URL": "http://127.0.0.1:8000", "BANDIT_API_KEY": "bsk_x"})
    assert settings == Settings()


def test_environment_values_are_converted():
    settings = Settings.from_env(
        {"BANDIT_DATABASE_URL": "sqlite:////tmp/x.db", "BANDIT_CACHE_TTL_S": "0.5", "BANDIT_SCHEDULER_ENABLED": "false"}
    )
    assert (settings.database_url, settings.cache_ttl_s, settings.scheduler_enabled) == (
        "sqlite:////tmp/x.db",
        0.5,
        False,
    )


@pytest.mark.parametrize(
    ("env", "name"),
    [
        pytest.param({"BANDIT_DATABSE_URL": "x"}, "BANDIT_DATABSE_URL", id="misspelt-name"),
        pytest.param({"BANDIT_CACHE_TTL_S": "-1"}, "BANDIT_CACHE_TTL_S", id="out-of-range"),
        pytest.param({"BANDIT_SQLITE_SYNCHRONOUS": "OFF"}, "BANDIT_SQLITE_SYNCHRONOUS", id="unsafe-sync"),
    ],
)
def test_bad_environment_values_name_the_variable(env, name):
    with pytest.raises(ValueError, match=name):
        Settings.from_env(env)


def table_names(database_url: str) -> list[str]:
    """The tables in the database (in the PostgreSQL schema of the test)."""
    with connect(database_url) as conn:
        return inspect(conn).get_table_names()


def test_create_app_touches_nothing_until_the_lifespan_starts(database_url):
    app = create_app(Settings(database_url=database_url, scheduler_enabled=False, auth=False))
    assert table_names(database_url) == []
    with api_client(app) as client:
        assert client.get("/healthz").status_code == 200
    assert {"experiments", "decisions", "rewards"} <= set(table_names(database_url))


def test_a_new_sqlite_file_is_created_at_start_in_wal_mode(database_url, sqlite_file):
    app = create_app(Settings(database_url=database_url, scheduler_enabled=False, auth=False))
    assert not sqlite_file.exists()
    with api_client(app) as client:
        assert client.get("/healthz").status_code == 200
        assert read_db(database_url, "PRAGMA journal_mode") == [("wal",)]
    assert sqlite_file.exists()


def test_the_asgi_module_reads_the_environment(database_url, monkeypatch):
    monkeypatch.setenv("BANDIT_DATABASE_URL", database_url)
    monkeypatch.setenv("BANDIT_SCHEDULER_ENABLED", "false")
    monkeypatch.setenv("BANDIT_ADMIN_KEY", ADMIN_KEY)
    import bandit_service.asgi as asgi

    module = importlib.reload(asgi)
    assert runtime_of(module.app).settings.database_url == database_url
    with api_client(module.app) as client:
        assert client.get("/healthz").json() | {"process": 0, "commits": 0, "writes": 0} == HEALTHY


def test_serve_runs_uvicorn_on_the_asgi_app(monkeypatch):
    calls = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: calls.append((app, kwargs)))
    assert cli.main(["serve", "--port", "9001", "--workers", "2"]) == 0
    app, kwargs = calls[0]
    assert app == "bandit_service.asgi:app"
    assert (kwargs["host"], kwargs["port"], kwargs["workers"]) == ("127.0.0.1", 9001, 2)


def test_the_command_without_a_subcommand_shows_the_commands(capsys):
    assert cli.main([]) == 2
    assert "serve" in capsys.readouterr().err


def test_parse_reads_a_commands_options_without_running_it():
    assert cli.parse(["serve", "--host", "0.0.0.0", "--port", "8080"]) == (
        "serve",
        {"host": "0.0.0.0", "port": 8080, "workers": 1, "log_level": "info", "no_auth": False},
    )


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        pytest.param(
            "BANDIT_AUTH",
            "maybe",
            "BANDIT_AUTH: Expected `bool`, got `str`; allowed: true or false (or on/off, yes/no)",
            id="bool",
        ),
        pytest.param(
            "BANDIT_CACHE_TTL_S",
            "soon",
            "BANDIT_CACHE_TTL_S: Expected `float`, got `str`; allowed: a number >= 0 and <= 3600",
            id="number",
        ),
        pytest.param(
            "BANDIT_LOG_FORMAT",
            "xml",
            "BANDIT_LOG_FORMAT: Invalid enum value 'xml'; allowed: one of json, text",
            id="choice",
        ),
        pytest.param(
            "BANDIT_MAX_CONNECTIONS",
            "-1",
            "BANDIT_MAX_CONNECTIONS: Expected `int` >= 0; allowed: a whole number >= 0 and <= 1000000",
            id="range",
        ),
        pytest.param(
            "BANDIT_DATABSE_URL",
            "x",
            "BANDIT_DATABSE_URL: unknown setting; did you mean BANDIT_DATABASE_URL?",
            id="misspelt",
        ),
        pytest.param(
            "BANDIT_WEBHOOK_URL",
            "https://hooks.example/x",
            "BANDIT_WEBHOOK_URL is set but BANDIT_WEBHOOK_SECRET is not",
            id="rule",
        ),
        pytest.param(
            "BANDIT_DATABASE_URL",
            "mysql+nosuchdriver://u:secret@h/db",
            "BANDIT_DATABASE_URL: unknown database scheme; allowed: sqlite:///PATH",
            id="database-scheme",
        ),
        pytest.param(
            "BANDIT_DATABASE_URL",
            "sqlite:////no/such/folder/x.db",
            "BANDIT_DATABASE_URL: the SQLite file's folder /no/such/folder does not exist",
            id="database-folder",
        ),
        pytest.param(
            "BANDIT_ADMIN_KEY",
            "short-secret",
            "BANDIT_ADMIN_KEY: Expected `str` of length >= 32; allowed: text of 32-200 characters",
            id="secret-not-echoed",
        ),
    ],
)
def test_a_bad_setting_at_serve_is_one_line_naming_the_variable_and_what_is_allowed(
    monkeypatch, capsys, variable, value, expected
):
    monkeypatch.setenv(variable, value)
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: pytest.fail("uvicorn must not start"))
    assert cli.main(["serve"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"bandit-service serve: {expected}"), captured.err
    assert "secret" not in lines[0] or variable == "BANDIT_WEBHOOK_URL"  # values are never echoed
    assert captured.out == ""


def test_a_bad_setting_at_migrate_is_one_line_too(monkeypatch, capsys):
    monkeypatch.setenv("BANDIT_SQLITE_SYNCHRONOUS", "OFF")
    assert cli.main(["migrate"]) == 2
    assert capsys.readouterr().err == (
        "bandit-service migrate: BANDIT_SQLITE_SYNCHRONOUS: Invalid enum value 'OFF'; allowed: one of FULL, NORMAL\n"
    )
