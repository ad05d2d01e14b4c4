"""Outages: a flush to an unreachable database spools, the next one replays.

The databases go away for real: PostgreSQL sits behind a TCP proxy that the
test stops (pooled connections are cut, new ones refused), and a SQLite file
is write-locked by another connection until the busy timeout gives up.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jarvis.model import Event, EventKind, RetryState
from jarvis.store import EventStore, FlushResult, StoreError, upgrade
from jarvis.store.codec import event_to_json
from tests.store.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def ev(key: str) -> Event:
    return Event(kind=EventKind.RESOURCE_CHANGED, ts=T0, idempotency_key=key, payload={"k": key})


async def keys(store: EventStore) -> list[str]:
    return [e.idempotency_key for e in await store.events(limit=1000)]


async def test_postgres_outage_spools_then_replays_in_order_once(
    pg_url: str, pg_proxy: TcpProxy, tmp_path: Path
) -> None:
    """Events flushed while PostgreSQL is gone wait in the spool and land in order, once."""
    await upgrade(pg_url)
    spool = tmp_path / "spool.jsonl"
    store = await EventStore.connect(pg_proxy.url_for(pg_url), spool_path=spool)
    try:
        store.append([ev("before-1"), ev("before-2")])
        assert await store.flush() == FlushResult(written=2, spooled=0)

        await pg_proxy.stop()
        # before-2 again: already in the database, so its replay must be a no-op.
        store.append([ev("down-1"), ev("down-2"), ev("before-2")])
        retry = RetryState("sim://a", "restart", attempts=(T0,), consecutive_failures=1)
        store.stage_retry(retry)
        assert await store.flush() == FlushResult(written=0, spooled=3)
        store.append([ev("down-3")])
        assert await store.flush() == FlushResult(written=0, spooled=4)
        assert store.spooled == 4
        # Four events and the ledger row: the row is journaled, not only kept in memory.
        assert len(spool.read_text().splitlines()) == 5
        with pytest.raises(StoreError, match=f"127.0.0.1:{pg_proxy.port}"):
            await store.ping()

        await pg_proxy.start()
        store.append([ev("after-1")])
        assert await store.flush() == FlushResult(written=5, spooled=0, replayed=4)
        assert await keys(store) == [
            "before-1", "before-2", "down-1", "down-2", "down-3", "after-1"
        ]  # fmt: skip
        assert spool.read_text() == ""
        assert store.spooled == 0
        assert await store.load_retries() == {("sim://a", "restart"): retry}
    finally:
        await store.aclose()


async def test_spooled_events_survive_a_restart(
    pg_url: str, pg_proxy: TcpProxy, tmp_path: Path
) -> None:
    """A new store on the same spool file replays what the previous process left there."""
    await upgrade(pg_url)
    spool = tmp_path / "spool.jsonl"
    url = pg_proxy.url_for(pg_url)
    first = await EventStore.connect(url, spool_path=spool)
    try:
        await pg_proxy.stop()
        first.append([ev("a"), ev("b")])
        assert (await first.flush()).spooled == 2
    finally:
        await first.aclose()

    await pg_proxy.start()
    second = await EventStore.connect(url, spool_path=spool)
    try:
        assert second.spooled == 2
        assert await second.flush() == FlushResult(written=2, spooled=0, replayed=2)
        assert await keys(second) == ["a", "b"]
    finally:
        await second.aclose()


async def test_without_a_spool_a_failed_flush_raises_and_keeps_the_buffer(
    pg_url: str, pg_proxy: TcpProxy
) -> None:
    """With no spool file, an outage raises StoreError and the events wait in memory."""
    await upgrade(pg_url)
    store = await EventStore.connect(pg_proxy.url_for(pg_url))
    try:
        await pg_proxy.stop()
        store.append([ev("a")])
        with pytest.raises(StoreError, match="cannot reach PostgreSQL"):
            await store.flush()
        await pg_proxy.start()
        store.append([ev("b")])
        assert await store.flush() == FlushResult(written=2, spooled=0)
        assert await keys(store) == ["a", "b"]
    finally:
        await store.aclose()


async def test_locked_sqlite_spools_then_replays(tmp_path: Path) -> None:
    """A SQLite file write-locked past the busy timeout spools; the next flush replays."""
    db = tmp_path / "jarvis.db"
    store = await EventStore.connect(f"sqlite+aiosqlite:///{db}", spool_path=tmp_path / "spool")
    try:
        store.append([ev("first")])
        await store.flush()
        locker = sqlite3.connect(db, isolation_level=None)
        try:
            locker.execute("BEGIN EXCLUSIVE")
            store.append([ev("locked-1"), ev("locked-2")])
            assert await store.flush() == FlushResult(written=0, spooled=2)
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        store.append([ev("after")])
        assert await store.flush() == FlushResult(written=3, spooled=0, replayed=2)
        assert await keys(store) == ["first", "locked-1", "locked-2", "after"]
    finally:
        await store.aclose()


async def test_a_torn_last_spool_line_is_cut_on_open(tmp_path: Path, sqlite_url: str) -> None:
    """A line half-written by a crash is dropped; the whole lines before it replay."""
    spool = tmp_path / "spool.jsonl"
    whole = "".join(event_to_json(ev(key)) + "\n" for key in ("a", "b"))
    spool.write_text(whole + event_to_json(ev("c"))[:20], encoding="utf-8")
    store = await EventStore.connect(sqlite_url, spool_path=spool)
    try:
        assert store.spooled == 2
        assert spool.read_text(encoding="utf-8") == whole
        assert await store.flush() == FlushResult(written=2, spooled=0, replayed=2)
        assert await keys(store) == ["a", "b"]
    finally:
        await store.aclose()
