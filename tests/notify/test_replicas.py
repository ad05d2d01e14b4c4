"""Two daemons' notifiers on one PostgreSQL database: each notification reaches a human once."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import anyio
import pytest

from jarvis.app import build_app, build_notifier
from jarvis.cli.daemon import _start_beside
from jarvis.config import Settings
from jarvis.config.sections import LoopSettings, RetentionSettings
from jarvis.loop.clock import VirtualClock
from tests.ha.test_fleet_duties import leader_elector
from tests.notify.conftest import ROUTING_KEY, RigFactory, notify_settings
from tests.notify.receivers import Receivers
from tests.notify.test_delivery import escalation, record
from tests.store.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio

START = VirtualClock().now()


async def until(done: Callable[[], bool]) -> None:
    """Poll ``done``: the notifiers run in tasks of their own, the receivers on a thread."""
    for _ in itertools.count():
        if done():
            return
        await anyio.sleep(0.05)


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


async def test_a_store_outage_two_replicas_see_pages_once_from_the_leader(
    receivers: Receivers,
    pg_proxy: TcpProxy,
    pg_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both daemons' notifiers see the database go; only the replica that led when it last
    answered tells it: one page (no replica acts, spool or not), one resolve, not one of
    each per replica, and no warning that actions go on."""
    monkeypatch.setenv("TEST_SLACK_URL", receivers.slack_url)
    monkeypatch.setenv("TEST_PD_KEY", ROUTING_KEY)
    settings = [
        Settings(
            database_url=pg_proxy.url_for(pg_url),
            spool_path=tmp_path / f"{name}.jsonl",
            loop=LoopSettings(interval=3600.0),
            notify=notify_settings(receivers),
            retention=RetentionSettings(enabled=False),
        )
        for name in "ab"
    ]
    apps = [await build_app(s, clock=VirtualClock(), auto_migrate=True) for s in settings]
    try:
        electors = [leader_elector(app, holder) for holder, app in zip("ab", apps, strict=True)]
        for elector in electors:
            await elector.step()
        assert [e.epoch is not None for e in electors] == [True, False]
        notifiers = [
            build_notifier(s, app.store, app.clock, app.metrics)
            for s, app in zip(settings, apps, strict=True)
        ]

        async def both_past(since: datetime, minutes: float) -> None:
            """Until both notifiers' rounds have gone ``minutes`` of their time past ``since``."""
            await until(
                lambda: min(a.clock.now() for a in apps) - since > timedelta(minutes=minutes)
            )

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for each in zip(settings, apps, electors, notifiers, strict=True):
                    _start_beside(group, *each)
                await both_past(START, 1)
                await pg_proxy.stop()
                await both_past(max(app.clock.now() for app in apps), 40)  # past the page
                await pg_proxy.start()
                await until(lambda: bool(receivers.resolves()))
                await both_past(max(app.clock.now() for app in apps), 5)
                group.cancel_scope.cancel()

        (page,) = receivers.triggers()
        assert "event store has been unreachable" in page["payload"]["summary"]
        told = [message["text"].split("]")[0] for message in receivers.slack]
        assert told == ["[CRITICAL", "[RESOLVED"]
        assert "none acts" in str(receivers.slack[0]["blocks"])
        assert len(receivers.emails) == 2
        (resolve,) = receivers.resolves()
        assert resolve["dedup_key"] == page["dedup_key"]
    finally:
        for app in apps:
            await app.aclose()
