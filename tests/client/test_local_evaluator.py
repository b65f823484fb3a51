"""The local evaluator on its own: the sticky store's arm wins, loads swap whole, ids, logs, bad definitions.

Agreement with the service is in test_local_evaluation.py; these cases build `Definitions` by hand.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from typing import Any

import msgspec
import pytest

from bandit_service.client.local import LocalEvaluator, local_ids
from bandit_service.client.sticky import MemoryStickyStore
from bandit_service.core.assignment import choose_arm
from bandit_service.core.definitions import (
    ArmDefinition,
    Definitions,
    ExperimentDefinition,
    FeatureDefinition,
    LoggedDecisionIn,
)

SALT = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def experiment(key: str = "exp", **overrides: Any) -> ExperimentDefinition:
    fields: dict[str, Any] = {
        "key": key,
        "status": "active",
        "salt": SALT,
        "arms": [ArmDefinition(name="a", payload={"v": 1}), ArmDefinition(name="b", payload={"v": 2})],
        "control": "a",
        "weights": [0.5, 0.5],
        "weights_version": 1,
        "exposure": 1.0,
    }
    fields.update(overrides)
    return ExperimentDefinition(**fields)


def definitions(*experiments: ExperimentDefinition, features: tuple[FeatureDefinition, ...] = ()) -> Definitions:
    return Definitions(
        version=f"v{len(experiments)}", experiments=list(experiments), features=list(features), poll_interval_s=5.0
    )


def evaluator(*experiments: ExperimentDefinition, **kwargs: Any) -> LocalEvaluator:
    local = LocalEvaluator(**kwargs)
    local.load(definitions(*experiments))
    return local


def units_hashed_to(arm: int, weights: tuple[float, ...] = (0.5, 0.5), n: int = 1) -> list[str]:
    """Units the rendezvous hash places on `arm` (index) under `weights`."""
    found = [u for u in (f"user-{i}" for i in range(1_000)) if choose_arm(SALT, u, ("a", "b"), weights) == arm]
    return found[:n]


def test_the_stored_arm_wins_over_the_hash_at_its_current_weight() -> None:
    store = MemoryStickyStore()
    local = evaluator(experiment(weights=[0.3, 0.7]), sticky=store)
    unit = units_hashed_to(0, (0.3, 0.7))[0]
    store.set("exp", unit, "b")  # stored elsewhere (another process, an earlier weight)
    result = local.decide(experiment="exp", unit=unit)
    assert result is not None and result.log is not None
    assert (result.decision.arm, result.decision.payload, result.decision.propensity) == ("b", {"v": 2}, 0.7)
    assert (result.log.arm, result.log.propensity) == ("b", 0.7)
    assert store.get("exp", unit) == "b"


def test_a_new_unit_is_placed_by_the_hash_and_stored_and_keeps_its_arm_after_a_reweight() -> None:
    store = MemoryStickyStore()
    local = evaluator(experiment(), sticky=store)
    unit = units_hashed_to(0)[0]
    first = local.decide(experiment="exp", unit=unit)
    assert first is not None and first.decision.arm == "a" and store.get("exp", unit) == "a"
    local.load(definitions(experiment(weights=[0.0, 1.0], weights_version=2)))  # `a` now gets no new units
    again = local.decide(experiment="exp", unit=unit)
    assert again is not None and again.log is not None
    assert again.decision.arm == "a" and again.decision.weights_version == 2
    # A held arm has no current weight: the log still carries a valid propensity (the service keeps its own).
    assert again.log.propensity == 1.0
    assert msgspec.convert(msgspec.to_builtins(again.log), LoggedDecisionIn) == again.log
    fresh = local.decide(experiment="exp", unit="someone-new")
    assert fresh is not None and fresh.decision.arm == "b"


def test_a_stored_arm_the_experiment_no_longer_has_is_replaced_by_the_hash() -> None:
    store = MemoryStickyStore()
    store.set("exp", "u1", "gone")
    local = evaluator(experiment(), sticky=store)
    result = local.decide(experiment="exp", unit="u1")
    assert result is not None and result.decision.arm in ("a", "b")
    assert store.get("exp", "u1") == result.decision.arm


def test_unit_less_and_non_sticky_decisions_never_touch_the_store() -> None:
    store = MemoryStickyStore()
    local = evaluator(experiment(), experiment("loose", sticky=False), sticky=store)
    for _ in range(20):
        assert local.decide(experiment="exp") is not None
        assert local.decide(experiment="loose", unit="u1") is not None
    assert len(store) == 0


def test_outside_the_experiment_nothing_is_logged_and_nothing_stored() -> None:
    store = MemoryStickyStore()
    local = evaluator(
        experiment("paused", status="paused"),
        experiment("done", status="completed", winner="b"),
        experiment("nobody", exposure=0.0),
        sticky=store,
    )
    for key, arm in (("paused", "a"), ("done", "b"), ("nobody", "a")):
        result = local.decide(experiment=key, unit="u1", attributes={"tier": 1})
        assert result is not None and result.log is None
        d = result.decision
        assert (d.arm, d.in_experiment, d.propensity, d.source) == (arm, False, 1.0, "local")
        assert d.decision_id is not None and d.decision_id.startswith("out_")
    assert len(store) == 0


def test_the_log_carries_the_decision_and_a_copy_of_the_attributes() -> None:
    local = evaluator(experiment(trial="decision", weights_version=4))
    attributes = {"tier": 2, "language": "hi"}
    result = local.decide(experiment="exp", unit="u1", attributes=attributes)
    attributes["tier"] = 3  # the app's dict changes after the decision: the queued log must not
    assert result is not None and result.log is not None
    d, log = result.decision, result.log
    assert log == LoggedDecisionIn(
        decision_id=d.decision_id or "",
        experiment="exp",
        unit="u1",
        arm=d.arm or "",
        propensity=0.5,
        weights_version=4,
        attributes={"tier": 2, "language": "hi"},
    )
    assert (d.trial, d.source, d.in_experiment, d.feature) == ("decision", "local", True, None)


def test_a_feature_with_only_skipped_experiments_answers_its_default() -> None:
    feature = FeatureDefinition(key="f", default_payload={"model": "base"}, experiments=["paused", "missing"])
    local = LocalEvaluator()
    local.load(
        Definitions(
            version="v",
            experiments=[experiment("paused", status="paused", feature="f")],
            features=[feature],
            poll_interval_s=5.0,
        )
    )
    result = local.decide(feature="f", unit="u1")
    assert result is not None and result.log is None
    d = result.decision
    assert (d.experiment, d.arm, d.payload, d.feature, d.in_experiment) == (None, None, {"model": "base"}, "f", False)
    assert d.decision_id is not None and d.decision_id.startswith("out_")


def test_load_swaps_the_whole_snapshot_at_once_under_concurrent_decisions() -> None:
    # Two versions that differ in every field a decision reads: a mix of the two would show.
    old = definitions(experiment(weights_version=1, arms=[ArmDefinition(name=n, payload=n) for n in ("a", "b")]))
    new = Definitions(
        version="new",
        experiments=[
            experiment(
                weights_version=2,
                control="c",
                arms=[ArmDefinition(name=n, payload=n) for n in ("c", "d")],
            )
        ],
        features=[],
        poll_interval_s=5.0,
    )
    local = LocalEvaluator(sticky=MemoryStickyStore(max_units=50))
    local.load(old)
    seen: set[tuple[str | None, Any, int | None]] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def decide() -> None:
        try:
            i = 0
            while not stop.is_set():
                i += 1
                result = local.decide(experiment="exp", unit=f"u{i % 100}")
                assert result is not None
                d = result.decision
                seen.add((d.arm, d.payload, d.weights_version))
        except BaseException as exc:  # reported to the test thread, which fails on it
            errors.append(exc)

    threads = [threading.Thread(target=decide) for _ in range(3)]
    for thread in threads:
        thread.start()
    for i in range(300):
        local.load(new if i % 2 else old)
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert seen <= {("a", "a", 1), ("b", "b", 1), ("c", "c", 2), ("d", "d", 2)}, seen
    assert local.version == "new"  # the last load (i = 299)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        pytest.param(experiment(weights=[1.0]), "1 weights for 2 arms", id="weights-length"),
        pytest.param(experiment(weights=[0.0, 0.0]), "no arm has a positive weight", id="no-weight"),
        pytest.param(experiment(control="z"), "'z' .* is not one of its arms", id="control"),
        pytest.param(experiment(status="completed", winner="z"), "'z' .* is not one of its arms", id="winner"),
        pytest.param(
            experiment(arms=[ArmDefinition(name="a"), ArmDefinition(name="a")]), "arm names repeat", id="repeated"
        ),
        pytest.param(experiment(targeting={"tier": {"$gt": "x"}}), "targeting.tier.\\$gt", id="targeting"),
    ],
)
def test_an_experiment_this_sdk_cannot_evaluate_is_left_to_the_service_with_its_features(
    bad: ExperimentDefinition, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A newer service may send a targeting operator this SDK does not know: the experiment (and any
    # feature it serves) answers None, so the client asks the service; the rest still loads.
    bad = msgspec.structs.replace(bad, key="bad", feature="f")
    local = LocalEvaluator()
    features = (
        FeatureDefinition(key="f", experiments=["bad", "exp"]),
        FeatureDefinition(key="g", experiments=["good"]),
    )
    local.load(definitions(bad, experiment(), experiment("good", feature="g"), features=features))
    assert set(local.skipped) == {"bad", "f"} and re.search(message, local.skipped["bad"])
    assert local.decide(experiment="bad", unit="u1") is None and local.decide(feature="f", unit="u1") is None
    assert local.decide(experiment="exp", unit="u1") is not None and local.decide(feature="g", unit="u1") is not None
    assert "deciding it through the service" in caplog.text
    local.load(definitions(experiment()))
    assert local.skipped == {}


def test_default_ids_are_unique_valid_decision_ids_from_a_process_random_prefix() -> None:
    ids = local_ids()
    made = [ids() for _ in range(1_000)]
    assert len(set(made)) == 1_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in made)
    assert local_ids()()[:16] != made[0][:16]  # another factory, another prefix (64 random bits)


def test_the_module_imports_no_server_code() -> None:
    code = (
        "import sys, bandit_service.client.local, bandit_service.client.sticky\n"
        "heavy = ('numpy', 'scipy', 'litestar', 'sqlalchemy', 'sqlmodel', 'apscheduler', 'policies',"
        " 'bandit_service.core.model', 'bandit_service.ids', 'bandit_service.ports')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.strip() == "[]", out
