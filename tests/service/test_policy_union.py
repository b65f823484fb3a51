"""One policy union: every member of `policies.PolicyConfig` works through the API, the simulator and the benchmark."""

from __future__ import annotations

import re
from typing import Any, get_args

import numpy as np
import pytest

from benchmarks.regret import POLICIES, make_environment, run_policies
from policies import BernoulliEnv, PolicyConfig, decode_policy, simulate
from tests.service.api import decide, experiment_body, reward, started

KINDS = {kind.__struct_config__.tag: kind for kind in get_args(PolicyConfig)}


def _learn(client: Any, units: int = 40) -> None:
    """Decisions for `units` units; arm b always pays, arm a never does."""
    for i in range(units):
        d = decide(client, unit=f"u{i}")
        assert reward(client, d["decision_id"], 1 if d["arm"] == "b" else 0).status_code == 200


@pytest.mark.parametrize("tag", KINDS)
def test_every_policy_of_the_union_is_created_started_and_reweighted_through_the_api(client, tag: str) -> None:
    created = client.post("/v1/experiments", json=experiment_body(policy={"kind": tag}))
    assert created.status_code == 201, created.text
    assert created.json()["policy"]["kind"] == tag
    assert client.post("/v1/experiments/exp/start").status_code == 200
    _learn(client)
    record = client.post("/v1/experiments/exp/reweight")
    assert record.status_code == 200, record.text
    weights = np.array(list(record.json()["weights"].values()))
    assert weights.shape == (2,) and np.all(weights >= 0) and weights.sum() == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("tag", KINDS)
def test_every_policy_of_the_union_is_simulated_and_benchmarked(tag: str) -> None:
    config = decode_policy(f'{{"kind": "{tag}"}}')
    result = simulate(config, BernoulliEnv((0.1, 0.2)), 30, 2, np.random.default_rng(1), batch_size=10)
    assert result.pulls.sum() == 60
    env = make_environment("two_arms", 30)
    names = [name for name, (make, batch) in POLICIES.items() if batch is None and type(make(env, 10)) is KINDS[tag]]
    assert names, f"benchmarks.regret.POLICIES runs no {tag!r} policy"
    (run,) = run_policies(env, names[:1], 30, 2, 1, 10, [10, 30], show_progress=False, label=tag)
    assert run.result.pulls.sum() == 60


def test_ucb1_end_to_end_moves_the_weight_to_the_better_arm(client) -> None:
    experiment = started(client, policy={"kind": "ucb1"})
    assert experiment["policy"] == {"kind": "ucb1", "burn_in": 0, "min_weight": 0.0}
    assert experiment["weights"] == {"a": 0.5, "b": 0.5} and experiment["next_reweight_at"] is not None
    _learn(client)
    record = client.post("/v1/experiments/exp/reweight").json()
    assert record["weights"] == {"a": 0.0, "b": 1.0}
    assert record["stats"]["a"]["mean"] == 0.0 and record["stats"]["b"]["mean"] == 1.0
    assert client.get("/v1/experiments/exp").json()["weights"] == record["weights"]
    assert {decide(client, unit=f"new-{i}")["arm"] for i in range(20)} == {"b"}


def test_the_experiment_shows_its_policy_bound_to_its_reward_and_weights(client) -> None:
    created = client.post("/v1/experiments", json=experiment_body("ts", reward="continuous")).json()
    assert created["policy"]["kind"] == "thompson" and created["policy"]["reward"] == "continuous"
    draft = client.post("/v1/experiments", json=experiment_body("fx", policy={"kind": "fixed"})).json()
    assert draft["policy"] == {"kind": "fixed", "weights": []}
    assert client.post("/v1/experiments/fx/start").json()["policy"] == {"kind": "fixed", "weights": [0.5, 0.5]}
    moved = client.put("/v1/experiments/fx/weights", json={"weights": {"a": 0.25, "b": 0.75}})
    assert moved.status_code == 200
    assert client.get("/v1/experiments/fx").json()["policy"] == {"kind": "fixed", "weights": [0.25, 0.75]}


def test_a_fixed_split_may_name_its_weights_on_the_policy(client) -> None:
    experiment = started(client, policy={"kind": "fixed", "weights": [0.2, 0.8]})
    assert experiment["weights"] == {"a": 0.2, "b": 0.8} and experiment["next_reweight_at"] is None
    assert client.post("/v1/experiments/exp/reweight").json()["weights"] == {"a": 0.2, "b": 0.8}


def test_a_draft_keeps_the_policy_it_was_given_when_its_reward_or_arms_change(client) -> None:
    client.post("/v1/experiments", json=experiment_body(reward="continuous"))
    patched = client.patch("/v1/experiments/exp", json={"reward": "bernoulli"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["policy"]["reward"] == "bernoulli"
    client.post("/v1/experiments", json=experiment_body("fx", policy={"kind": "fixed"}))
    arms = [{"name": "a", "weight": 0.1}, {"name": "b", "weight": 0.2}, {"name": "c", "weight": 0.7}]
    assert client.patch("/v1/experiments/fx", json={"arms": arms}).status_code == 200
    assert client.post("/v1/experiments/fx/start").json()["weights"] == {"a": 0.1, "b": 0.2, "c": 0.7}


THREE_ARMS = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
WEIGHTED_ARMS = [{"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.5}]


@pytest.mark.parametrize(
    ("changes", "field", "match"),
    [
        pytest.param(
            {"policy": {"kind": "ucb1", "min_weight": 0.6}},
            "policy.min_weight",
            r"^min_weight: 2 arms x floor 0.6 exceeds 1$",
            id="ucb1-floor-too-high",
        ),
        pytest.param(
            {"arms": THREE_ARMS, "policy": {"kind": "epsilon_greedy", "min_weight": 0.4}},
            "policy.min_weight",
            r"^min_weight: 3 arms x floor 0.4 exceeds 1$",
            id="floor-too-high-for-3-arms",
        ),
        pytest.param(
            {"reward": "continuous", "policy": {"kind": "thompson", "method": "integration"}},
            "policy.method",
            r"^method: 'integration' is available for bernoulli rewards only$",
            id="integration-needs-bernoulli",
        ),
        pytest.param(
            {"policy": {"kind": "thompson", "reward": "continuous"}},
            "policy.reward",
            r"^reward: the policy says 'continuous' but the experiment's reward is 'bernoulli'$",
            id="thompson-reward-conflict",
        ),
        pytest.param(
            {"policy": {"kind": "fixed", "weights": [0.2, 0.3, 0.5]}},
            "policy.weights",
            r"^weights: mismatched lengths, 3 weights for 2 arms$",
            id="fixed-weights-count",
        ),
        pytest.param(
            {"arms": WEIGHTED_ARMS, "policy": {"kind": "fixed", "weights": [0.5, 0.5]}},
            "policy.weights",
            r"^weights: give the weights on the policy or on the arms, not both$",
            id="fixed-weights-and-arm-weights",
        ),
        pytest.param(
            {"policy": {"kind": "fixed", "weights": [0.5, 0.6]}},
            "policy",
            r"^weights: weights must sum to 1",
            id="fixed-weights-sum",
        ),
        pytest.param(
            {"policy": {"kind": "thompson", "draws": 0}},
            "policy.draws",
            r"Expected `int` >= 1 - at `\$\.policy\.draws`",
            id="draws-zero",
        ),
        pytest.param(
            {"policy": {"kind": "thompson", "draws": 1_000_001}},
            "policy.draws",
            r"Expected `int` <= 1000000 - at `\$\.policy\.draws`",
            id="draws-too-many",
        ),
        pytest.param(
            {"policy": {"kind": "thompson", "prior_scale": 1e16}},
            "policy.prior_scale",
            r"Expected `float` <= 1000000000000000.0 - at `\$\.policy\.prior_scale`",
            id="prior-scale-too-big",
        ),
    ],
)
def test_an_invalid_policy_is_refused_naming_its_field(client, changes: dict[str, Any], field: str, match: str) -> None:
    response = client.post("/v1/experiments", json=experiment_body(**changes))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["field"] == field
    assert re.search(match, problem["detail"]), problem["detail"]
    assert client.get("/v1/experiments/exp").status_code == 404


def test_a_patched_policy_is_checked_against_the_arms(client) -> None:
    client.post("/v1/experiments", json=experiment_body(arms=THREE_ARMS))
    response = client.patch("/v1/experiments/exp", json={"policy": {"kind": "thompson", "min_weight": 0.4}})
    assert response.status_code == 422 and response.json()["field"] == "policy.min_weight"
    fixed = client.patch("/v1/experiments/exp", json={"policy": {"kind": "fixed", "weights": [0.5, 0.5]}})
    assert fixed.status_code == 422 and fixed.json()["field"] == "policy.weights"


def test_the_openapi_schema_offers_every_policy_of_the_union(client) -> None:
    schemas = client.get("/schema/openapi.json").json()["components"]["schemas"]
    policy = schemas["ExperimentIn"]["properties"]["policy"]
    offered = [ref["$ref"].rsplit("/", 1)[-1] for ref in policy["anyOf"]]
    assert offered == [kind.__name__ for kind in KINDS.values()]
    assert [schemas[name]["properties"]["kind"]["enum"] for name in offered] == [[kind] for kind in KINDS]
    assert list(policy["discriminator"]["mapping"]) == list(KINDS)
