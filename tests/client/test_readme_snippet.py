"""The README's client snippets, read from README.md and executed as written against the real service over HTTP.

The service runs under uvicorn in a thread (`bandit_service.demo.server`, the demo's); only its URL
and keys are put into the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bandit_service.demo.server import DemoServer, demo_server

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks(section: str) -> list[str]:
    """The ```python blocks of a README section (from its `## ` heading to the next one), as written."""
    text = README.read_text()
    body = text[text.index(f"## {section}\n") :]
    body = body[: body.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", body, flags=re.DOTALL)


def block_with(section: str, marker: str) -> str:
    """The one block of the section that contains `marker`."""
    (found,) = [block for block in python_blocks(section) if marker in block]
    return found


SETUP = block_with("Python client", "client.manage.create(")
SNIPPET = block_with("Python client", "Fallback(")
ASYNC_SNIPPET = block_with("Python client", "AsyncBanditClient(")


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    with demo_server() as running:
        yield running


def run(text: str, server: DemoServer, key: str | None = None, capsys: pytest.CaptureFixture[str] | None = None) -> str:
    """Execute a snippet with the server's URL and a key put in; what it printed."""
    code = text.replace("http://127.0.0.1:8000", server.url)
    code = code.replace("ADMIN-KEY", server.api_key).replace("DECIDE-KEY", key or server.api_key)
    exec(compile(code, "README.md", "exec"), {})  # the README's own text
    return capsys.readouterr().out if capsys is not None else ""


def stats(server: DemoServer) -> dict[str, dict[str, float]]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"}) as admin:
        experiment: dict[str, dict[str, dict[str, float]]] = admin.get("/v1/experiments/checkout-button").json()
    return experiment["stats"]


def test_the_readme_snippets(server: DemoServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(SETUP, server, capsys=capsys).split() == ["keep_running"]  # no traffic yet
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"}) as admin:
        key = admin.post("/v1/keys", json={"name": "checkout", "role": "decide"}).json()["key"]
    arm, source, sent = run(SNIPPET, server, key, capsys).split()
    assert (arm in ("blue", "green"), source, sent) == (True, "service", "1")
    arm, source, logged, sent = run(ASYNC_SNIPPET, server, key, capsys).split()
    assert (source, logged, sent) == ("local", "1", "1")
    counted = stats(server)
    assert sum(a["rewarded"] for a in counted.values()) == 2
    assert sum(a["local"] for a in counted.values()) == 1
