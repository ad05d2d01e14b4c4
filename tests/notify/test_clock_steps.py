"""The notifier when the wall clock steps (NTP, a resumed VM, a hand-set date): the stall
watchdog, the cursor's gap grace and a store outage's length measure on the monotonic clock.

`VirtualClock.jump` steps `now` and leaves `monotonic` alone, as a step of the wall
clock leaves `time.monotonic`.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from jarvis.model import Event, EventKind
from tests.notify.conftest import Rig, RigFactory
from tests.notify.receivers import Receivers
from tests.notify.test_delivery import escalation, record, record_in
from tests.store.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio


async def tick_finished(rig: Rig, n: int) -> None:
    await record(
        rig,
        Event(
            kind=EventKind.TICK_FINISHED,
            ts=rig.clock.now(),
            idempotency_key=f"tick-{n}:finished",
            tick_id=f"tick-{n}",
        ),
    )


async def test_a_step_forward_of_a_day_pages_no_stall_while_ticks_go_on(
    make_rig: RigFactory, receivers: Receivers
) -> None:
    """Ticks every minute on both sides of a day's step forward: no loop_stalled page (the
    next tick is further off than the page's group wait, 30 s)."""
    rig = await make_rig(interval=60.0)
    for n in range(10):
        await tick_finished(rig, n)
        if n == 5:  # between two ticks, as a step comes
            rig.clock.jump(rig.clock.now() + timedelta(days=1))
        await rig.rounds(60, step=1.0)
    assert receivers.triggers() == []


async def test_a_step_back_of_an_hour_does_not_hide_a_stalled_loop(
    make_rig: RigFactory, receivers: Receivers
) -> None:
    """Ticks stop just as the wall clock steps back an hour: three intervals later (of
    monotonic time), loop_stalled pages, not an hour later."""
    rig = await make_rig(interval=30.0)
    await tick_finished(rig, 0)
    await rig.rounds(5, step=1.0)
    rig.clock.jump(rig.clock.now() - timedelta(hours=1))
    await rig.rounds(180, step=1.0)
    assert len(receivers.triggers()) == 1
    assert "no tick has finished" in receivers.triggers()[0]["payload"]["summary"]


async def test_a_gap_seen_before_a_step_back_holds_notifications_for_its_grace_only(
    rig: Rig, receivers: Receivers
) -> None:
    """A permanent gap in the ids, first seen just before the wall clock steps back an
    hour, is stepped over after its grace (15 s), and the escalation behind it pages."""
    async with rig.store.engine.connect() as aborted:
        transaction = await aborted.begin()
        # Takes an id, then rolls back: a gap no event will ever fill.
        await record_in(aborted, escalation("sim://gone", rig.clock.now()))
        await record(rig, escalation("sim://ai-dawg-ai-brain", rig.clock.now()))
        await rig.rounds(2, step=1.0)
        await transaction.rollback()
    rig.clock.jump(rig.clock.now() - timedelta(hours=1))
    await rig.rounds(120, step=1.0)
    assert len(receivers.triggers()) == 1
    assert "ai-dawg-ai-brain" in str(receivers.triggers()[0])


async def test_a_store_outage_pages_five_minutes_in_whatever_the_wall_clock_did(
    make_rig: RigFactory, receivers: Receivers, pg_proxy: TcpProxy, pg_url: str
) -> None:
    """A minute into an outage the wall clock steps back an hour: the page still goes five
    minutes in (of monotonic time), not an hour later."""
    rig = await make_rig(url=pg_proxy.url_for(pg_url))
    await pg_proxy.stop()
    await rig.rounds(6, step=10.0)
    rig.clock.jump(rig.clock.now() - timedelta(hours=1))
    await rig.rounds(30, step=10.0)  # six minutes in all
    (page,) = receivers.triggers()
    assert "event store has been unreachable" in page["payload"]["summary"]


async def test_a_step_forward_of_a_day_does_not_make_a_short_outage_page(
    make_rig: RigFactory, receivers: Receivers, pg_proxy: TcpProxy, pg_url: str
) -> None:
    """A minute into an outage the wall clock steps forward a day: two minutes of outage
    page no one."""
    rig = await make_rig(url=pg_proxy.url_for(pg_url))
    await pg_proxy.stop()
    await rig.rounds(6, step=10.0)
    rig.clock.jump(rig.clock.now() + timedelta(days=1))
    await rig.rounds(6, step=10.0)
    assert receivers.pagerduty == [] and receivers.slack == []
