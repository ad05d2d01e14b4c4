"""The routing actuator against a real Redis: seeding, observing, versioned writes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from jarvis.actuators.base import ActuatorError, ConfirmsKeys
from jarvis.actuators.llm.routing import RoutingActuator
from jarvis.app import App, build_app
from jarvis.config import load_settings
from jarvis.config.cost import RouteSettings, RoutingSettings
from jarvis.loop import events as ev
from jarvis.loop.clock import VirtualClock
from jarvis.model import (
    Action,
    ErrorKind,
    EventKind,
    Health,
    ResourceRef,
    RouteWeights,
    SetWeights,
)
from tests.actions import new_key
from tests.cost.builders import NOW
from tests.loopback import free_port

pytestmark = pytest.mark.anyio

SETTINGS = RoutingSettings(
    enabled=True,
    routes={
        "chat": RouteSettings(weights={"gpt-4o": 0.6, "gemini": 0.2, "claude": 0.2}),
        "code": RouteSettings(
            weights={"claude": 0.7, "gpt-4o": 0.3},
            allowed=["gemini"],
            floors={"claude": 0.5},
        ),
    },
)
CHAT = ResourceRef("route", "chat", "route")


@pytest.fixture
async def actuator(redis_url: str) -> AsyncIterator[RoutingActuator]:
    routing = RoutingActuator.from_settings(SETTINGS, clock=VirtualClock(NOW), redis_url=redis_url)
    try:
        yield routing
    finally:
        await routing.aclose()


def set_weights(weights: dict[str, float], target: ResourceRef = CHAT) -> Action:
    return Action(target, SetWeights(weights), "cost", "test")


async def test_missing_routes_are_seeded_with_configured_weights(
    actuator: RoutingActuator, raw: aioredis.Redis
) -> None:
    """A route hash that does not exist is written with the configured weights, version 1."""
    states = {str(s.ref): s for s in await actuator.observe()}
    chat = states["route://chat"]
    assert chat.health is Health.HEALTHY
    assert chat.record_attributes()["weights"] == {"gpt-4o": 0.6, "gemini": 0.2, "claude": 0.2}
    assert chat.record_attributes()["weights_version"] == 1
    assert chat.record_attributes()["seeded"] is True
    assert chat.weights == RouteWeights({"gpt-4o": 0.6, "gemini": 0.2, "claude": 0.2}, 1, {})
    assert states["route://code"].record_attributes()["models"] == ["claude", "gpt-4o", "gemini"]
    stored = await raw.hgetall("jarvis:route:code")
    assert stored["claude"] == "0.7"
    assert stored["_version"] == "1"
    again = {str(s.ref): s for s in await actuator.observe()}
    assert again["route://chat"].record_attributes()["seeded"] is False


async def test_set_weights_replaces_the_hash_and_bumps_the_version(
    actuator: RoutingActuator, raw: aioredis.Redis
) -> None:
    """Applied weights replace the hash atomically and show up in the next observation."""
    await actuator.observe()
    key = new_key()
    outcome = await actuator.apply(set_weights({"gpt-4o": 0.3, "gemini": 0.5, "claude": 0.2}), key)
    assert outcome.ok, outcome.detail
    stored = await raw.hgetall("jarvis:route:chat")
    assert stored == {
        "_version": "2",
        "_updated_at": NOW.isoformat(),
        "_action_key": key,
        "gpt-4o": "0.3",
        "gemini": "0.5",
        "claude": "0.2",
    }
    (chat, _) = await actuator.observe()
    assert chat.record_attributes()["weights"] == {"gpt-4o": 0.3, "gemini": 0.5, "claude": 0.2}
    assert chat.detail.startswith("v2 ")


async def test_a_concurrent_write_makes_apply_fail_as_a_temporary_conflict(
    actuator: RoutingActuator, raw: aioredis.Redis
) -> None:
    """If someone else wrote since the last observation, apply refuses to overwrite it."""
    await actuator.observe()
    await raw.hset("jarvis:route:chat", mapping={"gpt-4o": "1", "gemini": "0", "_version": "7"})
    outcome = await actuator.apply(
        set_weights({"gpt-4o": 0.3, "gemini": 0.5, "claude": 0.2}), new_key()
    )
    assert not outcome.ok
    assert outcome.error_kind is ErrorKind.TEMPORARY
    assert outcome.error_code == "version_conflict"
    assert await raw.hget("jarvis:route:chat", "gpt-4o") == "1"
    await actuator.observe()
    assert (await actuator.apply(set_weights({"gpt-4o": 1.0}), new_key())).ok
    assert await raw.hget("jarvis:route:chat", "_version") == "8"


@pytest.mark.parametrize(
    ("weights", "code"),
    [
        ({"gpt-4o": 0.5, "gemini": 0.4}, "invalid_weights"),
        ({"gpt-4o": 1.5, "gemini": -0.5}, "invalid_weights"),
        ({"gpt-4o": 0.5, "llama": 0.5}, "invalid_weights"),
        ({}, "invalid_weights"),
    ],
)
async def test_invalid_weights_are_refused_as_terminal(
    actuator: RoutingActuator, weights: dict[str, float], code: str
) -> None:
    """Weights that do not sum to 1, are negative or name unknown models are never written."""
    outcome = await actuator.apply(set_weights(weights), new_key())
    assert outcome.error_kind is ErrorKind.TERMINAL
    assert outcome.error_code == code


async def test_weights_breaking_a_floor_are_refused(actuator: RoutingActuator) -> None:
    """The actuator re-checks the route's floors before writing."""
    code = ResourceRef("route", "code", "route")
    outcome = await actuator.apply(set_weights({"claude": 0.4, "gemini": 0.6}, code), new_key())
    assert outcome.error_code == "invalid_weights"
    assert "floors" in outcome.detail
    assert (await actuator.apply(set_weights({"claude": 0.5, "gemini": 0.5}, code), new_key())).ok


async def test_a_model_no_longer_allowed_may_lose_weight_but_never_gain_it(
    actuator: RoutingActuator, raw: aioredis.Redis
) -> None:
    """llama, left in the hash after leaving the config, may only drain toward 0."""
    await raw.hset("jarvis:route:chat", mapping={"llama": 0.6, "gpt-4o": 0.4, "_version": "3"})
    await actuator.observe()
    more = await actuator.apply(set_weights({"llama": 0.7, "gpt-4o": 0.3}), new_key())
    assert more.error_code == "invalid_weights"
    assert "llama" in more.detail
    assert (await actuator.apply(set_weights({"llama": 0.2, "gpt-4o": 0.8}), new_key())).ok
    again = await actuator.apply(set_weights({"llama": 0.3, "gpt-4o": 0.7}), new_key())
    assert again.error_code == "invalid_weights"
    assert (await actuator.apply(set_weights({"gpt-4o": 1.0}), new_key())).ok
    assert await raw.hget("jarvis:route:chat", "llama") is None


async def test_unknown_routes_are_refused(actuator: RoutingActuator) -> None:
    """A SET_WEIGHTS for a route that is not configured fails terminally."""
    outcome = await actuator.apply(
        set_weights({"a": 1.0}, ResourceRef("route", "nope", "route")), new_key()
    )
    assert outcome.error_code == "unknown_route"


async def test_corrupt_weights_are_observed_as_degraded(
    actuator: RoutingActuator, raw: aioredis.Redis
) -> None:
    """A hash with unparseable or unbalanced weights is reported, not hidden."""
    await raw.hset(
        "jarvis:route:chat", mapping={"gpt-4o": "lots", "gemini": "0.2", "_version": "3"}
    )
    states = {str(s.ref): s for s in await actuator.observe()}
    chat = states["route://chat"]
    assert chat.health is Health.DEGRADED
    assert "lots" in chat.detail
    assert chat.record_attributes()["weights_version"] == 3


async def test_a_replayed_key_is_already_applied_and_keeps_the_version(
    actuator: RoutingActuator, raw: aioredis.Redis
) -> None:
    """The key stored with the weights makes a replay succeed without a second write."""
    await actuator.observe()
    key = new_key()
    first = await actuator.apply(set_weights({"gpt-4o": 0.3, "gemini": 0.5, "claude": 0.2}), key)
    replay = await actuator.apply(set_weights({"gpt-4o": 0.3, "gemini": 0.5, "claude": 0.2}), key)

    assert first.ok and replay.ok
    assert "already applied" in replay.detail
    assert await raw.hget("jarvis:route:chat", "_version") == "2"
    assert await raw.hget("jarvis:route:chat", "_action_key") == key
    # A new key is a new action, written as usual.
    assert (await actuator.apply(set_weights({"gpt-4o": 1.0}), new_key())).ok
    assert await raw.hget("jarvis:route:chat", "_version") == "3"


async def test_a_version_that_is_not_a_number_is_written_over(
    actuator: RoutingActuator, raw: aioredis.Redis
) -> None:
    """A hand-edited ``_version`` that is not a count does not lock Jarvis out of the route."""
    await raw.hset("jarvis:route:chat", mapping={"_version": "abc", "gpt-4o": "1"})
    (chat, _) = await actuator.observe()
    assert chat.weights is not None
    assert chat.weights.version == 0
    outcome = await actuator.apply(set_weights({"gpt-4o": 0.6, "gemini": 0.2, "claude": 0.2}), "k")
    assert outcome.ok, outcome.detail
    stored = await raw.hgetall("jarvis:route:chat")
    assert stored["_version"] == "1"
    assert stored["gemini"] == "0.2"


async def test_set_weights_is_confirmed_by_the_hash_s_action_key(
    actuator: RoutingActuator, raw: aioredis.Redis
) -> None:
    """The key the last write stored confirms that write; an earlier key, another kind, an
    unconfigured route or a route never written confirm nothing."""
    assert isinstance(actuator, ConfirmsKeys)
    await actuator.observe()
    first, second = new_key(), new_key()
    assert (
        await actuator.apply(set_weights({"gpt-4o": 0.5, "gemini": 0.3, "claude": 0.2}), first)
    ).ok
    assert await actuator.confirm_applied(CHAT, "set_weights", first) == (
        f"route chat carries _action_key={first}"
    )
    assert (
        await actuator.apply(set_weights({"gpt-4o": 0.4, "gemini": 0.4, "claude": 0.2}), second)
    ).ok

    assert await actuator.confirm_applied(CHAT, "set_weights", second)
    assert await actuator.confirm_applied(CHAT, "set_weights", first) is None
    assert await actuator.confirm_applied(CHAT, "scale", second) is None
    code = ResourceRef("route", "code", "route")
    assert await actuator.confirm_applied(code, "set_weights", second) is None
    await raw.hset("jarvis:route:other", "_action_key", second)
    other = ResourceRef("route", "other", "route")
    assert await actuator.confirm_applied(other, "set_weights", second) is None


async def test_recovery_records_applied_an_orphan_whose_route_carries_its_key(
    sqlite_url: str, redis_url: str
) -> None:
    """An intent a crash left open is closed as applied when its route's hash carries the
    action's key, and as unknown when it carries another action's key."""
    clock = VirtualClock(NOW)
    settings = load_settings(
        database_url=sqlite_url,
        allowlist=[{"provider": "route", "resources": "*", "actions": ["set_weights"]}],
    )

    async def started() -> App:
        routing = RoutingActuator.from_settings(SETTINGS, clock=clock, redis_url=redis_url)
        return await build_app(settings, clock=clock, actuators=[routing], run_id="routing")

    crashed = await started()
    try:
        routing = crashed.actuators[0]
        assert isinstance(routing, RoutingActuator)
        await routing.observe()
        tick_id = ev.tick_id_for(clock.now(), "crashed")
        sent = {}
        for name, weights in [
            ("chat", {"gpt-4o": 0.5, "gemini": 0.3, "claude": 0.2}),
            ("code", {"claude": 0.6, "gpt-4o": 0.4}),
        ]:
            action = set_weights(weights, ResourceRef("route", name, "route"))
            action_id = ev.action_id_for(tick_id, action)
            crashed.reconciler.recorder.record(ev.started(tick_id, clock.now(), action, action_id))
            sent[name] = (action, ev.idempotency_key(action_id))
        await crashed.reconciler.recorder.flush(clock.now())
        # The weights of chat were written; code carries a later action's key.
        assert (await routing.apply(*sent["chat"])).ok
        assert (await routing.apply(sent["code"][0], ev.idempotency_key("a later action"))).ok
    finally:
        await crashed.aclose()

    clock.advance(60)
    restarted = await started()
    try:
        kinds = [EventKind.ACTION_APPLIED, EventKind.ACTION_FAILED, EventKind.ACTION_UNKNOWN]
        closed = {e.resource: e for e in await restarted.store.events(kinds=kinds)}
    finally:
        await restarted.aclose()

    assert {uri: e.kind for uri, e in closed.items()} == {
        "route://chat": EventKind.ACTION_APPLIED,
        "route://code": EventKind.ACTION_UNKNOWN,
    }
    assert closed["route://chat"].payload["recovered"] is True
    assert sent["chat"][1] in str(closed["route://chat"].payload["detail"])


async def test_a_redis_that_cannot_be_read_makes_confirming_raise_a_one_line_error() -> None:
    """Unreachable Redis: confirming raises `ActuatorError` (recovery leaves it unknown)."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    routing = RoutingActuator.from_settings(SETTINGS, clock=VirtualClock(NOW), redis_url=url)
    try:
        with pytest.raises(ActuatorError, match=r"^redis: "):
            await routing.confirm_applied(CHAT, "set_weights", new_key())
    finally:
        await routing.aclose()
