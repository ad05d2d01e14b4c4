"""A leader that still believes it leads, after another took the lease, applies nothing.

This is the pause case with the pause taken out of the picture: the stale
leader's own view (its renew deadline) is kept long on purpose, so only the
fence stands between it and the provider. Real PostgreSQL, the real loop
through `build_app`, a fake fleet that records what is applied.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from sqlalchemy import text

from jarvis.app import build_app
from jarvis.config import load_settings
from jarvis.loop.clock import VirtualClock
from jarvis.loop.election import Elector, Leadership
from jarvis.loop.scheduler import Scheduler
from jarvis.model import EventKind, Health
from jarvis.policies.heal import HealPolicy
from jarvis.store import EventStore, upgrade
from jarvis.store.fence import Fence, Fences, check_fence
from jarvis.store.lease import PgLease, lease_status
from tests.fakes import FakeActuator
from tests.loop.conftest import ALLOW_SIM

pytestmark = pytest.mark.anyio


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[str]:
    await upgrade(pg_url)
    yield pg_url


def fence_of(store: EventStore) -> Fences | None:
    """The store's fence, read afresh (a call, so a type checker does not narrow it)."""
    return store.fence


async def expired(lease: PgLease) -> None:
    with anyio.fail_after(30):
        while True:
            status = await lease_status(lease.engine)
            if status.lease is not None and status.lease.expires_at <= status.now:
                return
            await anyio.sleep(0.05)


async def test_the_stale_leaders_first_intent_fails_and_it_steps_down(pg: str) -> None:
    clock = VirtualClock()
    fleet = FakeActuator(clock).add("api", health=Health.UNHEALTHY)
    settings = load_settings(database_url=pg, allowlist=ALLOW_SIM)
    app = await build_app(
        settings,
        clock=clock,
        actuators=[fleet],
        policies=[HealPolicy()],
        run_id="stale",
        recover_orphans=False,
    )
    try:
        elector = Elector(
            PgLease(app.store.engine, "stale", duration=0.3),
            app.metrics,
            renew_deadline=600,  # its own view never ends: only the fence can stop it
            retry_period=600,
        )
        leadership = Leadership(elector, app.reconciler)
        await elector.step()
        assert await leadership.ready()
        assert fence_of(app.store) == Fence("loop", "stale", 1)

        other = PgLease(app.store.engine, "other", duration=600)
        await expired(other)
        assert await other.acquire() == 2

        scheduler = Scheduler(app.reconciler, clock, app.metrics, interval=30, gate=leadership)
        await scheduler.run(max_ticks=1)

        assert scheduler.failed == 1  # the tick ended on the refused intent
        assert fleet.applied == []
        assert elector.epoch is None
        assert app.metrics.leader._value.get() == 0
        assert fence_of(app.store) is None
        assert not await leadership.ready()
        started = await app.store.events(kinds=[EventKind.ACTION_STARTED.value])
        assert started == []
        # The facts of the refused tick are still recorded, unfenced.
        ticks = await app.store.events(kinds=[EventKind.TICK_STARTED.value])
        assert [e.payload["epoch"] for e in ticks] == [1]
    finally:
        await app.aclose()


async def test_a_takeover_waits_for_a_fenced_transaction_in_flight(pg: str) -> None:
    """The fence's share lock: a takeover cannot commit between the check and the commit."""
    store = await EventStore.connect(pg)
    try:
        old = PgLease(store.engine, "old", duration=0.5)
        new = PgLease(store.engine, "new", duration=600)
        assert await old.acquire() == 1
        taken: list[int | None] = []
        async with store.engine.connect() as connection:
            await connection.begin()
            await check_fence(connection, Fence("loop", "old", 1))
            await expired(old)

            async def take() -> None:
                taken.append(await new.acquire())

            async with anyio.create_task_group() as group:
                group.start_soon(take)
                await waiting_on_a_lock(store)
                assert taken == []
                await connection.commit()
        assert taken == [2]
    finally:
        await store.aclose()


async def waiting_on_a_lock(store: EventStore) -> None:
    """Until PostgreSQL shows a session of this database waiting on a lock."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    with anyio.fail_after(30):
        while True:
            async with store.engine.connect() as probe:
                if (await probe.execute(query)).scalar_one():
                    return
            await anyio.sleep(0.05)


async def test_a_new_leader_is_healthy_before_its_first_tick(pg: str) -> None:
    """Taking the lead hours after start is a fresh start for /healthz, not a stalled loop."""
    clock = VirtualClock()
    fleet = FakeActuator(clock).add("api")
    settings = load_settings(database_url=pg, allowlist=ALLOW_SIM)
    app = await build_app(
        settings, clock=clock, actuators=[fleet], run_id="late", recover_orphans=False
    )
    try:
        elector = Elector(
            PgLease(app.store.engine, "late", duration=600),
            app.metrics,
            renew_deadline=600,
            retry_period=600,
        )
        leadership = Leadership(elector, app.reconciler)
        scheduler = Scheduler(app.reconciler, clock, app.metrics, interval=30, gate=leadership)
        scheduler.started_at = clock.monotonic()
        clock.advance(3600)
        assert scheduler.healthy()[0]  # a follower
        await elector.step()
        assert await leadership.ready()
        healthy, why = scheduler.healthy()
        assert healthy, why
        clock.advance(91)
        assert not scheduler.healthy()[0]  # three intervals as leader without a tick
    finally:
        await app.aclose()


async def test_a_replica_that_steps_down_stops_exporting_its_last_tick(pg: str) -> None:
    """A leader's kill switch and resource gauges go back to a follower's once it steps down."""
    clock = VirtualClock()
    fleet = FakeActuator(clock).add("api")
    settings = load_settings(database_url=pg, allowlist=ALLOW_SIM)
    app = await build_app(
        settings, clock=clock, actuators=[fleet], run_id="was", recover_orphans=False
    )
    registry = app.metrics.registry
    try:
        elector = Elector(
            PgLease(app.store.engine, "was", duration=600),
            app.metrics,
            renew_deadline=600,
            retry_period=600,
        )
        leadership = Leadership(elector, app.reconciler)
        await elector.step()
        await app.killswitch.set(engaged=True, actor="test", reason="incident")
        scheduler = Scheduler(app.reconciler, clock, app.metrics, interval=30, gate=leadership)
        await scheduler.run(max_ticks=1)
        assert registry.get_sample_value("jarvis_killswitch_engaged") == 1
        healthy = {"provider": "sim", "health": "healthy"}
        assert registry.get_sample_value("jarvis_resources", healthy) == 1

        elector.lose("another replica took the lease")
        assert not await leadership.ready()

        # The switch may be released under the next leader: an ex-leader still
        # reading 1 would keep JarvisKillSwitchEngaged firing, and its resources
        # would be counted twice on the dashboard.
        assert registry.get_sample_value("jarvis_killswitch_engaged") == 0
        assert [s for s in registry.collect() if s.name == "jarvis_resources" and s.samples] == []
    finally:
        await app.aclose()
