"""A frozen database (SIGSTOP, a partition that drops packets) fails writes over to the spool.

Before, a write on a pooled connection to a database that stopped answering
waited forever: events sat only in memory and every tick timed out. Statement
and connect timeouts turn the silence into an operational error within
seconds, so the events spool and replay once the database answers again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from jarvis.model import Event, EventKind
from jarvis.store import EventStore, upgrade
from tests.store.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


async def test_a_frozen_postgres_spools_within_the_statement_timeout(
    pg_url: str, pg_proxy: TcpProxy, tmp_path: Path
) -> None:
    """A flush to a database that stopped answering spools instead of hanging."""
    await upgrade(pg_url)
    store = await EventStore.connect(
        pg_proxy.url_for(pg_url), spool_path=tmp_path / "spool.jsonl", statement_timeout=3.0
    )
    try:
        store.append([Event(EventKind.TICK_STARTED, NOW, "before")])
        await store.flush()  # a pooled connection now exists
        pg_proxy.freeze()
        store.append([Event(EventKind.TICK_STARTED, NOW, "while-frozen")])
        # A hang guard, not a timing assertion: without timeouts this never returns.
        with anyio.fail_after(60):
            result = await store.flush()
        assert result.spooled == 1
        pg_proxy.thaw()
        with anyio.fail_after(60):
            replayed = await store.flush()
        assert replayed.replayed == 1
        keys = [e.idempotency_key for e in await store.events(limit=10)]
        assert keys == ["before", "while-frozen"]
    finally:
        pg_proxy.thaw()
        await store.aclose()
