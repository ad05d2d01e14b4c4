"""Idempotency keys: one per action id, and a replay never changes the simulated provider twice."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from jarvis.actuators.sim import SimulatedActuator, SimulatedFleet
from jarvis.loop.clock import VirtualClock
from jarvis.loop.events import action_id_for, idempotency_key
from jarvis.model import Action, ResourceRef, Restart, Scale
from jarvis.simulation.provider import SimulatedProvider

pytestmark = pytest.mark.anyio

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TICK = "20260301T120000.000Z-run"


def scale(name: str, replicas: int) -> Action:
    return Action(ResourceRef("sim", name), Scale(replicas=replicas), "test", "why")


def test_the_key_is_a_short_stable_digest_of_the_action_id() -> None:
    """One action id gives one 47-character ASCII key; another id gives another."""
    action_id = action_id_for(TICK, scale("customer-api", 4))
    key = idempotency_key(action_id)
    assert key == idempotency_key(action_id)
    assert key == "jarvis-" + hashlib.sha256(action_id.encode()).hexdigest()[:40]
    assert len(key) == 47 and key.isascii()
    other = action_id_for(TICK, Action(ResourceRef("sim", "customer-api"), Restart(), "t", "r"))
    assert idempotency_key(other) != key


async def test_a_replayed_key_is_answered_without_a_second_change_or_witness() -> None:
    """The simulated provider applies a key once; the replay succeeds unwitnessed."""
    clock = VirtualClock(START)
    fleet = SimulatedFleet(seed=7, services=3, start=START)
    provider = SimulatedProvider(fleet, clock, seed=7)
    name = fleet.observe(START)[0].ref.name
    first, replay = scale(name, 5), scale(name, 3)

    applied = await provider.apply(first, "key-1")
    again = await provider.apply(replay, "key-1")

    assert applied.ok and again.ok
    assert "already applied" in again.detail
    replicas = fleet.state(name).replicas
    assert replicas is not None and replicas.desired == 5
    assert [call.action for call in provider.calls if call.what == "apply"] == [first]


async def test_a_failed_apply_leaves_its_key_free_to_try_again() -> None:
    """Only a change that took effect claims the key: a refused one may be retried."""
    clock = VirtualClock(START)
    fleet = SimulatedFleet(seed=7, services=3, start=START)
    provider = SimulatedProvider(fleet, clock, seed=7)
    name = fleet.observe(START)[0].ref.name
    fleet.set_api_failing(True)
    assert not (await provider.apply(scale(name, 5), "key-1")).ok
    fleet.set_api_failing(False)

    retried = await provider.apply(scale(name, 5), "key-1")

    assert retried.ok and "already applied" not in retried.detail
    assert len([call for call in provider.calls if call.what == "apply"]) == 2


async def test_the_simulated_actuator_applies_one_key_once() -> None:
    """The default actuator's fleet remembers keys too: a replay does not restart twice."""
    clock = VirtualClock(START)
    actuator = SimulatedActuator.create(clock, seed=3, script=False)
    name = actuator.fleet.observe(START)[0].ref.name
    restart = Action(ResourceRef("sim", name), Restart(), "test", "why")

    first = await actuator.apply(restart, "key-9")
    again = await actuator.apply(restart, "key-9")

    assert first.ok and again.detail == "already applied (key key-9)"
    assert actuator.fleet.applied("key-9")


async def test_the_provider_remembers_each_resources_last_key_as_a_tag_does() -> None:
    """Like the ECS tag and the Kubernetes and Cloud Run annotation, only a resource's last
    key is kept: its replay is answered, a key a later change superseded applies again.

    Memory follows the fleet, not the month: the simulated provider had kept every key.
    """
    clock = VirtualClock(START)
    fleet = SimulatedFleet(seed=7, services=3, start=START)
    provider = SimulatedProvider(fleet, clock, seed=7)
    one, two = (state.ref.name for state in fleet.observe(START)[:2])
    assert (await provider.apply(scale(one, 5), "key-1")).ok
    assert (await provider.apply(scale(one, 4), "key-2")).ok
    assert (await provider.apply(scale(two, 6), "key-3")).ok

    assert "already applied" in (await provider.apply(scale(one, 4), "key-2")).detail
    assert "already applied" in (await provider.apply(scale(two, 6), "key-3")).detail
    superseded = await provider.apply(scale(one, 5), "key-1")
    assert superseded.ok and "already applied" not in superseded.detail
    replicas = fleet.state(one).replicas
    assert replicas is not None and replicas.desired == 5


async def test_the_simulated_fleet_keeps_each_services_last_key() -> None:
    """The embedded default's fleet, which `jarvis run` drives for as long as it runs,
    keeps one key per service too."""
    clock = VirtualClock(START)
    actuator = SimulatedActuator.create(clock, seed=3, script=False)
    name = actuator.fleet.observe(START)[0].ref.name
    restart = Action(ResourceRef("sim", name), Restart(), "test", "why")

    assert (await actuator.apply(restart, "key-1")).ok
    assert (await actuator.apply(restart, "key-2")).ok

    assert actuator.fleet.applied("key-2") and not actuator.fleet.applied("key-1")
    again = await actuator.apply(restart, "key-1")
    assert again.ok and "already applied" not in again.detail


async def test_the_simulated_provider_confirms_only_the_last_key_that_took_effect() -> None:
    """Recovery's question: the key of the target's last change is confirmed; a refused
    change's key, and an older key once another change landed, are not."""
    clock = VirtualClock(START)
    fleet = SimulatedFleet(seed=7, services=3, start=START)
    provider = SimulatedProvider(fleet, clock, seed=7)
    name = fleet.observe(START)[0].ref.name
    target = ResourceRef("sim", name)
    assert (await provider.apply(scale(name, 5), "key-1")).ok
    assert await provider.confirm_applied(target, "scale", "key-1")
    fleet.set_api_failing(True)
    assert not (await provider.apply(scale(name, 4), "key-2")).ok
    assert await provider.confirm_applied(target, "scale", "key-2") is None
    fleet.set_api_failing(False)
    assert (await provider.apply(scale(name, 3), "key-3")).ok
    assert await provider.confirm_applied(target, "scale", "key-1") is None
