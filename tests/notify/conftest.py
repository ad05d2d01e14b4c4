"""Fixtures for the notifier: loopback receivers and a notifier on a real store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jarvis.app import build_notifier
from jarvis.config import Settings
from jarvis.config.notify import EmailChannel, NotifySettings, PagerDutyChannel, SlackChannel
from jarvis.config.sections import LoopSettings
from jarvis.loop.clock import VirtualClock
from jarvis.notify import Notifier
from jarvis.store import EventStore
from jarvis.store.outbox import Outbox
from jarvis.telemetry.metrics import Metrics
from tests.notify.receivers import Receivers

ROUTING_KEY = "R0UT1NGK3Y0000000000000000000001"


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    server = Receivers()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def notify_settings(
    receivers: Receivers,
    recipients: list[str] | None = None,
    *,
    starttls: bool = False,
    **timing: float,
) -> NotifySettings:
    return NotifySettings(
        group_wait=timing.get("group_wait", 30.0),
        group_interval=timing.get("group_interval", 300.0),
        repeat_interval=timing.get("repeat_interval", 4 * 3600.0),
        backoff_base=1.0,
        slack=SlackChannel(webhook_url_env="TEST_SLACK_URL"),
        pagerduty=PagerDutyChannel(
            url=receivers.pagerduty_url,
            routing_key_env="TEST_PD_KEY",
            severities=["critical", "error"],
        ),
        email=EmailChannel(
            host="127.0.0.1",
            port=receivers.smtp_port,
            sender="jarvis@example.com",
            recipients=recipients or ["oncall@example.com"],
            starttls=starttls,
        ),
    )


@dataclass
class Rig:
    store: EventStore
    notifier: Notifier
    clock: VirtualClock
    metrics: Metrics
    outbox: Outbox

    async def rounds(self, n: int, step: float = 1.0) -> None:
        """``n`` notifier rounds, ``step`` virtual seconds apart."""
        for _ in range(n):
            await self.notifier.round()
            self.clock.advance(step)


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_rig(
    pg_url: str, receivers: Receivers, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RigFactory]:
    """Started notifiers on one fresh PostgreSQL database, in virtual time.

    ``interval`` is the loop interval the stall watchdog measures against:
    tests that do not record ticks pass a long one. ``leased``: the loop runs
    under a lease, as `jarvis run` on PostgreSQL (`Notifier.leased`).
    """
    monkeypatch.setenv("TEST_SLACK_URL", receivers.slack_url)
    monkeypatch.setenv("TEST_PD_KEY", ROUTING_KEY)
    stores: list[EventStore] = []

    async def make(
        interval: float = 3600.0,
        clock: VirtualClock | None = None,
        url: str | None = None,
        spool_path: Path | None = None,
        recipients: list[str] | None = None,
        starttls: bool = False,
        leased: bool = False,
    ) -> Rig:
        store = await EventStore.connect(url or pg_url, auto_migrate=True, spool_path=spool_path)
        stores.append(store)
        clock = clock or VirtualClock()
        metrics = Metrics()
        settings = Settings(
            database_url=pg_url,
            loop=LoopSettings(interval=interval),
            notify=notify_settings(receivers, recipients, starttls=starttls),
        )
        notifier = build_notifier(settings, store, clock, metrics, seed=1)
        assert notifier is not None
        notifier.leased = leased  # as `jarvis run` sets it beside an elector
        await notifier.start()
        return Rig(store, notifier, clock, metrics, Outbox(store.engine))

    try:
        yield make
    finally:
        for store in stores:
            await store.aclose()


@pytest.fixture
async def rig(make_rig: RigFactory) -> Rig:
    """A notifier whose loop interval is an hour (no stall alerts in a test's span)."""
    return await make_rig()
