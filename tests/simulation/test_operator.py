"""The simulated operator between ticks: holds flipped when due, escalations repaired when due.

`Operator.between_ticks` runs twice a tick and skips its passes when nothing
is scheduled; these pin that what is scheduled still happens, at its time.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from jarvis.actuators.sim import SimulatedFleet
from jarvis.loop.clock import VirtualClock
from jarvis.loop.killswitch import KillSwitch
from jarvis.model import EventKind
from jarvis.simulation.faults import Fault, FaultKind
from jarvis.simulation.operator import Operator
from jarvis.simulation.provider import SimulatedProvider
from jarvis.simulation.run_config import START
from jarvis.store import EventStore, MemoryKillSwitch

pytestmark = pytest.mark.anyio

MINUTE = timedelta(minutes=1)


async def _operator() -> tuple[Operator, KillSwitch, EventStore, SimulatedFleet]:
    clock = VirtualClock(START)
    store = await EventStore.in_memory()
    switch = KillSwitch(MemoryKillSwitch(), store, clock)
    fleet = SimulatedFleet(seed=1, services=2, script=False, start=START)
    provider = SimulatedProvider(fleet, clock, seed=1)
    operator = Operator(killswitch=switch, store=store, provider=provider, seed=1)
    return operator, switch, store, fleet


async def test_a_hold_engages_at_its_time_and_releases_at_its_end() -> None:
    """A between-ticks hold flips the switch when due, not before; a mid-tick one waits for one."""
    operator, switch, _, _ = await _operator()
    await operator.between_ticks(START)  # nothing scheduled yet
    operator.schedule_killswitch(Fault(START + MINUTE, FaultKind.KILLSWITCH, duration=5 * MINUTE))
    operator.schedule_killswitch(
        Fault(START + 20 * MINUTE, FaultKind.KILLSWITCH, duration=MINUTE, mid_tick=True)
    )
    await operator.between_ticks(START)
    assert not (await switch.read()).engaged
    await operator.between_ticks(START + MINUTE)
    assert (await switch.read()).engaged
    assert operator.engaged
    await operator.between_ticks(START + 6 * MINUTE)
    assert not (await switch.read()).engaged
    assert operator.flips == 2
    await operator.between_ticks(START + 20 * MINUTE)
    assert operator.flips == 2  # a mid-tick flip waits for a tick's apply (or its end)
    await operator.between_ticks(START + 20 * MINUTE, include_mid_tick=True)
    assert (await switch.read()).engaged
    assert operator.flips == 3


async def test_an_escalation_is_repaired_when_its_delay_has_passed() -> None:
    """The retries of an escalated resource are reset once, 30 to 120 minutes after the page."""
    operator, _, store, fleet = await _operator()
    resource = "sim://" + fleet.names[0]
    operator.escalated(resource, START)
    await operator.between_ticks(START + 29 * MINUTE)
    assert operator.repairs == 0
    await operator.between_ticks(START + 121 * MINUTE)
    assert operator.repairs == 1
    assert operator.repaired == {resource}
    resets = await store.events(kinds=[EventKind.RETRIES_RESET.value])
    assert [e.resource for e in resets] == [resource]
    await operator.between_ticks(START + 240 * MINUTE)
    assert operator.repairs == 1
