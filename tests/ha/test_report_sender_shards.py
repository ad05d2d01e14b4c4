"""With shards, one replica sends the daily report: every shard holder leads the loop, but
what goes out once a day goes from one of them.

Real PostgreSQL, `ShardElector`s stepped by hand, as in test_unheld_shards.py.
"""

from __future__ import annotations

import pytest

from jarvis.cli.daemon import _leads
from jarvis.loop.duties import FleetDuties
from jarvis.store import EventStore
from jarvis.store.lease import PgLease
from tests.ha.test_unheld_shards import LONG, elector

pytestmark = pytest.mark.anyio


async def test_of_two_replicas_holding_a_shard_each_one_sends_the_report(pg_url: str) -> None:
    """Both lead (each holds a shard); exactly one is the daily report's sender."""
    store = await EventStore.connect(pg_url, auto_migrate=True)
    try:
        for holder in ("a", "b"):  # both alive before either takes: a fair share is one
            await PgLease(store.engine, holder, duration=LONG).heartbeat(None)
        a, b = elector(store, "a", 2), elector(store, "b", 2)
        await a.step()
        await b.step()
        assert (len(a.held()), len(b.held())) == (1, 1)

        assert _leads(a)
        assert _leads(b)
        assert [FleetDuties(a).held(), FleetDuties(b).held()].count(True) == 1
    finally:
        await store.aclose()
