"""The loop through a database outage: nothing applied blind, nothing lost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from jarvis.loop.clock import VirtualClock
from jarvis.model import Health
from jarvis.policies.heal import HealPolicy
from jarvis.store import EventStore, upgrade
from tests.fakes import FakeActuator
from tests.loop.conftest import AppFactory
from tests.store.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio


@pytest.fixture
async def proxy(pg_url: str) -> AsyncIterator[TcpProxy]:
    await upgrade(pg_url)
    parts = urlsplit(pg_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


async def test_a_database_outage_spools_events_and_replays_them_in_order(
    make_app: AppFactory,
    fleet: FakeActuator,
    clock: VirtualClock,
    pg_url: str,
    proxy: TcpProxy,
    tmp_path: Path,
) -> None:
    """Ticks during an outage apply nothing (kill switch unreadable) and lose no event."""
    parts = urlsplit(pg_url)
    via_proxy = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    app = await make_app(
        [HealPolicy()], database_url=via_proxy, spool_path=str(tmp_path / "spool.jsonl")
    )
    await app.reconciler.tick()

    await proxy.stop()
    fleet.services["web"].health = Health.UNHEALTHY
    for _ in range(3):
        clock.advance(30)
        report = await app.reconciler.tick()
        assert [d.verdict.reason for d in report.decisions] == ["killswitch"]
    assert fleet.applied == []
    assert app.store.spooled > 0
    assert app.metrics.registry.get_sample_value("jarvis_events_spooled_total") == app.store.spooled

    await proxy.start()
    clock.advance(30)
    await app.reconciler.tick()
    assert app.store.spooled == 0
    assert [str(a.target) for a in fleet.applied] == ["sim://web"]

    direct = await EventStore.connect(pg_url)
    try:
        events = await direct.events(limit=10_000)
    finally:
        await direct.aclose()
    started = [e.tick_id for e in events if e.kind == "tick.started"]
    finished = [e.tick_id for e in events if e.kind == "tick.finished"]
    assert len(started) == len(set(started)) == 5
    assert started == finished
    ids = [e.id for e in events if e.id is not None]
    assert len(ids) == len(events) and ids == sorted(ids)
    assert [e.ts for e in events if e.kind == "tick.started"] == sorted(
        e.ts for e in events if e.kind == "tick.started"
    )
    blocked = [e for e in events if e.kind == "action.blocked"]
    assert len(blocked) == 3 and all(e.reason == "killswitch" for e in blocked)
