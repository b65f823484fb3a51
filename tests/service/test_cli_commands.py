"""The `bandit-service` command through click's runner, against the real app in-process.

Operator commands run on the in-memory twin, offline commands against oracles (statsmodels), and
every error must be one line on stderr with a non-zero exit (2: usage or input, 1: the service).
"""

from __future__ import annotations

import json
import re
import sys
import types
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner, Result
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize, proportions_ztest

from bandit_service.cli import cli
from bandit_service.cli.context import CliState
from bandit_service.cli.tables import experiment_row, read_report_view
from bandit_service.cli.template import template
from tests.service.api import decide, experiment_body, reward

# No key or URL from the environment of whoever runs the tests.
CLEAN_ENV = {"BANDIT_API_KEY": None, "BANDIT_URL": None, "NO_COLOR": "1"}


def invoke(args: list[str], http: Any = None, **kwargs: Any) -> Result:
    """Run the command (on the in-process app when `http` is a test client)."""
    env = {**CLEAN_ENV, **kwargs.pop("env", {})}
    return CliRunner().invoke(cli, args, obj=CliState(http=http), env=env, **kwargs)


@pytest.fixture
def run(client):
    """`run(*args)`: the command against the test's app; returns click's Result."""
    return lambda *args, **kwargs: invoke(list(args), client, **kwargs)


def one_line_error(result: Result, code: int) -> str:
    """The single stderr line of a failed command (and nothing on stdout), after checking the exit status."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def written(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_new_writes_a_template_that_create_accepts_as_is(run, tmp_path):
    made = run("new")
    assert made.exit_code == 0 and made.stdout.startswith("# An experiment spec")
    spec = yaml.safe_load(made.stdout)
    assert spec["key"] == "checkout-button" and [a["name"] for a in spec["arms"]] == ["blue", "green"]
    created = run("create", written(tmp_path, "experiment.yaml", made.stdout))
    assert created.exit_code == 0, created.stderr
    assert "created checkout-button (draft): 2 arms (blue, green), policy thompson, floor 5%" in created.stdout
    shown = json.loads(run("show", "checkout-button").stdout)
    assert shown["policy"]["min_weight"] == 0.05 and shown["arms"][0]["payload"] == {"color": "#1f6feb"}


def test_new_takes_a_key_and_a_name_that_stays_text(run, tmp_path):
    made = run("new", "--key", "yes-exp", "--name", "yes")  # `yes` alone is a YAML boolean
    created = run("create", written(tmp_path, "e.yaml", made.stdout), "--json")
    assert created.exit_code == 0, created.stderr
    assert (json.loads(created.stdout)["key"], json.loads(created.stdout)["name"]) == ("yes-exp", "yes")
    assert one_line_error(run("new", "--key", "Not A Key"), 2).startswith(
        "bandit-service new: Invalid value for --key: 'Not A Key'"
    )


def test_the_templates_commented_fields_are_valid_too(client, run, tmp_path):
    """Uncommenting every example field of the template still gives a spec the service takes."""
    uncommented = re.sub(r"^(\s*)# (?=[a-z_]+:|  )", r"\1", template("every-field"), flags=re.MULTILINE)
    spec = yaml.safe_load(uncommented)
    assert {"control", "targeting", "namespace", "criteria", "automation", "max_duration_s"} <= set(spec)
    client.put("/v1/features/checkout-button", json={"default_payload": None})
    created = run("create", written(tmp_path, "all.yaml", uncommented))
    assert created.exit_code == 0, created.stderr


@pytest.mark.parametrize(
    ("name", "text"),
    [
        pytest.param("e.toml", 'key = "t-exp"\nname = "T"\n[[arms]]\nname = "a"\n[[arms]]\nname = "b"\n', id="toml"),
        pytest.param("e.json", json.dumps(experiment_body("t-exp")), id="json"),
        pytest.param("e.yml", "key: t-exp\nname: T\narms: [{name: a}, {name: b}]\n", id="yml"),
    ],
)
def test_create_takes_toml_json_and_yaml(run, tmp_path, name, text):
    result = run("create", written(tmp_path, name, text), "--start")
    assert result.exit_code == 0, result.stderr
    assert json.loads(run("show", "t-exp").stdout)["status"] == "active"


@pytest.mark.parametrize(
    ("args", "text"),
    [
        pytest.param([], "key: s-exp\nname: S\narms: [{name: a}, {name: b}]\n", id="yaml-sniffed"),
        pytest.param([], json.dumps(experiment_body("s-exp")), id="json-sniffed"),
        pytest.param(
            ["--format", "toml"], 'key = "s-exp"\nname = "S"\narms = [{name = "a"}, {name = "b"}]\n', id="toml"
        ),
    ],
)
def test_create_reads_standard_input(run, args, text):
    result = run("create", "-", *args, input=text)
    assert result.exit_code == 0, result.stderr
    assert "created s-exp (draft)" in result.stdout


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        pytest.param("missing.yaml", None, "missing.yaml: no such file", id="missing-file"),
        pytest.param(
            "bad.yaml",
            "key: x\nname: y\narms: [{name: a}, {name: b}\nreward: bernoulli\n",
            "not valid YAML at line 4, column 1",
            id="yaml-line",
        ),
        pytest.param("bad.toml", 'key = "x"\nname = "y\n', "not valid TOML at line 2", id="toml-line"),
        pytest.param("bad.json", '{\n  "key": "x",\n}', "not valid JSON at line 3", id="json-line"),
        pytest.param("spec.txt", "key: x\n", "unknown spec format '.txt'", id="suffix"),
    ],
)
def test_create_refuses_an_unreadable_spec_with_one_line_and_exit_2(run, tmp_path, name, text, message):
    path = str(tmp_path / name) if text is None else written(tmp_path, name, text)
    line = one_line_error(run("create", path), 2)
    assert line.startswith(f"bandit-service create: {path}: ") and message in line


def test_create_names_a_bad_field_in_one_line_with_exit_1(run, tmp_path):
    spec = written(tmp_path, "e.yaml", "key: x\nname: y\narms: [{name: a}, {name: b}]\nexposure: 2\n")
    line = one_line_error(run("create", spec), 1)
    assert line == "bandit-service create: 422: Expected `float` <= 1.0 - at `$.exposure` (field: exposure)"


def started_with_traffic(client, key: str = "cli-exp", units: int = 30, **overrides: Any) -> None:
    """An active experiment with a few rewarded units (arm b earns more)."""
    assert client.post("/v1/experiments", json=experiment_body(key, **overrides)).status_code == 201
    assert client.post(f"/v1/experiments/{key}/start").status_code == 200
    for i in range(units):
        made = decide(client, key, unit=f"u{i}")
        reward(client, made["decision_id"], 1.0 if made["arm"] == "b" or i % 4 == 0 else 0.0)


def test_list_is_a_table_with_bars_leader_units_and_warnings(client, run):
    started_with_traffic(client)
    client.post("/v1/experiments", json=experiment_body("a-draft"))
    listed = run("list")
    assert listed.exit_code == 0, listed.stderr
    out = listed.stdout
    assert "cli-exp" in out and "a-draft" in out and "active" in out and "thompson" in out
    assert "█" in out and "50%" in out  # the weights as bars
    assert "b 1.00" in out  # the leader with its P(best): b earns 1 on every unit, a one in four
    assert "30" in out  # units
    assert len(out.splitlines()) < 20  # a table, not hundreds of lines of JSON
    only_drafts = run("list", "--status", "draft", "--json")
    assert [e["key"] for e in json.loads(only_drafts.stdout)] == ["a-draft"]
    assert "no experiments with status paused" in run("list", "--status", "paused").stdout


def test_list_warns_of_a_mismatch_a_breached_guardrail_and_a_recommendation(client, run):
    """The warnings column, from a real report with its health, guardrails and recommendation set."""
    started_with_traffic(client)
    report = client.get("/v1/experiments/cli-exp/report").json()
    report["health"]["srm"] |= {"flagged": True, "p_value": 0.0001}
    report["guardrails"] = [{"metric": "latency_ms", "arm": "b", "breached": True}]
    report["recommendation"] |= {"action": "ship", "arm": "b"}
    row = experiment_row({"key": "cli-exp", "status": "active"}, read_report_view(report), "429: slow down")
    warnings = row[-1].plain
    assert "sample ratio mismatch (p=0.0001)" in warnings and "guardrail latency_ms breached on b" in warnings
    assert "recommended: ship b" in warnings and "report: 429: slow down" in warnings


def test_status_shows_one_experiment_with_its_figures_and_plans(client, run):
    started_with_traffic(client)
    client.put("/v1/experiments/cli-exp/ramp", json={"steps": [{"exposure": 0.5, "hold_s": 60}, {"exposure": 1.0}]})
    result = run("status", "cli-exp")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "cli-exp" in out and "active" in out and "a (control)" in out
    assert "P(best)" in out and "recommendation: keep running" in out
    assert "ramp: ramp at step 1 of 2" in out
    both = json.loads(run("status", "cli-exp", "--json").stdout)
    assert both["experiment"]["key"] == "cli-exp" and both["report"]["control"] == "a"


def test_the_lifecycle_through_the_commands(client, run, tmp_path):
    assert run("create", written(tmp_path, "e.json", json.dumps(experiment_body("cli-exp")))).exit_code == 0
    started = run("start", "cli-exp")
    assert started.exit_code == 0 and started.stdout.startswith("cli-exp: active; exposure 100%; weights v1")
    assert run("reweight", "cli-exp").stdout.startswith("cli-exp: weights v2")
    assert run("pause", "cli-exp", "--json").exit_code == 0
    assert json.loads(run("show", "cli-exp").stdout)["status"] == "paused"
    done = run("complete", "cli-exp", "--winner", "b")
    assert done.exit_code == 0 and "completed (winner b)" in done.stdout
    shown = json.loads(run("show", "cli-exp").stdout)
    assert (shown["status"], shown["winner"]) == ("completed", "b")


def test_complete_with_a_plan_inline_or_from_a_file(client, run, tmp_path):
    started_with_traffic(client, "plan-inline", units=2)
    shifted = run("complete", "plan-inline", "--winner", "b", "--plan", "0.5:1h,0.8:30m,1")
    assert shifted.exit_code == 0 and "shifting traffic to 'b': step 1 of 3" in shifted.stdout
    plan = json.loads(run("completion", "plan-inline", "--json").stdout)["plan"]
    assert plan == [{"share": 0.5, "hold_s": 3600}, {"share": 0.8, "hold_s": 1800}, {"share": 1.0, "hold_s": None}]
    assert "cancelled" in run("completion", "plan-inline", "--cancel").stdout
    started_with_traffic(client, "plan-file", units=2)
    path = written(tmp_path, "plan.yaml", "plan:\n  - {share: 0.6, hold_s: 120}\n  - {share: 1.0}\n")
    assert run("complete", "plan-file", "--winner", "b", "--plan", path).exit_code == 0
    assert json.loads(run("completion", "plan-file", "--json").stdout)["plan"][0] == {"share": 0.6, "hold_s": 120}
    line = one_line_error(run("complete", "plan-file", "--winner", "b", "--plan", "0.5:soon"), 2)
    assert "--plan" in line and "'soon' is not a duration" in line


def test_weights_sets_a_fixed_split_and_shows_the_history(client, run):
    started_with_traffic(client, "fixed", units=4, policy={"kind": "fixed"})
    result = run("weights", "fixed", "a=0.3", "b=70%", "--rebalance")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("fixed: weights v2, moved") and "30%" in result.stdout
    history = run("weights", "fixed")
    assert "manual" in history.stdout and "start" in history.stdout
    assert [h["weights"] for h in json.loads(run("weights", "fixed", "--json").stdout)][-1] == {"a": 0.3, "b": 0.7}
    line = one_line_error(run("weights", "fixed", "a=0.3", "b=0.3"), 1)
    assert line.startswith("bandit-service weights: 422: ") and "(field: weights)" in line
    assert "is not KEY=VALUE" in one_line_error(run("weights", "fixed", "a0.3"), 2)


def test_weights_on_an_adaptive_policy_names_the_field(client, run):
    started_with_traffic(client, units=1)
    line = one_line_error(run("weights", "cli-exp", "a=0.5", "b=0.5"), 1)
    assert line.startswith("bandit-service weights: 409: manual weights are for fixed-split") and line.endswith(
        "(field: policy)"
    )


def test_exposure_and_ramp(client, run):
    started_with_traffic(client, units=1)
    assert "exposure 30%" in run("exposure", "cli-exp", "30%").stdout
    assert json.loads(run("show", "cli-exp").stdout)["exposure"] == 0.3
    assert "is not a share" in one_line_error(run("exposure", "cli-exp", "lots"), 2)
    assert "(field: exposure)" in one_line_error(run("exposure", "cli-exp", "1.5"), 1)
    assert "has no ramp" in one_line_error(run("ramp", "cli-exp"), 1)
    made = run("ramp", "cli-exp", "0.1:1h", "0.5:1d", "1")
    assert made.exit_code == 0 and "ramp at step 1 of 3: exposure 0.1" in made.stdout
    assert json.loads(run("ramp", "cli-exp", "--json").stdout)["steps"][1] == {"exposure": 0.5, "hold_s": 86_400}
    assert "cancelled" in run("ramp", "cli-exp", "--cancel").stdout
    assert "not both" in one_line_error(run("ramp", "cli-exp", "1", "--cancel"), 2)


def test_events_and_patch(client, run, tmp_path):
    started_with_traffic(client, units=1)
    patched = run("patch", "cli-exp", "description=New words", "exposure=0.5")
    assert patched.exit_code == 0 and "exposure 50%" in patched.stdout
    from_file = run("patch", "cli-exp", written(tmp_path, "p.yaml", "targeting: {country: DE}\n"))
    assert from_file.exit_code == 0, from_file.stderr
    assert json.loads(run("show", "cli-exp").stdout)["targeting"] == {"country": "DE"}
    assert "unknown field `nonsense` (field: nonsense)" in one_line_error(run("patch", "cli-exp", "nonsense=1"), 1)
    events = run("events", "cli-exp")
    assert events.exit_code == 0 and "create" in events.stdout and "status: draft → active" in events.stdout
    page = json.loads(run("events", "cli-exp", "--limit", "2", "--json").stdout)
    assert [e["action"] for e in page["events"]] == ["create", "start"] and page["next_after"] == 2
    assert "more: --after 2" in run("events", "cli-exp", "--limit", "2").stdout


def test_report_as_text_json_and_by_segment(client, run):
    started_with_traffic(client)
    text = run("report", "cli-exp")
    assert text.exit_code == 0 and text.stdout.startswith("Experiment report: 2 arms, control a")
    assert json.loads(run("report", "cli-exp", "--json").stdout)["arms"] == ["a", "b"]
    assert run("report", "cli-exp", "--segment", "lang").stdout.startswith("Segments by lang")
    assert json.loads(run("report", "cli-exp", "--segment", "lang", "--json").stdout)["attribute"] == "lang"


def test_keys_over_http_with_remote(run):
    made = run("keys", "create", "--name", "ci-bot", "--role", "read", "--remote")
    assert made.exit_code == 0 and made.stdout.splitlines()[-1].startswith("bsk_")
    listed = run("keys", "list", "--remote")
    assert "ci-bot" in listed.stdout and "read" in listed.stdout and made.stdout.splitlines()[-1] not in listed.stdout
    assert run("keys", "revoke", "ci-bot", "--remote").stdout == "revoked key 'ci-bot' (role 'read')\n"
    assert "no key named 'ci-bot'" in one_line_error(run("keys", "revoke", "ci-bot", "--remote"), 1)


def test_features(run):
    put = run("features", "put", "nmt", "--default-payload", '{"model": "base"}', "--description", "translation")
    assert put.exit_code == 0 and 'nmt: default payload {"model": "base"}' in put.stdout
    assert "nmt" in run("features", "list").stdout
    assert json.loads(run("features", "show", "nmt").stdout)["experiments"] == []
    assert "not JSON" in one_line_error(run("features", "put", "x", "--default-payload", "{oops"), 2)
    assert run("features", "delete", "nmt").exit_code == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["start", "missing"], "bandit-service start: 404: no experiment with key 'missing' (field: key)"),
        pytest.param(
            ["status", "missing"], "bandit-service status: 404: no experiment with key 'missing' (field: key)"
        ),
        pytest.param(
            ["report", "missing"], "bandit-service report: 404: no experiment with key 'missing' (field: key)"
        ),
        pytest.param(
            ["events", "missing"], "bandit-service events: 404: no experiment with key 'missing' (field: key)"
        ),
    ],
)
def test_an_unknown_experiment_is_one_line_with_exit_1(run, args, expected):
    assert one_line_error(run(*args), 1) == expected


def test_a_refused_transition_names_the_status(client, run):
    client.post("/v1/experiments", json=experiment_body("twice"))
    line = one_line_error(run("pause", "twice"), 1)
    assert "409" in line and "draft" in line and "(field: status)" in line


@pytest.mark.parametrize(
    ("args", "start"),
    [
        pytest.param(["lst"], "bandit-service: No such command 'lst'", id="unknown-command"),
        pytest.param(["list", "--status", "done"], "bandit-service list: Invalid value for '--status'", id="choice"),
        pytest.param(["start"], "bandit-service start: Missing argument 'KEY'", id="missing-argument"),
        pytest.param(["list", "--timeout", "0"], "bandit-service list: Invalid value for '--timeout'", id="range"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(run, args, start):
    assert one_line_error(run(*args), 2).startswith(start)


def test_an_unreachable_service_is_one_line_with_exit_1():
    line = one_line_error(invoke(["list", "--url", "http://127.0.0.1:9", "--timeout", "2"]), 1)
    assert line.startswith("bandit-service list: cannot reach the service at http://127.0.0.1:9")


def test_the_url_and_key_come_from_the_environment(client):
    line = one_line_error(invoke(["status", "x"], env={"BANDIT_URL": "http://127.0.0.1:9"}), 1)
    assert "cannot reach the service at http://127.0.0.1:9" in line
    key = client.post("/v1/keys", json={"name": "viewer", "role": "read"}).json()["key"]
    client.headers.pop("Authorization")
    assert "401" in one_line_error(invoke(["list"], client), 1)
    assert invoke(["list"], client, env={"BANDIT_API_KEY": key}).exit_code == 0
    assert "403" in one_line_error(invoke(["pause", "x"], client, env={"BANDIT_API_KEY": key}), 1)
    assert "Authorization" not in client.headers  # the injected client is left as it was


def test_version_comes_from_the_package_metadata():
    result = invoke(["--version"])
    assert (result.exit_code, result.stdout) == (0, f"bandit-service {version('bandit-service')}\n")


class FakeDemoError(RuntimeError):
    pass


def fake_demo(monkeypatch, run_demo) -> None:
    """`bandit_service.demo` replaced by a module whose `run_demo` is given (the real demo runs a minute)."""
    fake = types.ModuleType("bandit_service.demo")
    fake.run_demo = run_demo  # type: ignore[attr-defined]
    fake.DemoError = FakeDemoError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bandit_service.demo", fake)


def test_demo_calls_run_demo_with_its_options(monkeypatch, tmp_path):
    calls = []
    fake_demo(monkeypatch, lambda **kwargs: calls.append(kwargs))
    result = invoke(["demo", "--duration", "5", "--out", str(tmp_path / "out"), "--seed", "3"])
    assert result.exit_code == 0, result.stderr
    (kwargs,) = calls
    assert (kwargs["duration_s"], kwargs["out_dir"], kwargs["seed"]) == (5.0, tmp_path / "out", 3)
    assert kwargs["console"] is not None and (tmp_path / "out").is_dir()


def test_demo_failures_are_one_line(monkeypatch, tmp_path):
    def failing(**kwargs: Any) -> None:
        raise FakeDemoError("the demo's service did not start within 10 s")

    fake_demo(monkeypatch, failing)
    line = one_line_error(invoke(["demo", "--out", str(tmp_path)]), 1)
    assert line == "bandit-service demo: the demo's service did not start within 10 s"
    (tmp_path / "file").write_text("")
    assert "--out" in one_line_error(invoke(["demo", "--out", str(tmp_path / "file" / "sub")]), 2)


def write_csv(path: Path, rewards: dict[str, np.ndarray]) -> None:
    lines = ["arm,reward"] + [f"{arm},{r:g}" for arm, values in rewards.items() for r in values]
    path.write_text("\n".join(lines) + "\n")


def test_analyze_matches_statsmodels_z_test(tmp_path, rng):
    rewards = {"a": (rng.random(3000) < 0.10).astype(float), "b": (rng.random(3000) < 0.125).astype(float)}
    write_csv(tmp_path / "r.csv", rewards)
    result = invoke(["analyze", str(tmp_path / "r.csv"), "--control", "a"])
    assert result.exit_code == 0
    _, p = proportions_ztest([rewards["b"].sum(), rewards["a"].sum()], [3000, 3000])
    row = next(line for line in result.stdout.splitlines() if line.startswith("b ") and "[" in line)
    assert float(row.split()[-3]) == pytest.approx(p, abs=5e-5)  # printed with 4 decimals


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("x,y\n1,2\n", "columns 'arm' and 'reward'", id="wrong-header"),
        pytest.param("arm,reward\na,1\na,0\n", "at least two arms", id="one-arm"),
        pytest.param("arm,reward\na,1\nb,zero\n", "not a number", id="not-a-number"),
        pytest.param("arm,reward\na,1\nb,nan\n", "finite", id="nan"),
    ],
)
def test_analyze_refuses_bad_files(tmp_path, content, message):
    (tmp_path / "bad.csv").write_text(content)
    assert message in one_line_error(invoke(["analyze", str(tmp_path / "bad.csv")]), 2)


def test_analyze_refuses_an_unknown_control_and_a_missing_file(tmp_path):
    write_csv(tmp_path / "r.csv", {"a": np.array([0.0, 1.0]), "b": np.array([1.0, 1.0])})
    assert "control" in one_line_error(invoke(["analyze", str(tmp_path / "r.csv"), "--control", "z"]), 2)
    assert "No such file" in one_line_error(invoke(["analyze", str(tmp_path / "none.csv")]), 2)


def test_sample_size_matches_statsmodels_for_several_traffic_levels():
    args = ["sample-size", "--baseline", "0.1", "--mde", "0.02", "--daily-traffic", "1000", "--daily-traffic", "5000"]
    result = invoke([*args, "--json"])
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    effect = proportion_effectsize(0.12, 0.10)
    n = NormalIndPower().solve_power(effect_size=effect, alpha=0.05, power=0.8, ratio=1.0)
    # statsmodels' arcsine effect size and our normal approximation agree to about 1%
    assert plan["control"] == pytest.approx(n, rel=0.02) and plan["total"] == 2 * plan["control"]
    days = {d["daily_traffic"]: d["days"] for d in plan["durations"]}
    assert days[1000.0] >= plan["total"] / 1000 > days[1000.0] - 1 and days[5000.0] == -(-plan["total"] // 5000)
    table = invoke(args).stdout
    assert "daily traffic" in table and "1,000" in table and "5,000" in table and f"{plan['control']:,}" in table


def test_sample_size_without_traffic_and_for_a_continuous_metric():
    result = invoke(["sample-size", "--baseline", "10", "--std", "4", "--mde", "0.5", "--json"])
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["metric"] == "mean" and plan["durations"] == []
    assert "mean: baseline 10" in invoke(["sample-size", "--baseline", "10", "--std", "4", "--mde", "0.5"]).stdout


def test_sample_size_says_which_correction_it_applied_over_several_arms():
    args = ["sample-size", "--baseline", "0.1", "--mde", "0.02", "--arms", "4"]
    plans = {c: json.loads(invoke([*args, "--correction", c, "--json"]).stdout) for c in ("bonferroni", "none")}
    assert plans["bonferroni"]["correction"] == "bonferroni over 3 comparisons"
    assert plans["bonferroni"]["alpha"] == pytest.approx(0.05 / 3) and plans["none"]["alpha"] == 0.05
    assert plans["none"]["correction"] == "none" and plans["none"]["control"] < plans["bonferroni"]["control"]
    effect = proportion_effectsize(0.12, 0.10)
    n = NormalIndPower().solve_power(effect_size=effect, alpha=0.05 / 3, power=0.8, ratio=1.0)
    assert plans["bonferroni"]["control"] == pytest.approx(n, rel=0.02)
    holm = json.loads(invoke([*args, "--correction", "holm", "--json"]).stdout)
    assert holm["correction"] == "bonferroni over 3 comparisons (conservative for holm)"
    assert holm["control"] == plans["bonferroni"]["control"]
    shown = invoke(args, env={"COLUMNS": "200"}).stdout
    assert "(3 vs control; bonferroni over 3 comparisons)" in shown


def test_sample_size_refuses_bad_input():
    line = one_line_error(invoke(["sample-size", "--baseline", "1.5", "--mde", "0.01"]), 2)
    assert line.startswith("bandit-service sample-size: baseline")
    assert "--mde" in one_line_error(invoke(["sample-size", "--baseline", "0.1"]), 2)
    wrong = invoke(["sample-size", "--baseline", "0.1", "--mde", "0.02", "--correction", "sidak"])
    assert wrong.exit_code == 2 and "--correction" in wrong.stderr and "bonferroni" in wrong.stderr


def test_colours_only_on_a_terminal_and_never_with_no_color(client):
    started_with_traffic(client, units=2)
    piped = invoke(["list"], client, env={"NO_COLOR": None, "FORCE_COLOR": None})
    assert piped.exit_code == 0 and "\x1b[" not in piped.stdout  # a pipe or a file: plain text
    terminal = invoke(["list"], client, env={"NO_COLOR": None, "FORCE_COLOR": "1", "TERM": "xterm-256color"})
    assert "\x1b[32m" in terminal.stdout  # what a terminal gets: `active` in green
    no_color = invoke(["list"], client, env={"NO_COLOR": "1", "FORCE_COLOR": "1", "TERM": "xterm-256color"})
    assert "\x1b[32m" not in no_color.stdout
