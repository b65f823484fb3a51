"""The client snippets proposed for the README, executed as written against the real service over HTTP.

The service runs under uvicorn in a thread (`bandit_service.demo_server`, the demo's); only its URL
and keys are put into the text.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator

import httpx
import pytest

from bandit_service.demo_server import DemoServer, demo_server

SETUP = textwrap.dedent(
    """
    from bandit_service.client import BanditClient

    with BanditClient("http://127.0.0.1:8000", api_key="ADMIN-KEY") as client:
        client.manage.create({
            "key": "checkout-button",
            "name": "Checkout button colour",
            "arms": [{"name": "blue", "payload": {"color": "#1f6feb"}},
                     {"name": "green", "payload": {"color": "#2da44e"}}],
        })
        client.manage.start("checkout-button")
    """
)

SNIPPET = textwrap.dedent(
    """
    from bandit_service.client import BanditClient, Fallback

    with BanditClient(
        "http://127.0.0.1:8000",
        api_key="DECIDE-KEY",
        fallbacks={"checkout-button": Fallback(arm="blue", payload={"color": "#1f6feb"})},
    ) as client:
        decision = client.decide(experiment="checkout-button", unit="user-42", attributes={"country": "de"})
        color = decision.payload["color"]  # always usable: the service's arm, or the fallback if it is away
        client.reward(decision, 1.0, metrics={"latency_ms": 12.0})  # queued, sent in the background
    print(decision.arm, decision.source, client.stats.sent)
    """
)

ASYNC_SNIPPET = textwrap.dedent(
    """
    import asyncio
    from bandit_service.client import AsyncBanditClient

    async def main() -> None:
        async with AsyncBanditClient("http://127.0.0.1:8000", api_key="DECIDE-KEY", local=True) as client:
            decision = await client.decide(experiment="checkout-button", unit="user-7")  # in-process
            client.reward(decision, 0.0)  # not awaited: it only queues
        print(decision.arm, decision.source, client.stats.logged_decisions, client.stats.sent)

    asyncio.run(main())
    """
)


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
    run(SETUP, server)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.api_key}"}) as admin:
        key = admin.post("/v1/keys", json={"name": "checkout", "role": "decide"}).json()["key"]
    arm, source, sent = run(SNIPPET, server, key, capsys).split()
    assert (arm in ("blue", "green"), source, sent) == (True, "service", "1")
    arm, source, logged, sent = run(ASYNC_SNIPPET, server, key, capsys).split()
    assert (source, logged, sent) == ("local", "1", "1")
    counted = stats(server)
    assert sum(a["rewarded"] for a in counted.values()) == 2
    assert sum(a["local"] for a in counted.values()) == 1
