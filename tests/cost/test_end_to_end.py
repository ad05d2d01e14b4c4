"""Budget-driven routing through the real loop: usage in SQLite, weights in Redis.

Applications record usage; the `llm_usage` actuator reads it; the cost policy
proposes; the guard allows ``route://*``; the routing actuator writes Redis;
the application's `RoutingClient` picks models by the new weights. Virtual
time carries the fleet into a new month, where the configured weights return.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
import redis.asyncio as aioredis

from jarvis.actuators.llm.routing import RoutingActuator
from jarvis.actuators.llm.usage import LlmUsageActuator
from jarvis.app import App, build_app
from jarvis.config import load_settings
from jarvis.config.cost import CostSettings, ModelPrice, RouteSettings, RoutingSettings
from jarvis.loop.clock import VirtualClock
from jarvis.model import EventKind
from jarvis.policies.cost import CostPolicy
from jarvis.routing import NoWeightsError, RoutingClient, record_usage_async
from tests import actions as typed
from tests.cost.builders import NOW

pytestmark = pytest.mark.anyio

ROUTING = RoutingSettings(
    enabled=True,
    routes={"chat": RouteSettings(weights={"gpt-4o": 0.6, "gemini": 0.2, "claude": 0.2})},
)
COST = CostSettings(
    enabled=True,
    prices={
        "gpt-4o": ModelPrice(input_per_1k=0.0025, output_per_1k=0.01),
        "claude": ModelPrice(input_per_1k=0.0008, output_per_1k=0.004),
        "gemini": ModelPrice(input_per_1k=0.000075, output_per_1k=0.0003),
    },
)
SEED_SPEND = {"gpt-4o": 300.0, "gemini": 100.0, "claude": 50.0}


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(NOW)


@pytest.fixture
async def app(sqlite_url: str, redis_url: str, clock: VirtualClock) -> AsyncIterator[App]:
    settings = load_settings(
        database_url=sqlite_url,
        allowlist=[{"provider": "route", "resources": "*", "actions": ["set_weights"]}],
    )
    routing = RoutingActuator.from_settings(ROUTING, clock=clock, redis_url=redis_url)
    # The usage reader's own engine on the same database; the store migrates it on open.
    usage = LlmUsageActuator.from_settings(COST, clock=clock, database_url=sqlite_url)
    policy = CostPolicy.from_settings(COST, ROUTING, max_shift=settings.bounds.max_traffic_shift)
    built = await build_app(
        settings, clock=clock, actuators=[routing, usage], policies=[policy], run_id="cost"
    )
    try:
        yield built
    finally:
        await built.aclose()


async def test_seed_spend_shifts_traffic_and_a_new_month_restores_it(
    app: App, redis_url: str, clock: VirtualClock
) -> None:
    """$450 of $500 moves half of gpt-4o's traffic to gemini; July brings the old weights back."""
    for model, cost in SEED_SPEND.items():
        for hour in range(10):
            await record_usage_async(
                app.store.engine,
                route="chat",
                model=model,
                input_tokens=500,
                output_tokens=500,
                cost_usd=cost / 10,
                latency_ms=700,
                success=True,
                at=NOW - timedelta(hours=hour + 1),
            )

    report = await app.reconciler.tick()

    (decision,) = report.applied
    assert typed.weights(decision.action) == {"gpt-4o": 0.3, "gemini": 0.5, "claude": 0.2}
    assert "projected saving $" in decision.action.reason
    applied = await app.store.events(kinds=[EventKind.ACTION_APPLIED.value])
    assert [e.resource for e in applied] == ["route://chat"]
    assert applied[0].payload["params"]["weights"] == {"gpt-4o": 0.3, "gemini": 0.5, "claude": 0.2}
    (alert,) = await app.store.events(kinds=[EventKind.ALERT.value])
    assert "autonomous cost optimization applied" in (alert.reason or "")

    client = RoutingClient(redis_url, max_age=0)
    try:
        rng = random.Random(5)  # noqa: S311 - reproducible draws, not secrets
        picks = [client.choose("chat", rng) for _ in range(5000)]
        assert picks.count("gemini") / len(picks) == pytest.approx(0.5, abs=0.03)
        assert client.version("chat") == "2"

        # The next tick finds the weights in place and proposes nothing.
        assert (await app.reconciler.tick()).proposals == []

        clock.jump(datetime(2025, 7, 1, 0, 5, tzinfo=UTC))
        july = await app.reconciler.tick()
        (restore,) = july.applied
        assert typed.weights(restore.action) == {"gpt-4o": 0.6, "gemini": 0.2, "claude": 0.2}
        assert "configured weights" in restore.action.reason
        client.choose("chat")
        assert client.version("chat") == "3"
    finally:
        client.close()


async def test_a_route_whose_weights_were_zeroed_gets_its_configured_weights_back(
    app: App, redis_url: str
) -> None:
    """All-zero weights route no traffic: restoring them shifts none, so the guard lets it pass."""
    await app.reconciler.tick()  # seeds the configured weights
    client = RoutingClient(redis_url, max_age=0)
    operator = redis.Redis.from_url(redis_url)
    try:
        # An operator (or a script) zeroes every model: clients can choose none.
        operator.hset("jarvis:route:chat", mapping={"gpt-4o": 0, "gemini": 0, "claude": 0})
        with pytest.raises(NoWeightsError):
            client.choose("chat")

        report = await app.reconciler.tick()

        (restore,) = report.applied
        assert typed.weights(restore.action) == {"gpt-4o": 0.6, "gemini": 0.2, "claude": 0.2}
        client.choose("chat")
    finally:
        operator.close()
        client.close()


async def routing_hash(redis_url: str) -> dict[str, str]:
    """The chat route's hash as stored, fields and values as text."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        stored = await client.hgetall("jarvis:route:chat")
        return {str(k): str(v) for k, v in stored.items()}
    finally:
        await client.aclose()


async def test_a_restart_does_not_raise_the_budget_alert_again(
    app: App, sqlite_url: str, redis_url: str, clock: VirtualClock
) -> None:
    """A new process on the same store knows the month's stage was already alerted."""
    for model, cost in SEED_SPEND.items():
        await record_usage_async(
            app.store.engine,
            route="chat",
            model=model,
            input_tokens=500,
            output_tokens=500,
            cost_usd=cost,
            latency_ms=700,
            success=True,
            at=NOW - timedelta(hours=1),
        )
    await app.reconciler.tick()
    assert len(await app.store.events(kinds=[EventKind.ALERT.value])) == 1
    await app.aclose()
    clock.advance(60)

    settings = load_settings(
        database_url=sqlite_url,
        allowlist=[{"provider": "route", "resources": "*", "actions": ["set_weights"]}],
    )
    again = await build_app(
        settings,
        clock=clock,
        actuators=[
            RoutingActuator.from_settings(ROUTING, clock=clock, redis_url=redis_url),
            LlmUsageActuator.from_settings(COST, clock=clock, database_url=sqlite_url),
        ],
        policies=[CostPolicy.from_settings(COST, ROUTING)],
        run_id="cost-again",
    )
    try:
        report = await again.reconciler.tick()
        assert [n.message for _, n in report.notes if n.alert] == []
        assert len(await again.store.events(kinds=[EventKind.ALERT.value])) == 1
    finally:
        await again.aclose()


async def test_a_model_removed_from_the_route_drains_in_steps_the_guard_lets_through(
    sqlite_url: str, redis_url: str, clock: VirtualClock
) -> None:
    """gpt-4o, dropped from the config while it carries 80%, leaves in bounded steps, not never."""
    operator = redis.Redis.from_url(redis_url)
    operator.hset(
        "jarvis:route:chat",
        mapping={"gpt-4o": 0.8, "gemini": 0.1, "claude": 0.1, "_version": 1},
    )
    routing = RoutingSettings(
        enabled=True, routes={"chat": RouteSettings(weights={"gemini": 0.5, "claude": 0.5})}
    )
    settings = load_settings(
        database_url=sqlite_url,
        allowlist=[{"provider": "route", "resources": "*", "actions": ["set_weights"]}],
    )
    app = await build_app(
        settings,
        clock=clock,
        actuators=[
            RoutingActuator.from_settings(routing, clock=clock, redis_url=redis_url),
            LlmUsageActuator.from_settings(COST, clock=clock, database_url=sqlite_url),
        ],
        policies=[
            CostPolicy.from_settings(COST, routing, max_shift=settings.bounds.max_traffic_shift)
        ],
        run_id="drain",
    )
    try:
        seen = []
        for _ in range(4):
            report = await app.reconciler.tick()
            assert [d.verdict.reason for d in report.decisions if not d.verdict.allowed] == []
            assert all("draining gpt-4o" in d.action.reason for d in report.applied)
            stored = await routing_hash(redis_url)
            seen.append({m: float(w) for m, w in stored.items() if not m.startswith("_")})
            clock.advance(30)
        assert seen[0]["gpt-4o"] == pytest.approx(0.3, abs=1e-5)
        assert seen[1] == seen[2] == seen[3] == {"gemini": 0.5, "claude": 0.5}
        failed = await app.store.events(kinds=[EventKind.ACTION_FAILED.value])
        assert failed == []
    finally:
        operator.close()
        await app.aclose()
