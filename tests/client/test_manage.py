"""The management calls (`Management`, `AsyncManagement`) against the real app in-process, and their errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from bandit_service.app import create_app
from bandit_service.client.manage import AsyncManagement, BanditError, Management, SpecError
from bandit_service.clock import FakeClock
from bandit_service.core.reporting.values import Report, SegmentReport
from bandit_service.ids import sequential_ids
from bandit_service.storage.memory import MemoryStorage
from tests.service.api import TEST_SETTINGS, api_client, decide, experiment_body, reward


@pytest.fixture
def client() -> Iterator[TestClient[Litestar]]:
    """The app on the in-memory twin, with its lifespan running (a sync httpx.Client over ASGI)."""
    app = create_app(TEST_SETTINGS, storage=MemoryStorage(), clock=FakeClock(), ids=sequential_ids("m"))
    with api_client(app) as test_client:
        yield test_client


@pytest.fixture
def manage(client: TestClient[Litestar]) -> Management:
    return Management(client)


def test_the_lifecycle_from_a_spec_dict(manage: Management) -> None:
    made = manage.create(experiment_body("life"))
    assert (made["key"], made["status"]) == ("life", "draft")
    assert manage.start("life")["status"] == "active"
    assert [e["key"] for e in manage.list("active")] == ["life"]
    assert manage.list("draft") == []
    assert manage.get("life")["stats"]["a"]["units"] == 0
    assert manage.reweight("life")["version"] == 2
    assert manage.pause("life")["status"] == "paused"
    done = manage.complete("life", "b")
    assert (done["status"], done["winner"]) == ("completed", "b")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        pytest.param("exp.yaml", "key: from-file\nname: A\narms:\n  - {name: a}\n  - {name: b}\n", id="yaml"),
        pytest.param("exp.yml", "key: from-file\nname: A\narms: [{name: a}, {name: b}]\n", id="yml"),
        pytest.param(
            "exp.toml", 'key = "from-file"\nname = "A"\n[[arms]]\nname = "a"\n[[arms]]\nname = "b"\n', id="toml"
        ),
        pytest.param("exp.json", json.dumps(experiment_body("from-file")), id="json"),
    ],
)
def test_create_reads_yaml_toml_and_json_files(manage: Management, tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    made = manage.create(path)
    assert made["key"] == "from-file" and [a["name"] for a in made["arms"]] == ["a", "b"]


def test_create_takes_a_path_as_a_string(manage: Management, tmp_path: Path) -> None:
    (tmp_path / "e.yaml").write_text("key: as-text\nname: A\narms: [{name: a}, {name: b}]\n")
    assert manage.create(str(tmp_path / "e.yaml"))["key"] == "as-text"


def test_a_yaml_time_reaches_the_service_as_rfc_3339(manage: Management, tmp_path: Path) -> None:
    """YAML and TOML decode times into datetimes; the body still encodes (msgspec) and the service takes it."""
    (tmp_path / "e.yaml").write_text(
        "key: ends\nname: A\narms: [{name: a}, {name: b}]\nends_at: 2030-01-01T00:00:00Z\n"
    )
    assert manage.create(tmp_path / "e.yaml")["ends_at"] == "2030-01-01T00:00:00Z"


def test_changes_exposure_weights_ramp_completion_events(manage: Management) -> None:
    manage.create(experiment_body("ops", policy={"kind": "fixed"}))
    manage.start("ops")
    assert manage.patch("ops", {"description": "new words"})["description"] == "new words"
    assert manage.set_exposure("ops", 0.4)["exposure"] == 0.4
    record = manage.set_weights("ops", {"a": 0.25, "b": 0.75}, rebalance=True)
    assert record["weights"] == {"a": 0.25, "b": 0.75} and record["moved"] == 0.0
    assert [h["version"] for h in manage.weights_history("ops")] == [1, 2]
    ramp = manage.set_ramp("ops", [(0.5, 3600), {"exposure": 1.0}])
    assert ramp["status"] == "running" and manage.ramp("ops")["steps"][0] == {"exposure": 0.5, "hold_s": 3600}
    assert manage.cancel_ramp("ops")["status"] == "cancelled"
    manage.complete("ops", "b", plan=[(0.5, 60), (1.0, None)])
    assert manage.completion("ops")["winner"] == "b"
    assert manage.cancel_completion("ops")["status"] == "cancelled"
    page = manage.events("ops", limit=3)
    assert [e["action"] for e in page["events"]] == ["create", "start", "update"] and page["next_after"] == 3
    assert manage.events("ops", after=page["next_after"])["events"][0]["id"] == 4


def test_the_report_is_typed_with_nan_where_json_has_null(client: TestClient[Litestar], manage: Management) -> None:
    manage.create(experiment_body("rep"))
    manage.start("rep")
    for unit in ("u1", "u2", "u3"):
        reward(client, decide(client, "rep", unit=unit)["decision_id"], 1.0)
    report = manage.report("rep")
    assert isinstance(report, Report) and report.arms == ("a", "b")
    assert sum(a.units for a in report.primary.arms) == 3
    raw = manage.report_json("rep")
    # an arm with fewer than two observations has no standard deviation: null on the wire, NaN typed
    nulls = [i for i, arm in enumerate(raw["primary"]["arms"]) if arm["sd"] is None]
    assert nulls and all(math.isnan(report.primary.arms[i].sd) for i in nulls)
    assert report.operational[0].error_rate is None  # a field that may be null stays None
    assert raw["control"] == "a" and isinstance(raw["primary"], dict)
    assert manage.report_text("rep").startswith("Experiment report: 2 arms")
    segments = manage.segment_report("rep", "lang")
    assert isinstance(segments, SegmentReport) and segments.attribute == "lang"
    assert "Segments by lang" in manage.report_text("rep", segment="lang")


def test_keys_over_http(manage: Management) -> None:
    made = manage.create_key("ci-bot", "read")
    assert made["key"].startswith("bsk_") and made["role"] == "read"
    assert {k["name"] for k in manage.list_keys()} == {"admin", "ci-bot"}
    assert manage.revoke_key("ci-bot")["name"] == "ci-bot"
    assert {k["name"] for k in manage.list_keys()} == {"admin"}


def test_features(manage: Management) -> None:
    assert manage.put_feature("nmt", {"model": "base"}, description="translation")["default_payload"] == {
        "model": "base"
    }
    assert [f["key"] for f in manage.list_features()] == ["nmt"]
    assert manage.feature("nmt")["experiments"] == []
    assert manage.delete_feature("nmt")["key"] == "nmt"
    assert manage.list_features() == []


@pytest.mark.parametrize(
    ("call", "status", "field", "line"),
    [
        pytest.param(
            lambda m: m.start("missing"),
            404,
            "key",
            "404: no experiment with key 'missing' (field: key)",
            id="unknown-experiment",
        ),
        pytest.param(
            lambda m: m.create(experiment_body("bad", exposure=2)),
            422,
            "exposure",
            "422: Expected `float` <= 1.0 - at `$.exposure` (field: exposure)",
            id="bad-field",
        ),
        pytest.param(lambda m: m.ramp("missing"), 404, "key", None, id="ramp-of-unknown"),
        pytest.param(lambda m: m.feature("missing"), 404, "key", None, id="unknown-feature"),
    ],
)
def test_a_refusal_is_one_bandit_error_naming_status_detail_and_field(manage, call, status, field, line) -> None:
    with pytest.raises(BanditError) as caught:
        call(manage)
    error = caught.value
    assert (error.status, error.field, error.problem["status"]) == (status, field, status)
    assert "\n" not in str(error)
    if line is not None:
        assert str(error) == line


@pytest.mark.parametrize(
    ("key", "status"),
    [pytest.param("x?status=active", 404, id="query"), pytest.param("x/report", None, id="slash")],
)
def test_a_key_stays_one_path_segment(manage: Management, key: str, status: int | None) -> None:
    """A key cannot reach another route or add a query: `?` is quoted, a slash refused before sending."""
    with pytest.raises(BanditError) as caught:
        manage.get(key)
    assert caught.value.status == status and caught.value.field == "key"


def test_an_unreachable_service_is_a_bandit_error() -> None:
    unreachable = pytest.raises(BanditError, match=r"^cannot reach the service at http://127.0.0.1:9")
    with httpx.Client(base_url="http://127.0.0.1:9", timeout=2.0) as http, unreachable as caught:
        Management(http).list()
    assert caught.value.status is None


def _answering(status: int, body: bytes, content_type: str = "text/html") -> httpx.Client:
    transport = httpx.MockTransport(
        lambda request: httpx.Response(status, content=body, headers={"content-type": content_type})
    )
    return httpx.Client(transport=transport, base_url="http://proxy")


def test_a_refusal_without_a_problem_detail_is_one_line_of_its_text() -> None:
    with _answering(502, b"<html>\n<body>Bad gateway</body>\n</html>") as http, pytest.raises(BanditError) as caught:
        Management(http).list()
    assert str(caught.value) == "502: <html> <body>Bad gateway</body> </html>"


def test_an_answer_that_is_not_json_is_a_bandit_error() -> None:
    with _answering(200, b"<html>hello</html>") as http, pytest.raises(BanditError, match="not JSON"):
        Management(http).get("x")


def test_an_answer_of_another_service_is_a_bandit_error() -> None:
    other = pytest.raises(BanditError, match="no 'experiments': is the URL a bandit service")
    with _answering(200, b'{"hello": 1}', "application/json") as http, other:
        Management(http).list()


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        pytest.param("missing.yaml", None, "missing.yaml: no such file", id="missing"),
        pytest.param("bad.yaml", "key: x\narms: [a, b\nname: y\n", "not valid YAML at line 3", id="yaml-line"),
        pytest.param(
            "dup.yaml",
            "key: x\nname: y\nkey: z\n",
            "not valid YAML at line 3, column 1: duplicate key 'key'",
            id="yaml-duplicate",
        ),
        pytest.param("bad.toml", 'key = "x"\nname = \n', "not valid TOML at line 2", id="toml-line"),
        pytest.param("bad.json", '{"key": "x",\n "name": }', "not valid JSON at line 2", id="json-line"),
        pytest.param("dup.json", '{"key": "x", "key": "y"}', "duplicate key 'key'", id="json-duplicate"),
        pytest.param("list.yaml", "- a\n- b\n", "a spec is a mapping of fields", id="not-a-mapping"),
        pytest.param("empty.yaml", "", "this file holds nothing", id="empty"),
        pytest.param("spec.txt", "key: x\n", "unknown spec format '.txt'", id="unknown-suffix"),
    ],
)
def test_a_spec_that_cannot_be_read_is_one_line_naming_the_file(manage, tmp_path, name, text, message) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(SpecError) as caught:
        manage.create(path)
    line = str(caught.value)
    assert isinstance(caught.value, BanditError) and caught.value.status is None
    assert message in line and str(path) in line and "\n" not in line


def test_the_sdk_imports_neither_numpy_nor_yaml_until_asked() -> None:
    """`import bandit_service.client.manage` stays light: the typed report and YAML load on use."""
    code = (
        "import sys, bandit_service.client.manage, bandit_service.client.specs; "
        "print(sorted(m for m in ('numpy', 'scipy', 'yaml', 'litestar', 'sqlalchemy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# AsyncManagement runs on the app's own event loop (its writer and storage live there), through
# an AsyncClient over the same ASGI app.
def run_async(client: TestClient[Litestar], scenario) -> object:
    async def go() -> object:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=client.headers) as http:
            return await scenario(AsyncManagement(http))

    return client.blocking_portal.call(go)


def test_async_management_drives_the_same_calls(client: TestClient[Litestar], tmp_path: Path) -> None:
    (tmp_path / "e.yaml").write_text("key: async-exp\nname: A\narms: [{name: a}, {name: b}]\npolicy: {kind: fixed}\n")

    async def scenario(manage: AsyncManagement) -> object:
        made = await manage.create(tmp_path / "e.yaml")
        await manage.start("async-exp")
        listed = await manage.list("active")
        weights = await manage.set_weights("async-exp", {"a": 0.2, "b": 0.8})
        exposure = await manage.set_exposure("async-exp", 0.5)
        ramp = await manage.set_ramp("async-exp", [(0.6, 60), (1.0, None)])
        report = await manage.report("async-exp")
        text = await manage.report_text("async-exp")
        paused = await manage.pause("async-exp")
        events = await manage.events("async-exp")
        return made, listed, weights, exposure, ramp, report, text, paused, events

    made, listed, weights, exposure, ramp, report, text, paused, events = run_async(client, scenario)  # type: ignore[misc]
    assert made["status"] == "draft" and [e["key"] for e in listed] == ["async-exp"]
    assert weights["weights"] == {"a": 0.2, "b": 0.8} and exposure["exposure"] == 0.5
    assert ramp["exposure"] == 0.6 and isinstance(report, Report) and text.startswith("Experiment report")
    assert paused["status"] == "paused" and events["events"][0]["action"] == "create"


def test_async_management_raises_the_same_errors(client: TestClient[Litestar]) -> None:
    async def scenario(manage: AsyncManagement) -> object:
        with pytest.raises(BanditError) as caught:
            await manage.start("missing")
        return caught.value

    error = run_async(client, scenario)
    assert str(error) == "404: no experiment with key 'missing' (field: key)"


async def _unreachable() -> BanditError:
    async with httpx.AsyncClient(base_url="http://127.0.0.1:9", timeout=2.0) as http:
        with pytest.raises(BanditError) as caught:
            await AsyncManagement(http).list()
    return caught.value


def test_async_management_reports_an_unreachable_service() -> None:
    import asyncio

    error = asyncio.run(_unreachable())
    assert str(error).startswith("cannot reach the service at http://127.0.0.1:9")
