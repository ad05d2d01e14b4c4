"""Two daemons' notifiers on one PostgreSQL database: each notification reaches a human once."""

from __future__ import annotations

import anyio
import pytest

from tests.notify.conftest import RigFactory
from tests.notify.receivers import Receivers
from tests.notify.test_delivery import escalation, record

pytestmark = pytest.mark.anyio


async def test_a_page_in_flight_on_one_replica_is_not_sent_by_the_other(
    make_rig: RigFactory, receivers: Receivers
) -> None:
    """While one replica's notifier waits on PagerDuty, the other's round does not page again."""
    first = await make_rig()
    second = await make_rig(clock=first.clock)
    await record(first, escalation("sim://ai-dawg-ai-brain", first.clock.now()))
    for _ in range(29):
        await first.notifier.round()
        await second.notifier.round()
        first.clock.advance(1.0)
    receivers.holding.set()
    first.clock.advance(5.0)
    async with anyio.create_task_group() as group:
        group.start_soon(first.notifier.round)
        await anyio.to_thread.run_sync(receivers.arrived.wait, 60)
        receivers.holding.clear()  # only the first replica's request is held
        with anyio.fail_after(60):
            await second.notifier.round()
        receivers.released.set()
    for _ in range(60):
        await second.notifier.round()
        await first.notifier.round()
        first.clock.advance(1.0)

    assert len(receivers.triggers()) == 1
    assert len(receivers.slack) == 1
    assert len(receivers.emails) == 1


async def test_an_alert_joining_between_two_replicas_rounds_is_still_told(
    make_rig: RigFactory, receivers: Receivers
) -> None:
    """One replica sends {x}; the other, whose round sees y too, does not take {x, y} as told."""
    first = await make_rig()
    second = await make_rig(clock=first.clock)
    await record(first, escalation("sim://ai-dawg-ai-brain", first.clock.now()))
    for tick in range(31):
        await first.notifier.round()  # at 30 s (group_wait) it tells {ai-brain}
        if tick == 30:
            await record(first, escalation("sim://ai-dawg-vocal-coach", first.clock.now()))
        await second.notifier.round()
        first.clock.advance(1.0)
    for _ in range(400):  # the first replica is gone; the second carries on
        await second.notifier.round()
        first.clock.advance(1.0)

    told = [str(message["blocks"]) for message in receivers.slack]
    assert len(told) == 2
    assert "ai-dawg-vocal-coach" not in told[0]
    assert "ai-dawg-vocal-coach" in told[1]
