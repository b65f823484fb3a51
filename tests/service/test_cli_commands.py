"""The CLI's operator commands against the real app, and its offline commands against oracles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize, proportions_ztest

from bandit_service.cli import main
from tests.service.api import experiment_body


def run(capsys, argv, client=None):
    code = main(argv, http=client)
    out, err = capsys.readouterr()
    return code, out, err


def test_operator_commands_drive_the_lifecycle(client, tmp_path, capsys):
    spec = tmp_path / "exp.json"
    spec.write_text(json.dumps(experiment_body("cli-exp")))
    code, out, _ = run(capsys, ["create", str(spec)], client)
    assert code == 0 and json.loads(out)["status"] == "draft"
    assert run(capsys, ["start", "cli-exp"], client)[0] == 0
    code, out, _ = run(capsys, ["list", "--status", "active"], client)
    assert code == 0 and "cli-exp" in out
    assert json.loads(run(capsys, ["show", "cli-exp"], client)[1])["status"] == "active"
    assert run(capsys, ["pause", "cli-exp"], client)[0] == 0
    code, out, _ = run(capsys, ["complete", "cli-exp", "--winner", "b"], client)
    assert code == 0
    shown = json.loads(run(capsys, ["show", "cli-exp"], client)[1])
    assert shown["status"] == "completed" and shown["winner"] == "b"


def test_operator_errors_print_the_problem_and_exit_1(client, capsys):
    code, _, err = run(capsys, ["start", "missing"], client)
    assert code == 1 and "404" in err
    client.post("/v1/experiments", json=experiment_body("twice"))
    code, _, err = run(capsys, ["pause", "twice"], client)
    assert code == 1 and "409" in err and "draft" in err


def test_operator_reports_an_unreachable_service(capsys):
    code, _, err = run(capsys, ["list", "--url", "http://127.0.0.1:9", "--timeout", "2"])
    assert code == 1 and "cannot reach" in err


def test_create_refuses_a_spec_that_is_not_json(client, tmp_path, capsys):
    spec = tmp_path / "bad.json"
    spec.write_text("{not json")
    code, _, err = run(capsys, ["create", str(spec)], client)
    assert code == 1 and "not valid JSON" in err


def write_csv(path: Path, rewards: dict[str, np.ndarray]) -> None:
    lines = ["arm,reward"] + [f"{arm},{r:g}" for arm, values in rewards.items() for r in values]
    path.write_text("\n".join(lines) + "\n")


def test_analyze_matches_statsmodels_z_test(tmp_path, capsys, rng):
    rewards = {"a": (rng.random(3000) < 0.10).astype(float), "b": (rng.random(3000) < 0.125).astype(float)}
    write_csv(tmp_path / "r.csv", rewards)
    code, out, _ = run(capsys, ["analyze", str(tmp_path / "r.csv"), "--control", "a"])
    assert code == 0
    _, p = proportions_ztest([rewards["b"].sum(), rewards["a"].sum()], [3000, 3000])
    row = next(line for line in out.splitlines() if line.startswith("b ") and "[" in line)
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
def test_analyze_refuses_bad_files(tmp_path, capsys, content, message):
    (tmp_path / "bad.csv").write_text(content)
    code, _, err = run(capsys, ["analyze", str(tmp_path / "bad.csv")])
    assert code == 2 and message in err


def test_analyze_refuses_an_unknown_control(tmp_path, capsys):
    write_csv(tmp_path / "r.csv", {"a": np.array([0.0, 1.0]), "b": np.array([1.0, 1.0])})
    code, _, err = run(capsys, ["analyze", str(tmp_path / "r.csv"), "--control", "z"])
    assert code == 2 and "control" in err


def test_sample_size_matches_statsmodels(capsys):
    code, out, _ = run(capsys, ["sample-size", "--baseline", "0.1", "--mde", "0.02", "--daily-traffic", "1000"])
    assert code == 0
    fields = dict(line.split(":", 1) for line in out.strip().splitlines())
    effect = proportion_effectsize(0.12, 0.10)
    n = NormalIndPower().solve_power(effect_size=effect, alpha=0.05, power=0.8, ratio=1.0)
    # statsmodels' arcsine effect size and our normal approximation agree to about 1%
    assert int(fields["control".rjust(15)]) == pytest.approx(n, rel=0.02)
    assert int(fields["days".rjust(15)]) >= 2 * int(fields["control".rjust(15)]) / 1000


def test_sample_size_refuses_bad_input(capsys):
    code, _, err = run(capsys, ["sample-size", "--baseline", "1.5", "--mde", "0.01"])
    assert code == 2 and "baseline" in err
