"""`bandit-service keys create|list|revoke` on the database, `serve --no-auth`, and `--api-key`."""

from __future__ import annotations

import os

import pytest

from bandit_service import cli
from tests.service.api import api_client


def test_keys_create_prints_the_key_alone_on_its_last_line_and_it_works(make_app, database_url, monkeypatch, capsys):
    monkeypatch.setenv("BANDIT_DATABASE_URL", database_url)
    assert cli.main(["keys", "create", "--name", "analyst", "--role", "read"]) == 0
    out = capsys.readouterr().out
    key = out.splitlines()[-1]
    assert key.startswith("bsk_") and " " not in key and "not be shown again" in out
    with api_client(make_app(), key=key) as client:
        assert client.get("/v1/experiments").status_code == 200
        assert client.post("/v1/experiments", json={}).status_code == 403
    assert cli.main(["keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert "analyst\tread" in listed and key not in listed
    assert cli.main(["keys", "revoke", "analyst"]) == 0
    assert "revoked key 'analyst'" in capsys.readouterr().out
    with api_client(make_app(), key=key) as client:
        assert client.get("/v1/experiments").status_code == 401


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["keys", "create", "--name", "two words", "--role", "read"], "--name 'two words'", id="bad-name"),
        pytest.param(["keys", "revoke", "nobody"], "no key named 'nobody'", id="unknown"),
    ],
)
def test_keys_commands_refuse_bad_input_with_exit_2(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.setenv("BANDIT_DATABASE_URL", f"sqlite:///{tmp_path / 'keys.db'}")
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_keys_create_refuses_an_unknown_role(capsys):
    assert cli.main(["keys", "create", "--name", "x", "--role", "owner"]) == 2
    assert "'owner' is not one of 'decide', 'read', 'operate', 'admin'" in capsys.readouterr().err


def test_serve_no_auth_turns_auth_off_for_the_workers(monkeypatch):
    monkeypatch.delenv("BANDIT_AUTH", raising=False)
    seen = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: seen.append(os.environ.get("BANDIT_AUTH")))
    assert cli.main(["serve", "--no-auth"]) == 0
    assert seen == ["off"]


def test_operator_commands_send_the_api_key(client, monkeypatch, capsys):
    key = client.post("/v1/keys", json={"name": "viewer", "role": "read"}).json()["key"]
    client.headers.pop("Authorization")
    assert cli.main(["list"], http=client) == 1
    assert "401: an API key is required" in capsys.readouterr().err
    assert cli.main(["list", "--api-key", key], http=client) == 0
    assert cli.main(["pause", "exp", "--api-key", key], http=client) == 1
    assert "403" in capsys.readouterr().err
