"""API keys and roles: every endpoint x every role, the key lifecycle, the first start, auth off."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from bandit_service.app import create_app
from bandit_service.clock import FakeClock
from bandit_service.settings import Settings
from bandit_service.storage.memory import MemoryStorage
from tests.service.api import ADMIN_KEY, api_client, experiment_body, read_db, started

ROLES = ("decide", "read", "operate", "admin")
EXP = "/v1/experiments/{key}"

# Every endpoint with the smallest role that may call it; None: public (no key needed).
# The table is the contract; `test_the_table_covers_every_route` fails when an endpoint is missing.
ENDPOINTS: list[tuple[str, str, str | None]] = [
    ("GET", "/healthz", None),
    ("GET", "/schema/openapi.json", None),
    ("POST", "/v1/decisions", "decide"),
    ("POST", "/v1/rewards", "decide"),
    ("POST", "/v1/rewards/batch", "decide"),
    ("GET", "/v1/definitions", "decide"),
    ("POST", "/v1/decisions/log", "decide"),
    ("GET", "/v1/experiments", "read"),
    ("GET", EXP, "read"),
    ("GET", EXP + "/weights", "read"),
    ("GET", EXP + "/report", "read"),
    ("GET", EXP + "/timeseries", "read"),
    ("GET", EXP + "/ramp", "read"),
    ("GET", EXP + "/completion", "read"),
    ("GET", EXP + "/events", "read"),
    ("GET", EXP + "/webhooks", "read"),
    ("GET", "/v1/webhooks", "read"),
    ("GET", "/v1/features", "read"),
    ("GET", "/v1/features/{key}", "read"),
    ("POST", "/v1/experiments", "operate"),
    ("PATCH", EXP, "operate"),
    ("POST", EXP + "/start", "operate"),
    ("POST", EXP + "/pause", "operate"),
    ("POST", EXP + "/complete", "operate"),
    ("POST", EXP + "/reweight", "operate"),
    ("PUT", EXP + "/weights", "operate"),
    ("PUT", EXP + "/exposure", "operate"),
    ("PUT", EXP + "/ramp", "operate"),
    ("DELETE", EXP + "/ramp", "operate"),
    ("DELETE", EXP + "/completion", "operate"),
    ("PUT", "/v1/features/{key}", "operate"),
    ("DELETE", "/v1/features/{key}", "operate"),
    ("GET", "/v1/keys", "admin"),
    ("POST", "/v1/keys", "admin"),
    ("DELETE", "/v1/keys/{name}", "admin"),
]
# Endpoints other modules add whose role is fixed by their own issue item (health, metrics, docs).
EXTRA_ROLES = {"/livez": None, "/readyz": None, "/metrics": "read"}


def _litestar_path(path: str) -> str:
    return re.sub(r"\{(\w+)\}", r"{\1:str}", path)


def test_the_table_covers_every_route() -> None:
    app = create_app(Settings(admin_key=ADMIN_KEY), storage=MemoryStorage())
    declared = {(m, _litestar_path(p)) for m, p, _ in ENDPOINTS}
    declared |= {(m, p) for p in EXTRA_ROLES for m in ("GET",)}
    routes = {
        (method, route.path)
        for route in app.routes
        for method in getattr(route, "methods", ())
        if method not in ("HEAD", "OPTIONS") and not route.path.startswith("/schema")
    }
    assert routes - declared == set(), "endpoints without a row in ENDPOINTS"


def test_every_handler_declares_its_role() -> None:
    app = create_app(Settings(admin_key=ADMIN_KEY), storage=MemoryStorage())
    table = {(m, _litestar_path(p)): role for m, p, role in ENDPOINTS}
    for route in app.routes:
        if route.path.startswith("/schema"):
            continue
        for handler in getattr(route, "route_handlers", ()):
            if handler.http_methods == {"OPTIONS"}:
                continue  # Litestar's own OPTIONS answer; unmarked, so it needs admin (fail closed)
            declared = handler.opt.get("role")
            assert declared is not None, f"{route.path} declares no role"
            for method in handler.http_methods:
                expected = table.get((method, route.path), EXTRA_ROLES.get(route.path, "?"))
                assert declared == (expected or "public"), (method, route.path)


@pytest.fixture
def keyed(client: TestClient[Litestar]) -> dict[str, str]:
    """One key per role, and an active experiment `exp`."""
    started(client)
    keys = {}
    for role in ROLES:
        made = client.post("/v1/keys", json={"name": f"{role}-key", "role": role})
        assert made.status_code == 201, made.text
        keys[role] = made.json()["key"]
    return keys


def _call(client: TestClient[Litestar], method: str, path: str, key: str | None) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {"Authorization": ""}
    body = None if method in ("GET", "DELETE") else {}
    return client.request(method, path, headers=headers, json=body)


CALLERS = ("no key", "unknown key", *ROLES)


@pytest.mark.parametrize(("method", "path", "needed"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_every_endpoint_answers_every_role(client, keyed, method, path, needed) -> None:
    """401 without a valid key, 403 below the endpoint's role, otherwise the handler's own answer.

    A refusal is the same for an experiment that exists and one that does not, so it reveals nothing.
    """
    for caller in CALLERS:
        key = {"no key": None, "unknown key": "bsk_" + "x" * 43}.get(caller, keyed.get(caller))
        answers = [
            _call(client, method, path.format(key=experiment, name=name), key)
            for experiment, name in (("exp", "read-key"), ("no-such-experiment", "no-such-key"))
        ]
        statuses = {a.status_code for a in answers}
        if needed is None:
            assert statuses == {200}, (caller, [a.text for a in answers])
        elif caller in ("no key", "unknown key"):
            assert statuses == {401}, (caller, [a.text for a in answers])
            assert answers[0].json() == answers[1].json()
            assert answers[0].headers["www-authenticate"].startswith("Bearer")
        elif ROLES.index(caller) < ROLES.index(needed):
            assert statuses == {403}, (caller, [a.text for a in answers])
            assert answers[0].json() == answers[1].json()
            assert needed in answers[0].json()["detail"]
        else:
            assert statuses.isdisjoint({401, 403, 500}), (caller, [a.text for a in answers])


def test_a_cross_site_text_plain_pause_without_a_key_is_refused_and_changes_nothing(client) -> None:
    """The defect: a browser's cross-site POST .../pause with Content-Type text/plain and no body paused it."""
    started(client)
    anonymous = api_client(client.app, key=None)
    anonymous.headers["Origin"] = "https://evil.example"
    response = anonymous.post("/v1/experiments/exp/pause", headers={"Content-Type": "text/plain"})
    assert response.status_code == 401
    assert client.get("/v1/experiments/exp").json()["status"] == "active"


def test_the_audit_log_names_the_key_that_made_each_change(client) -> None:
    """The defect: the actor was always `anonymous`."""
    started(client)
    ops = client.post("/v1/keys", json={"name": "ops@example.com", "role": "operate"}).json()["key"]
    as_ops = {"Authorization": f"Bearer {ops}"}
    assert client.post("/v1/experiments/exp/pause", headers=as_ops).status_code == 200
    assert client.put("/v1/experiments/exp/exposure", json={"exposure": 0.5}, headers=as_ops).status_code == 200
    events = client.get("/v1/experiments/exp/events").json()["events"]
    assert [(e["action"], e["actor"]) for e in events] == [
        ("create", "admin"),
        ("start", "admin"),
        ("pause", "ops@example.com"),
        ("set_exposure", "ops@example.com"),
    ]


def test_a_key_is_shown_once_listed_without_itself_and_refused_once_revoked(client) -> None:
    made = client.post("/v1/keys", json={"name": "checkout", "role": "decide"})
    assert made.status_code == 201
    key = made.json()["key"]
    assert key.startswith("bsk_") and len(key) >= 40
    listed = client.get("/v1/keys").json()["keys"]
    assert [(k["name"], k["role"]) for k in listed] == [("admin", "admin"), ("checkout", "decide")]
    assert all(set(k) == {"name", "role", "created_at", "last_used_at"} for k in listed)
    assert key not in client.get("/v1/keys").text
    started(client)
    as_checkout = {"Authorization": f"Bearer {key}"}
    decision = client.post("/v1/decisions", json={"experiment": "exp", "unit": "u1"}, headers=as_checkout)
    assert decision.status_code == 200
    used = {k["name"]: k["last_used_at"] for k in client.get("/v1/keys").json()["keys"]}
    assert used["checkout"] is not None
    revoked = client.delete("/v1/keys/checkout")
    assert revoked.status_code == 200 and revoked.json()["name"] == "checkout"
    again = client.post("/v1/decisions", json={"experiment": "exp", "unit": "u1"}, headers=as_checkout)
    assert again.status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        pytest.param({"name": "admin", "role": "read"}, 409, "name", id="taken-name"),
        pytest.param({"name": "anonymous", "role": "read"}, 422, "name", id="reserved-anonymous"),
        pytest.param({"name": "scheduler", "role": "read"}, 422, "name", id="reserved-scheduler"),
        pytest.param({"name": "x", "role": "owner"}, 422, "role", id="unknown-role"),
        pytest.param({"name": "has space", "role": "read"}, 422, "name", id="bad-name"),
        pytest.param({"name": "x" * 65, "role": "read"}, 422, "name", id="long-name"),
        pytest.param({"name": "x", "role": "read", "key": "mine"}, 422, "key", id="chosen-key"),
    ],
)
def test_bad_key_requests_are_refused_with_the_field(client, body, status, field) -> None:
    before = client.get("/v1/keys").json()
    response = client.post("/v1/keys", json=body)
    assert response.status_code == status, response.text
    assert response.json().get("field") == field
    assert response.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/keys").json() == before  # no key was made


def test_the_last_admin_key_cannot_be_revoked_and_unknown_names_are_404(client) -> None:
    last = client.delete("/v1/keys/admin")
    assert last.status_code == 409 and "last admin key" in last.json()["detail"]
    assert client.delete("/v1/keys/nobody").status_code == 404
    second = client.post("/v1/keys", json={"name": "admin2", "role": "admin"}).json()["key"]
    assert client.delete("/v1/keys/admin").status_code == 200
    assert client.get("/v1/keys").status_code == 401  # the client's own key is gone
    assert client.get("/v1/keys", headers={"Authorization": f"Bearer {second}"}).status_code == 200


def test_the_first_start_prints_one_admin_key_stored_only_as_its_digest(make_app, database_url, capsys) -> None:
    with api_client(make_app(admin_key=None), key=None) as first:
        printed = capsys.readouterr().out
        lines = [line for line in printed.splitlines() if line.startswith("admin key: ")]
        assert len(lines) == 1 and "will not be shown again" in printed
        key = lines[0].removeprefix("admin key: ")
        assert first.get("/v1/keys", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    with api_client(make_app(admin_key=None), key=key) as second:  # a restart, or another replica
        assert "admin key" not in capsys.readouterr().out
        assert [k["name"] for k in second.get("/v1/keys").json()["keys"]] == ["admin"]
    rows = read_db(database_url, "SELECT name, role, digest FROM api_keys")
    assert [(name, role) for name, role, _ in rows] == [("admin", "admin")]
    assert rows[0][2] != key and key not in repr(rows) and len(rows[0][2]) == 64


def test_a_revocation_reaches_another_process_within_the_staleness_bound(make_app, clock) -> None:
    with api_client(make_app(cache_ttl_s=1.0)) as one, api_client(make_app(cache_ttl_s=1.0)) as two:
        key = one.post("/v1/keys", json={"name": "reader", "role": "read"}).json()["key"]
        as_reader = {"Authorization": f"Bearer {key}"}
        assert two.get("/v1/experiments", headers=as_reader).status_code == 200
        assert one.delete("/v1/keys/reader").status_code == 200
        assert one.get("/v1/experiments", headers=as_reader).status_code == 401  # this process: at once
        clock.advance(1.01)
        assert two.get("/v1/experiments", headers=as_reader).status_code == 401  # the other: within 1 s


def test_with_auth_off_no_key_is_needed_and_the_actor_is_anonymous(capsys) -> None:
    settings = Settings(scheduler_enabled=False, cache_ttl_s=0.0, auth=False)
    app = create_app(settings, storage=MemoryStorage(), clock=FakeClock())
    with api_client(app, key=None) as client:
        assert client.post("/v1/experiments", json=experiment_body()).status_code == 201
        assert client.post("/v1/experiments/exp/start").status_code == 200
        events = client.get("/v1/experiments/exp/events").json()["events"]
    assert {e["actor"] for e in events} == {"anonymous"}
    assert "AUTHENTICATION IS OFF" in capsys.readouterr().err  # loudly, at every start


@pytest.mark.parametrize("word", ["off", "OFF", "false", "no", "0"])
def test_bandit_auth_off_turns_auth_off(word: str) -> None:
    assert Settings.from_env({"BANDIT_AUTH": word}).auth is False


def test_the_client_key_variable_is_not_a_setting() -> None:
    env = {"BANDIT_API_KEY": "bsk_something", "BANDIT_AUTH": "on"}
    assert Settings.from_env(env) == msgspec.structs.replace(Settings(), auth=True)


def test_a_short_admin_key_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="BANDIT_ADMIN_KEY"):
        Settings.from_env({"BANDIT_ADMIN_KEY": "short"})
