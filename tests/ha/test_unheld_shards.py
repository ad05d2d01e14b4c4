"""A shard nobody holds is counted and timed on every replica's /metrics.

Real PostgreSQL, `ShardElector`s stepped by hand: no processes. The alert on
these gauges (JarvisShardUnheld) is pinned by promtool in
deploy/monitoring/alerts.test.yaml.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, insert

from jarvis.loop.shards import ShardElector
from jarvis.store import EventStore
from jarvis.store.lease import PgLease
from jarvis.store.tables import leases
from jarvis.telemetry.metrics import Metrics
from tests.telemetry.test_metrics import value

pytestmark = pytest.mark.anyio

LONG = 600.0


def elector(store: EventStore, holder: str, shards: int) -> ShardElector:
    return ShardElector(
        store.engine,
        holder,
        Metrics(),
        shards=shards,
        duration=LONG,
        renew_deadline=LONG / 2,
        retry_period=1.0,
    )


async def test_a_shard_no_replica_takes_is_counted_and_timed(pg_url: str) -> None:
    """A shard left unheld (a second replica beats but never takes its share) is reported
    on the other replica, for longer each round; the lease period the alert measures by
    is exported beside it."""
    store = await EventStore.connect(pg_url, auto_migrate=True)
    try:
        a = elector(store, "a", 2)
        await a.step()  # no heartbeat yet: takes nothing, then beats
        # A replica that is alive (it beats) but takes nothing: a's fair share is one of two.
        await PgLease(store.engine, "stuck", duration=LONG).heartbeat(None)
        await a.step()
        first = value(a.metrics, "jarvis_shards_unheld_seconds")
        await a.step()
        later = value(a.metrics, "jarvis_shards_unheld_seconds")

        assert value(a.metrics, "jarvis_shards_held") == 1
        assert value(a.metrics, "jarvis_shards_unheld") == 1
        assert first is not None
        assert later is not None
        assert 0 <= first < later < LONG
        assert value(a.metrics, "jarvis_lease_duration_seconds") == LONG
        await a.resign()
        b = elector(store, "b", 2)
        await b.step()
        await b.step()  # a left: b takes both, and none is unheld
        assert value(b.metrics, "jarvis_shards_held") == 2
        assert value(b.metrics, "jarvis_shards_unheld") == 0
        assert value(b.metrics, "jarvis_shards_unheld_seconds") == 0
    finally:
        await store.aclose()


async def test_shards_of_another_count_being_held_are_not_unheld_shards(pg_url: str) -> None:
    """While a lease of another shard count is live (a rolling update of loop.shards), no
    shard of this count can be taken and its holders act: nothing is reported unheld."""
    store = await EventStore.connect(pg_url, auto_migrate=True)
    try:
        async with store.engine.begin() as connection:
            await connection.execute(
                insert(leases).values(
                    name="shard-3",
                    holder="four",
                    epoch=1,
                    acquired_at=func.now(),
                    renewed_at=func.now(),
                    expires_at=func.now() + timedelta(seconds=LONG),
                    shards=4,
                )
            )
        a = elector(store, "a", 2)
        await a.step()
        await a.step()

        assert value(a.metrics, "jarvis_shards_held") == 0
        assert value(a.metrics, "jarvis_shards_unheld") == 0
    finally:
        await store.aclose()
