"""The loop through a database outage: nothing applied blind, nothing lost."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from jarvis.loop.clock import VirtualClock
from jarvis.model import Health, KillSwitchState
from jarvis.policies.heal import HealPolicy
from jarvis.store import EventStore, StoreError, upgrade
from jarvis.store.redis_killswitch import RedisKillSwitch
from tests.fakes import FakeActuator
from tests.loop.conftest import AppFactory
from tests.store.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio


async def release(redis_url: str) -> None:
    """An explicit release in Redis, so the switch reads released with the database gone."""
    switch = RedisKillSwitch(redis_url)
    try:
        await switch.write(KillSwitchState(False, "test", "outage drill", datetime.now(UTC)))
    finally:
        await switch.aclose()


@pytest.fixture
async def proxy(pg_url: str, pg_proxy: TcpProxy) -> TcpProxy:
    """``pg_proxy`` in front of a database migrated to head."""
    await upgrade(pg_url)
    return pg_proxy


async def test_a_database_outage_spools_events_and_replays_them_in_order(
    make_app: AppFactory,
    fleet: FakeActuator,
    clock: VirtualClock,
    pg_url: str,
    proxy: TcpProxy,
    tmp_path: Path,
) -> None:
    """Ticks during an outage apply nothing (kill switch unreadable) and lose no event."""
    app = await make_app(
        [HealPolicy()], database_url=proxy.url_for(pg_url), spool_path=str(tmp_path / "spool.jsonl")
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


async def test_an_intent_that_can_be_neither_committed_nor_spooled_is_not_applied(
    make_app: AppFactory,
    fleet: FakeActuator,
    clock: VirtualClock,
    pg_url: str,
    proxy: TcpProxy,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """Database gone and spool unwritable: blocked `store_unavailable`, no attempt counted."""
    await release(redis_url)
    spool = tmp_path / "spool.jsonl"
    app = await make_app(
        [HealPolicy()],
        database_url=proxy.url_for(pg_url),
        spool_path=str(spool),
        redis_url=redis_url,
    )
    await app.reconciler.tick()

    await proxy.stop()
    spool.mkdir()  # the spool file cannot be opened for writing now
    fleet.services["web"].health = Health.UNHEALTHY
    clock.advance(30)
    # The tick ends in error: its own events could not be made durable either.
    with pytest.raises(StoreError, match="cannot write spool file"):
        await app.reconciler.tick()
    assert fleet.applied == []
    assert app.reconciler.ledger.get(("sim://web", "restart")) is None

    spool.rmdir()
    await proxy.start()
    clock.advance(30)
    await app.reconciler.tick()
    assert [str(a.target) for a in fleet.applied] == ["sim://web"]
    state = app.reconciler.ledger.get(("sim://web", "restart"))
    assert state is not None and len(state.attempts) == 1
    # A connection cut by the outage can fail the first flush after it; one more lands.
    await app.reconciler.flush()
    assert app.store.spooled == 0
    direct = await EventStore.connect(pg_url)
    try:
        started = await direct.events(kinds=["action.started"])
        blocked = await direct.events(kinds=["action.blocked"])
    finally:
        await direct.aclose()
    assert len(started) == 1
    assert [e.reason for e in blocked] == ["store_unavailable"]


async def test_a_damaged_spool_line_raises_an_alert_and_ticks_go_on(
    make_app: AppFactory, clock: VirtualClock, tmp_path: Path
) -> None:
    """The line goes to the dead-letter file, counted and alerted; every tick finishes."""
    spool = tmp_path / "spool.jsonl"
    spool.write_bytes(b"{not json\n")
    app = await make_app(spool_path=str(spool))
    for _ in range(3):
        clock.advance(30)
        await app.reconciler.tick()
    assert app.metrics.registry.get_sample_value("jarvis_spool_dead_letters_total") == 1
    [alert] = await app.store.events(kinds=["alert"])
    assert alert.payload["dead_letters"] == 1
    assert alert.payload["dead_letter_file"] == f"{spool}.dead"
    assert len(await app.store.events(kinds=["tick.finished"])) == 3
    assert (tmp_path / "spool.jsonl.dead").read_text().count("\n") == 1
