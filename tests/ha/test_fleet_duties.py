"""What the fleet does once is done by one replica (`jarvis.loop.duties`): the leader, or with
shards the holder of shard 0, and while the database is away the one it last answered as such.

Real PostgreSQL (through a proxy where it goes away); electors stepped by hand, and the
daemon's own `_start_beside` for what runs beside the loop.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from jarvis.app import App, build_app
from jarvis.cli.daemon import _leads, _start_beside
from jarvis.config import load_settings
from jarvis.loop.clock import VirtualClock
from jarvis.loop.duties import FleetDuties
from jarvis.loop.election import Elector
from jarvis.model import Event, EventKind
from jarvis.store import EventStore
from jarvis.store.lease import PgLease
from jarvis.telemetry.metrics import Metrics
from tests.ha.test_unheld_shards import LONG, elector
from tests.revenue.test_ledger import PLANS, START, put
from tests.store.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio


async def until(done: Callable[[], bool]) -> None:
    """Poll ``done``: what `_start_beside` starts runs in tasks of its own."""
    for _ in itertools.count():
        if done():
            return
        await anyio.sleep(0.05)


def leader_elector(app: App, holder: str) -> Elector:
    """An elector of the loop's lease for ``app``, on a lease no test outlives."""
    return Elector(
        PgLease(app.store.engine, holder, duration=LONG),
        app.metrics,
        renew_deadline=LONG / 2,
        retry_period=1.0,
    )


class Monotonic:
    """A monotonic clock the test moves: the electors' renew deadline, without waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_the_leader_the_database_last_answered_keeps_the_outage_duty_past_its_deadline(
    pg_proxy: TcpProxy, pg_url: str
) -> None:
    """With the database away past the renew deadline nobody leads, yet the replica it last
    answered as the leader still tells the outage, and a follower does not."""
    store = await EventStore.connect(pg_proxy.url_for(pg_url), auto_migrate=True)
    monotonic = Monotonic()
    try:
        a, b = (
            Elector(
                PgLease(store.engine, holder, duration=LONG),
                Metrics(),
                renew_deadline=10.0,
                retry_period=1.0,
                monotonic=monotonic,
            )
            for holder in "ab"
        )
        duties = [FleetDuties(a), FleetDuties(b)]
        await a.step()
        await b.step()
        assert [d.held() for d in duties] == [True, False]
        assert [d.held_at_last_answer() for d in duties] == [True, False]

        await pg_proxy.stop()
        monotonic.now = 60.0  # past the renew deadline, with no answer since
        await a.step()
        await b.step()
        assert [d.held() for d in duties] == [False, False]
        assert [d.held_at_last_answer() for d in duties] == [True, False]

        await pg_proxy.start()
        await a.resign()  # a clean stop gives the duty up
        assert not duties[0].held_at_last_answer()
    finally:
        await store.aclose()


async def test_of_two_shard_holders_only_shard_0s_settles_the_revenue(
    pg_url: str, tmp_path: Path
) -> None:
    """Both replicas lead a shard each and run the revenue keeper the daemon starts; one book
    for the database, so only shard 0's holder settles it and sets the MRR gauge."""
    settings = load_settings(
        None,
        database_url=pg_url,
        loop={"shards": 2},
        retention={"enabled": False},
        customers={"enabled": True, "plans": PLANS},
    )
    apps: list[App] = []
    try:
        for holder in "ab":
            own = settings.model_copy(update={"spool_path": tmp_path / f"{holder}.jsonl"})
            apps.append(await build_app(own, clock=VirtualClock(START), auto_migrate=True))
        await put(apps[0].store, "c1", "pro", "active", START)
        for holder, app in zip("ab", apps, strict=True):  # both alive: a fair share is one
            await PgLease(app.store.engine, holder, duration=LONG).heartbeat(None)
        electors = [elector(app.store, holder, 2) for holder, app in zip("ab", apps, strict=True)]
        for each in electors:
            await each.step()
        assert all(_leads(each) for each in electors)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for app, each in zip(apps, electors, strict=True):
                    _start_beside(group, settings, app, each, None)
                # Each keeper sleeps an hour of its own clock after every check.
                await until(lambda: min(a.clock.now() for a in apps) - START > timedelta(hours=5))
                group.cancel_scope.cancel()

        mrr = [app.metrics.registry.get_sample_value("jarvis_mrr_usd") for app in apps]
        shard_0 = [each.electors[0].epoch is not None for each in electors]
        assert shard_0.count(True) == 1
        assert mrr == [49.0 if holds else None for holds in shard_0]  # None: not exported
    finally:
        for app in apps:
            await app.aclose()


def revenue_series(app: App) -> set[str]:
    """The names of the revenue samples on ``app``'s /metrics."""
    body, _ = app.metrics.render()
    return {
        s.name
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name in ("jarvis_mrr_usd", "jarvis_mrr_movement_usd", "jarvis_customers")
    }


async def test_a_replica_that_loses_the_duties_stops_exporting_the_revenue(
    pg_url: str, tmp_path: Path
) -> None:
    """Only the replica doing the fleet-wide duties exports the revenue gauges: the follower
    none, and the leader none from the moment it resigns, so MRR summed over the replicas
    is the fleet's once, before and after the new leader settles."""
    settings = load_settings(
        None,
        database_url=pg_url,
        retention={"enabled": False},
        customers={"enabled": True, "plans": PLANS},
    )
    apps: list[App] = []
    try:
        for holder in "ab":
            own = settings.model_copy(update={"spool_path": tmp_path / f"{holder}.jsonl"})
            apps.append(await build_app(own, clock=VirtualClock(START), auto_migrate=True))
        await put(apps[0].store, "c1", "pro", "active", START)
        # a leads and, once its run renewed, waits an hour (of real time) to step again;
        # b tries every fifth of a second and takes the lease once a resigns.
        a, b = (
            Elector(
                PgLease(app.store.engine, holder, duration=LONG),
                app.metrics,
                renew_deadline=LONG / 2,
                retry_period=period,
            )
            for holder, app, period in (("a", apps[0], 3600.0), ("b", apps[1], 0.2))
        )
        await a.step()
        await b.step()
        assert (a.epoch is not None, b.epoch is not None) == (True, False)

        def mrr() -> list[float | None]:
            return [app.metrics.registry.get_sample_value("jarvis_mrr_usd") for app in apps]

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for app, each in zip(apps, (a, b), strict=True):
                    _start_beside(group, settings, app, each, None)
                await until(lambda: mrr()[0] == 49.0)
                # Hours of b's keeper checking: it never settles nor exports while it follows.
                await until(lambda: apps[1].clock.now() - START > timedelta(hours=3))
                assert mrr() == [49.0, None]
                assert revenue_series(apps[1]) == set()

                await a.resign()
                assert mrr()[0] is None  # at once, not at its keeper's next check
                assert revenue_series(apps[0]) == set()
                await until(lambda: mrr()[1] == 49.0)
                assert mrr() == [None, 49.0]
                assert revenue_series(apps[1]) == {
                    "jarvis_mrr_usd",
                    "jarvis_mrr_movement_usd",
                    "jarvis_customers",
                }
                group.cancel_scope.cancel()
    finally:
        for app in apps:
            await app.aclose()


async def test_a_follower_prunes_nothing_and_the_leader_prunes(pg_url: str, tmp_path: Path) -> None:
    """Retention is one per database: the follower's pruner leaves the old events alone
    however long it runs, and the leader's deletes them."""
    settings = load_settings(None, database_url=pg_url)
    apps: list[App] = []
    try:
        for holder in "ab":
            own = settings.model_copy(update={"spool_path": tmp_path / f"{holder}.jsonl"})
            apps.append(await build_app(own, clock=VirtualClock(START), auto_migrate=True))
        old = START - timedelta(days=40)  # past retention's 30 days
        apps[0].store.append(
            [
                Event(kind=EventKind.POLICY_NOTE, ts=old, idempotency_key=f"old-{n}")
                for n in range(3)
            ]
        )
        await apps[0].store.flush()
        electors = [leader_elector(app, holder) for holder, app in zip("ab", apps, strict=True)]
        for each in electors:
            await each.step()
        leader, follower = apps

        async def notes() -> int:
            return len(await leader.store.events(kinds=[EventKind.POLICY_NOTE]))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                _start_beside(group, settings, follower, electors[1], None)
                # Five retention intervals (an hour) of the follower's clock: five chances.
                await until(lambda: follower.clock.now() - START > timedelta(hours=5))
                assert await notes() == 3
                _start_beside(group, settings, leader, electors[0], None)
                for _ in itertools.count():  # the newest of a kind always stays
                    if await notes() == 1:
                        break
                    await anyio.sleep(0.05)
                group.cancel_scope.cancel()
    finally:
        for app in apps:
            await app.aclose()
