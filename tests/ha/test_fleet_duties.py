"""What the fleet does once is done by one replica (`jarvis.loop.duties`): the leader, or with
shards the holder of shard 0, and while the database is away the one it last answered as such.

Real PostgreSQL (through a proxy where it goes away); electors stepped by hand, and the
daemon's own `_start_beside` for what runs beside the loop.
"""

from __future__ import annotations

import pytest

from jarvis.loop.duties import FleetDuties
from jarvis.loop.election import Elector
from jarvis.store import EventStore
from jarvis.store.lease import PgLease
from jarvis.telemetry.metrics import Metrics
from tests.ha.test_unheld_shards import LONG
from tests.store.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio


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
