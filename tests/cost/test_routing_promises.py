"""The LLM routing actuator under the three promises, through the real loop: weights in a
real Redis, the ledger in SQLite. Nothing is written to a route while the kill switch is
engaged or the allow-list does not name it, and weights the route refuses are sent once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from jarvis.actuators.llm.routing import RoutingActuator
from jarvis.app import App, build_app
from jarvis.config import load_settings
from jarvis.config.cost import RouteSettings, RoutingSettings
from jarvis.loop.clock import VirtualClock
from jarvis.model import Action, ResourceRef, SetWeights
from tests.cost.builders import NOW
from tests.fakes import ProposeEach

pytestmark = pytest.mark.anyio

CONFIGURED = {"gpt-4o": 0.6, "gemini": 0.2, "claude": 0.2}
ROUTING = RoutingSettings(enabled=True, routes={"chat": RouteSettings(weights=CONFIGURED)})
CHAT = ResourceRef("route", "chat", "route")
ALLOW_ROUTES = [{"provider": "route", "resources": "*", "actions": ["set_weights"]}]
#: Within the guard's bounds (sums to 1, moves 0.2): only the route can refuse it.
CHEAPER = {"gpt-4o": 0.4, "gemini": 0.4, "claude": 0.2}

Build = Callable[..., Awaitable[App]]


@pytest.fixture
async def build(sqlite_url: str, redis_url: str) -> AsyncIterator[Build]:
    """Apps proposing ``weights`` for the chat route every tick, each closed at the end."""
    apps: list[App] = []

    async def factory(weights: dict[str, float], **settings: Any) -> App:
        clock = VirtualClock(NOW)
        routing = RoutingActuator.from_settings(ROUTING, clock=clock, redis_url=redis_url)
        policy = ProposeEach([Action(CHAT, SetWeights(weights), "cost", "cheaper")])
        app = await build_app(
            load_settings(database_url=sqlite_url, **settings),
            clock=clock,
            actuators=[routing],
            policies=[policy],
            run_id="routing",
        )
        apps.append(app)
        return app

    yield factory
    for app in apps:
        await app.aclose()


async def weights(raw: aioredis.Redis) -> dict[str, str]:
    stored = await raw.hgetall("jarvis:route:chat")
    return {str(field): str(value) for field, value in stored.items()}


async def test_an_engaged_kill_switch_writes_no_weights(build: Build, raw: aioredis.Redis) -> None:
    """Proposed and recorded as blocked; the route's hash stays as it was seeded."""
    app = await build(CHEAPER, allowlist=ALLOW_ROUTES)
    await app.killswitch.set(engaged=True, actor="cli:ops", reason="incident")

    report = await app.reconciler.tick()

    assert [d.verdict.reason for d in report.decisions] == ["killswitch"]
    seeded = await weights(raw)
    assert {m: float(w) for m, w in seeded.items() if not m.startswith("_")} == CONFIGURED
    assert seeded["_version"] == "1"
    assert await app.store.events(kinds=["action.started"]) == []


async def test_the_default_allow_list_writes_no_weights(build: Build, raw: aioredis.Redis) -> None:
    """The default allow-list names the simulated fleet only: route:// is denied."""
    app = await build(CHEAPER)

    report = await app.reconciler.tick()

    assert [d.verdict.reason for d in report.decisions] == ["allowlist"]
    assert (await weights(raw))["_version"] == "1"
    assert await app.store.events(kinds=["action.started"]) == []


async def test_weights_the_route_refuses_are_sent_once_escalated_once_and_quarantined(
    build: Build, raw: aioredis.Redis
) -> None:
    """A model the route does not allow is a terminal refusal: one attempt, one escalation,
    and the pair quarantined for every later tick, across a restart."""
    refused = {"gpt-4o": 0.6, "gemini": 0.2, "mistral": 0.2}
    app = await build(refused, allowlist=ALLOW_ROUTES)
    for _ in range(4):
        await app.reconciler.tick()
        app.reconciler.clock.advance(60)  # type: ignore[attr-defined]  # a VirtualClock
    await app.aclose()
    again = await build(refused, allowlist=ALLOW_ROUTES)
    report = await again.reconciler.tick()

    assert [d.verdict.reason for d in report.decisions] == ["quarantine"]
    assert len(await again.store.events(kinds=["action.started"], limit=10)) == 1
    (escalated,) = await again.store.events(kinds=["action.escalated"], limit=10)
    assert escalated.resource == "route://chat"
    assert (await weights(raw))["_version"] == "1"
