"""?segment=attribute: every figure split by a decision attribute's values, checked against what was sent."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bandit_service.app import runtime_of
from tests.service.api import call, started
from tests.service.traffic import drive

LANGUAGES = np.array(["en", "fr", "de"])
SHARES = [0.6, 0.35, 0.05]
DEFAULT = 0.0


def attributes_of(i, rng):
    if i % 50 == 49:
        return {"country": "nl"}  # no language: the "(none)" segment
    return {"language": str(rng.choice(LANGUAGES, p=SHARES)), "country": "nl"}


def reward_of(arm, rng):
    return float(rng.random() < (0.3 if arm == "a" else 0.35))


def metrics_of(arm, rng):
    return {"latency_ms": float(rng.lognormal(5.0, 0.4)), "error": float(rng.random() < 0.03)}


@pytest.fixture
def segmented(client, clock):
    """1,500 units with a language attribute; 10% of decisions never rewarded, then their windows close."""
    started(client, "seg", policy={"kind": "fixed"}, reward_window_s=3_600)
    rng = np.random.default_rng(99)
    sent = drive(
        client, "seg", 1_500, rng, reward_of, metrics_of, attributes_of, rewarded=lambda a, r: r.random() > 0.1
    )
    clock.advance(3_601)
    expired = call(client, runtime_of(client.app).services.rewards.expire_pending, clock.time())
    assert expired == sum(s.reward is None for s in sent) > 100
    return client, sent


def _language(s):
    return s.attributes.get("language", "(none)")


def test_each_segment_counts_exactly_what_was_sent(segmented):
    client, sent = segmented
    response = client.get("/v1/experiments/seg/report?segment=language")
    assert response.status_code == 200, response.text[:500]
    report = response.json()
    assert report["attribute"] == "language"
    assert [s["value"] for s in report["segments"]] == sorted(["(none)", "de", "en", "fr"])
    for entry in report["segments"]:
        mine = [s for s in sent if _language(s) == entry["value"]]
        for arm in entry["report"]["primary"]["arms"]:
            cell = [s for s in mine if s.arm == arm["arm"]]
            rewards = [s.reward if s.reward is not None else DEFAULT for s in cell]
            assert arm["trials"] == arm["units"] == len(cell)
            assert arm["rewarded"] == sum(s.reward is not None for s in cell)
            assert arm["n"] == len(cell)  # rewarded plus expired (at the default reward)
            assert arm["mean"] == pytest.approx(np.mean(rewards), rel=1e-12)
        latency = next(m for m in entry["report"]["metrics"] if m["name"] == "latency_ms")
        for arm in latency["arms"]:
            values = np.array([s.metrics["latency_ms"] for s in mine if s.arm == arm["arm"] and s.metrics])
            assert arm["n"] == values.size
            assert arm["mean"] == pytest.approx(values.mean(), rel=1e-12)
        for op in entry["report"]["operational"]:
            values = np.sort([s.metrics["latency_ms"] for s in mine if s.arm == op["arm"] and s.metrics])
            q = op["quantiles"]["latency_ms"]
            exact = values[math.floor(0.95 * (values.size - 1))]
            assert q["count"] == values.size and abs(q["p95"] - exact) <= 0.01 * exact * (1 + 1e-9)
            assert op["pending"] == 0


def test_segments_add_up_to_the_whole_and_small_ones_say_so(segmented):
    client, _ = segmented
    whole = client.get("/v1/experiments/seg/report").json()
    parts = client.get("/v1/experiments/seg/report?segment=language").json()["segments"]
    for i, arm in enumerate(whole["primary"]["arms"]):
        for field in ("trials", "rewarded", "n", "units"):
            assert sum(p["report"]["primary"]["arms"][i][field] for p in parts) == arm[field]
    by_value = {p["value"]: p for p in parts}
    assert by_value["de"]["too_small"] and "too small" in by_value["de"]["note"]
    assert by_value["de"]["report"]["recommendation"]["action"] == "keep_running"
    assert not by_value["en"]["too_small"]
    # The period weights are the experiment's, so a segment's sample-ratio check is against them too.
    assert by_value["en"]["report"]["health"]["srm"]["expected"][0] == pytest.approx(
        by_value["en"]["report"]["health"]["srm"]["expected"][1]
    )
    text = client.get("/v1/experiments/seg/report?segment=language&format=text")
    assert text.status_code == 200
    for value in ("en", "fr", "de", "(none)"):
        assert f"######## language = {value} ########" in text.text


def test_segment_values_of_every_json_type_are_named_by_their_text(client):
    started(client, "types")
    values = ["x", True, 3, 2.5, "3"]
    drive(
        client,
        "types",
        100,
        np.random.default_rng(3),
        lambda a, r: 1.0,
        attributes_of=lambda i, r: {"v": values[i % 5]},
    )
    report = client.get("/v1/experiments/types/report?segment=v").json()
    counts = {s["value"]: sum(a["trials"] for a in s["report"]["primary"]["arms"]) for s in report["segments"]}
    # The number 3 and the string "3" read the same, so they form one segment.
    assert counts == {"x": 20, "true": 20, "3": 40, "2.5": 20}


def test_an_attribute_no_decision_has_is_one_segment_of_everything(segmented):
    client, sent = segmented
    report = client.get("/v1/experiments/seg/report?segment=browser").json()
    assert [s["value"] for s in report["segments"]] == ["(none)"]
    arms = report["segments"][0]["report"]["primary"]["arms"]
    assert sum(a["trials"] for a in arms) == len(sent)
