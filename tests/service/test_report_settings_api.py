"""The report settings stored on an experiment: level, correction and sequential_tuning_n.

Created, read, changed in any status, kept by the database, refused with a problem naming the
field when out of range, taken from a spec file, and defaulted for configs stored before they existed.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from sqlalchemy import JSON, column, table, update

from bandit_service.core.model import ExperimentConfig
from tests.service.api import connect, experiment_body, read_db, started
from tests.service.test_cli_commands import invoke, written

SETTINGS = ("level", "correction", "sequential_tuning_n")
DEFAULTS = (0.95, "holm", 5000)
EXPERIMENTS = table("experiments", column("key"), column("config", JSON))


def settings_of(body: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(body[name] for name in SETTINGS)


def test_a_new_experiment_has_the_default_report_settings(client):
    created = client.post("/v1/experiments", json=experiment_body())
    assert created.status_code == 201, created.text
    assert settings_of(created.json()) == DEFAULTS
    assert settings_of(client.get("/v1/experiments/exp").json()) == DEFAULTS


@pytest.mark.parametrize("correction", ["holm", "bonferroni", "none"])
def test_report_settings_are_stored_and_changeable_while_running(database_url, client, correction):
    """Round trip through a real database (SQLite, PostgreSQL): create, read, patch an active experiment."""
    given = {"level": 0.9, "correction": correction, "sequential_tuning_n": 100}
    created = client.post("/v1/experiments", json=experiment_body(**given))
    assert created.status_code == 201, created.text
    assert settings_of(created.json()) == (0.9, correction, 100)
    assert client.post("/v1/experiments/exp/start").status_code == 200
    patched = client.patch("/v1/experiments/exp", json={"level": 0.999, "sequential_tuning_n": 100_000_000})
    assert patched.status_code == 200, patched.text
    assert settings_of(client.get("/v1/experiments/exp").json()) == (0.999, correction, 100_000_000)
    changed = client.patch("/v1/experiments/exp", json={"correction": "bonferroni", "level": 0.8})
    assert settings_of(changed.json()) == (0.8, "bonferroni", 100_000_000)
    [(config,)] = read_db(database_url, "SELECT config FROM experiments WHERE key = 'exp'")
    stored = json.loads(config) if isinstance(config, str) else config
    assert tuple(stored[name] for name in SETTINGS) == (0.8, "bonferroni", 100_000_000)
    events = client.get("/v1/experiments/exp/events").json()["events"]
    assert {"level": 0.999, "sequential_tuning_n": 100_000_000} in [e["after"] for e in events]


def test_report_settings_change_after_completion_too(client):
    started(client)
    assert client.post("/v1/experiments/exp/complete", json={"winner": "b"}).status_code == 200
    patched = client.patch("/v1/experiments/exp", json={"correction": "none"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["correction"] == "none"


BAD = [
    pytest.param({"level": 0.79}, "level", id="level-below-0.8"),
    pytest.param({"level": 0.9991}, "level", id="level-above-0.999"),
    pytest.param({"level": 1}, "level", id="level-one"),
    pytest.param({"level": "95%"}, "level", id="level-string"),
    pytest.param({"level": None}, "level", id="level-null"),
    pytest.param({"correction": "sidak"}, "correction", id="correction-unknown"),
    pytest.param({"correction": "Holm"}, "correction", id="correction-case"),
    pytest.param({"correction": None}, "correction", id="correction-null"),
    pytest.param({"sequential_tuning_n": 99}, "sequential_tuning_n", id="tuning-below-100"),
    pytest.param({"sequential_tuning_n": 100_000_001}, "sequential_tuning_n", id="tuning-above-1e8"),
    pytest.param({"sequential_tuning_n": 5000.5}, "sequential_tuning_n", id="tuning-float"),
    pytest.param({"sequential_tuning_n": "5000"}, "sequential_tuning_n", id="tuning-string"),
]


@pytest.mark.parametrize(("change", "field"), BAD)
def test_bad_report_settings_are_refused_naming_the_field(client, change, field):
    created = client.post("/v1/experiments", json=experiment_body(**change))
    assert created.status_code == 422, created.text
    assert created.headers["content-type"] == "application/problem+json"
    assert created.json()["field"] == field
    assert client.get("/v1/experiments/exp").status_code == 404
    started(client)
    patched = client.patch("/v1/experiments/exp", json=change)
    assert patched.status_code == 422, patched.text
    assert patched.json()["field"] == field
    assert settings_of(client.get("/v1/experiments/exp").json()) == DEFAULTS


def test_a_config_stored_before_the_settings_existed_reads_with_the_defaults():
    old = {
        "control": "a",
        "policy": {"kind": "thompson"},
        "reward": "bernoulli",
        "reweight_every_s": 3600,
        "exposure": 1.0,
        "targeting": {},
        "sticky": True,
        "reward_window_s": 86400,
        "default_reward": 0.0,
        "min_sample_size": 300,
    }
    config = msgspec.json.decode(json.dumps(old), type=ExperimentConfig)
    assert (config.level, config.correction, config.sequential_tuning_n) == DEFAULTS
    assert config.min_sample_size == 300


def test_an_experiment_stored_before_the_settings_existed_shows_the_defaults(database_url, client):
    """The stored JSON without the three keys (as written by an older release) reads with the defaults."""
    created = client.post("/v1/experiments", json=experiment_body(level=0.9, correction="bonferroni"))
    assert created.status_code == 201
    [(config,)] = read_db(database_url, "SELECT config FROM experiments WHERE key = 'exp'")
    stored = json.loads(config) if isinstance(config, str) else config
    older = {k: v for k, v in stored.items() if k not in SETTINGS}
    with connect(database_url) as conn:
        conn.execute(update(EXPERIMENTS).where(EXPERIMENTS.c.key == "exp").values(config=older))
    assert settings_of(client.get("/v1/experiments/exp").json()) == DEFAULTS


def test_a_spec_file_sets_the_report_settings(client, tmp_path):
    spec = (
        "key: spec-exp\nname: S\narms: [{name: a}, {name: b}]\n"
        "level: 0.99\ncorrection: none\nsequential_tuning_n: 20000\n"
    )
    created = invoke(["create", written(tmp_path, "e.yaml", spec), "--json"], client)
    assert created.exit_code == 0, created.stderr
    assert settings_of(json.loads(created.stdout)) == (0.99, "none", 20000)
    shown = invoke(["show", "spec-exp"], client)
    assert settings_of(json.loads(shown.stdout)) == (0.99, "none", 20000)
    toml = (
        'key = "toml-exp"\nname = "T"\nlevel = 0.9\ncorrection = "bonferroni"\n'
        '[[arms]]\nname = "a"\n[[arms]]\nname = "b"\n'
    )
    created = invoke(["create", written(tmp_path, "e.toml", toml), "--json"], client)
    assert created.exit_code == 0, created.stderr
    assert settings_of(json.loads(created.stdout)) == (0.9, "bonferroni", 5000)
