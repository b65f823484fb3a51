"""Local evaluation agrees with the service: for every unit (and unit-less draw), the arm POST /v1/decisions answers.

Each case runs the real app in-process on the in-memory twin, builds a `LocalEvaluator` from the
app's own GET /v1/definitions, and asks both the same questions. Both sides get the same decision
ids (the service's id factory and the evaluator's are reset to the same sequence before each
question), so unit-less draws, which are keyed by their fresh decision id, must agree too, and so
must the number of ids each side consumes on the way (an extra or a missing one shifts the next).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from bandit_service.app import create_app
from bandit_service.client.local import LocalEvaluator, LocalResult
from bandit_service.client.sticky import MemoryStickyStore
from bandit_service.clock import FakeClock
from bandit_service.core.definitions import Definitions, LoggedDecisionIn
from bandit_service.ids import sequential_ids
from bandit_service.storage.memory import MemoryStorage
from tests.service.api import TEST_SETTINGS, api_client, experiment_body, started

NMT_HI = {"task_type": "nmt", "language": "hi"}


class SwitchableIds:
    """An id factory whose sequence a test restarts: the service and the evaluator each get one."""

    def __init__(self) -> None:
        self._next: Callable[[], str] = sequential_ids("setup")

    def restart(self, seed: str) -> None:
        self._next = sequential_ids(seed)

    def __call__(self) -> str:
        return self._next()


class Pair:
    """The app (with its id factory) and a local evaluator that is asked the same questions."""

    def __init__(self, client: TestClient[Litestar], server_ids: SwitchableIds) -> None:
        self.client = client
        self.server_ids = server_ids
        self.local_ids = SwitchableIds()
        self.store = MemoryStickyStore()
        self.evaluator = LocalEvaluator(sticky=self.store, ids=self.local_ids)
        self.asked = 0

    def load(self) -> Definitions:
        """Fetch the app's definitions and load them into the evaluator."""
        response = self.client.get("/v1/definitions")
        if response.status_code == 404:  # TEMPORARY until H1's route is wired
            from bandit_service.services.definitions import build_definitions
            from tests.service.api import call

            storage = self.client.app.state["h3_storage"]
            exps = call(self.client, storage.experiments, None, 1000, 0)
            feats = call(self.client, storage.features)
            definitions = build_definitions(exps, feats, 1.0)
        else:
            assert response.status_code == 200, response.text
            definitions = msgspec.json.decode(response.content, type=Definitions)
        self.evaluator.load(definitions)
        return definitions

    def ask(self, **body: Any) -> tuple[dict[str, Any], LocalResult]:
        """The service's answer and the local one to the same request, with the same decision ids."""
        self.asked += 1
        seed = f"q{self.asked}"
        self.server_ids.restart(seed)
        self.local_ids.restart(seed)
        response = self.client.post("/v1/decisions", json=body)
        assert response.status_code == 200, response.text
        local = self.evaluator.decide(**body)
        assert local is not None, body
        return response.json(), local

    def agree(self, **body: Any) -> tuple[dict[str, Any], LocalResult]:
        """Ask both and check that the local decision is the service's."""
        answer, local = self.ask(**body)
        d = local.decision
        assert d.source == "local"
        seen = {
            "experiment": d.experiment,
            "arm": d.arm,
            "payload": d.payload,
            "propensity": d.propensity,
            "weights_version": d.weights_version,
            "in_experiment": d.in_experiment,
            "feature": d.feature,
        }
        expected = {name: answer.get(name) for name in seen}
        assert seen == expected, body
        # Inside a unit trial a returning unit's answer names its trial's id; otherwise the ids are the same.
        if not (d.in_experiment and d.trial == "unit" and body.get("unit") is not None):
            assert d.decision_id == answer["decision_id"], body
        if d.in_experiment:
            log = local.log
            assert log is not None and log.decision_id == d.decision_id and log.arm == d.arm
            assert (log.experiment, log.unit, log.propensity, log.weights_version) == (
                d.experiment,
                body.get("unit"),
                d.propensity,
                d.weights_version,
            )
            assert log.attributes == body.get("attributes", {})
            # What the SDK sends is valid wire data for POST /v1/decisions/log.
            assert msgspec.json.decode(msgspec.json.encode(log), type=LoggedDecisionIn) == log
        else:
            assert local.log is None and d.decision_id is not None and d.decision_id.startswith("out_")
        return answer, local


@pytest.fixture
def pair() -> Iterator[Pair]:
    """The app on the in-memory twin with an id factory the test restarts, and an evaluator beside it."""
    ids = SwitchableIds()
    app = create_app(TEST_SETTINGS, storage=MemoryStorage(), clock=FakeClock(), ids=ids)
    with api_client(app) as client:
        yield Pair(client, ids)


def put_feature(client: TestClient[Litestar], key: str, default: Any) -> None:
    response = client.put(f"/v1/features/{key}", json={"default_payload": default})
    assert response.status_code == 201, response.text


def weighted(*weights: float) -> list[dict[str, Any]]:
    """Arms a, b, c... with fixed weights and a payload each."""
    return [{"name": chr(ord("a") + i), "weight": w, "payload": {"arm": i}} for i, w in enumerate(weights)]


UNITS = [f"user-{i}" for i in range(200)]


def test_targeting_and_partial_exposure_place_every_unit_and_every_draw_as_the_service_does(pair: Pair) -> None:
    started(
        pair.client,
        "exp",
        arms=weighted(0.2, 0.3, 0.5),
        policy={"kind": "fixed"},
        exposure=0.6,
        targeting={"language": {"$in": ["hi", "bn"]}, "tier": {"$gte": 2}},
    )
    pair.load()
    inside = 0
    for i, unit in enumerate(UNITS):
        attributes = {"language": ["hi", "bn", "de"][i % 3], "tier": i % 4}
        answer, _ = pair.agree(experiment="exp", unit=unit, attributes=attributes)
        inside += answer["in_experiment"]
        pair.agree(experiment="exp", attributes=attributes)  # unit-less: keyed by the decision id
    for unit in UNITS[:50]:  # returning units: the sticky arm, on both sides
        pair.agree(experiment="exp", unit=unit, attributes={"language": "hi", "tier": 3})
    assert 0 < inside < len(UNITS)  # both admission outcomes were compared


def test_namespace_slices_split_units_between_experiments_as_the_service_does(pair: Pair) -> None:
    started(pair.client, "left", namespace={"name": "ns", "start": 0.0, "end": 0.5}, exposure=0.8)
    started(pair.client, "right", namespace={"name": "ns", "start": 0.5, "end": 1.0}, trial="decision")
    pair.load()
    inside = {"left": 0, "right": 0}
    for unit in UNITS:
        for key in inside:
            answer, _ = pair.agree(experiment=key, unit=unit)
            inside[key] += answer["in_experiment"]
        pair.agree(experiment="left")
    assert all(0 < n < len(UNITS) for n in inside.values()), inside


def test_paused_and_completed_experiments_serve_the_control_or_the_winner(pair: Pair) -> None:
    started(pair.client, "paused", arms=weighted(0.5, 0.5), policy={"kind": "fixed"})
    assert pair.client.post("/v1/experiments/paused/pause").status_code == 200
    started(pair.client, "won", arms=weighted(0.5, 0.5), policy={"kind": "fixed"})
    assert pair.client.post("/v1/experiments/won/complete", json={"winner": "b"}).status_code == 200
    started(pair.client, "kept", control="b")
    assert pair.client.post("/v1/experiments/kept/complete", json={}).status_code == 200
    pair.load()
    for unit in UNITS[:40]:
        for key, arm in (("paused", "a"), ("won", "b"), ("kept", "b")):
            answer, _ = pair.agree(experiment=key, unit=unit)
            assert answer["arm"] == arm and not answer["in_experiment"]
    pair.agree(experiment="won")


def test_a_feature_is_served_by_its_first_experiment_that_takes_the_unit_else_its_default(pair: Pair) -> None:
    put_feature(pair.client, "nmt", {"model": "base"})
    started(pair.client, "hi-half", feature="nmt", priority=0, exposure=0.5, targeting=NMT_HI)
    started(pair.client, "pro-winner", feature="nmt", priority=1, targeting={"tier": "pro"})
    assert pair.client.post("/v1/experiments/pro-winner/complete", json={"winner": "b"}).status_code == 200
    started(pair.client, "paused-one", feature="nmt", priority=2)
    assert pair.client.post("/v1/experiments/paused-one/pause").status_code == 200
    started(pair.client, "b-third", feature="nmt", priority=3, exposure=0.3, targeting={"task_type": "nmt"})
    started(pair.client, "a-third", feature="nmt", priority=3, exposure=0.3, targeting={"task_type": "nmt"})
    draft = pair.client.post("/v1/experiments", json=experiment_body("draft-one", feature="nmt", priority=-1))
    assert draft.status_code == 201
    put_feature(pair.client, "empty", {"model": "none"})
    pair.load()
    served: dict[str | None, int] = {}
    attribute_sets = [NMT_HI, {**NMT_HI, "tier": "pro"}, {"task_type": "nmt", "language": "de"}, {"task_type": "asr"}]
    for i, unit in enumerate(UNITS):
        attributes = attribute_sets[i % len(attribute_sets)]
        answer, _ = pair.agree(feature="nmt", unit=unit, attributes=attributes)
        served[answer["experiment"]] = served.get(answer["experiment"], 0) + 1
        pair.agree(feature="nmt", attributes=attributes)
    pair.agree(feature="empty", unit="u1")
    # Every rule was exercised: each experiment that can serve did, and some units got the default.
    assert set(served) == {"hi-half", "pro-winner", "a-third", "b-third", None}, served


def test_a_reweight_moves_new_units_locally_as_on_the_service_and_returning_units_keep_their_arm(pair: Pair) -> None:
    started(pair.client, "exp", arms=weighted(0.5, 0.5), policy={"kind": "fixed"}, trial="decision")
    pair.load()
    before = {unit: pair.agree(experiment="exp", unit=unit)[0]["arm"] for unit in UNITS}
    response = pair.client.put("/v1/experiments/exp/weights", json={"weights": {"a": 0.1, "b": 0.9}})
    assert response.status_code == 200, response.text
    pair.load()
    moved = 0
    for unit in UNITS:
        answer, local = pair.ask(experiment="exp", unit=unit)
        assert local.decision.arm == answer["arm"] == before[unit]
        assert local.log is not None and local.log.weights_version == answer["weights_version"] == 2
    for i in range(200):  # new units: placed under the new weights on both sides
        answer, local = pair.agree(experiment="exp", unit=f"new-{i}")
        moved += answer["arm"] == "b"
    assert moved > 150


def test_a_non_sticky_experiment_places_returning_units_by_the_current_weights(pair: Pair) -> None:
    started(pair.client, "loose", arms=weighted(0.5, 0.5), policy={"kind": "fixed"}, sticky=False)
    pair.load()
    for unit in UNITS[:50]:
        pair.agree(experiment="loose", unit=unit)
    assert len(pair.store) == 0
    response = pair.client.put("/v1/experiments/loose/weights", json={"weights": {"a": 0.01, "b": 0.99}})
    assert response.status_code == 200, response.text
    pair.load()
    for unit in UNITS[:50]:
        pair.agree(experiment="loose", unit=unit)


def test_unknown_keys_and_an_empty_evaluator_answer_none(pair: Pair) -> None:
    assert pair.evaluator.decide(experiment="exp", unit="u1") is None and pair.evaluator.version is None
    started(pair.client, "exp")
    definitions = pair.load()
    assert pair.evaluator.version == definitions.version
    assert pair.evaluator.decide(experiment="nope", unit="u1") is None
    assert pair.evaluator.decide(feature="nope", unit="u1") is None
    with pytest.raises(ValueError, match="not both"):
        pair.evaluator.decide(experiment="exp", feature="f")
    with pytest.raises(ValueError, match="the experiment or the feature"):
        pair.evaluator.decide(unit="u1")
