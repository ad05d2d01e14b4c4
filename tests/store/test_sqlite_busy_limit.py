"""The shutdown deadline bounds a SQLite writer's wait for another process's lock.

A busy wait runs in aiosqlite's worker thread: no cancellation reaches it and
the interpreter waits for it at exit, so `jarvis run` stopping with the file
locked by another process exited up to the busy timeout (5 s) after its own
deadline. `EventStore.hurry` shortens the wait of every transaction begun after it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jarvis.store import EventStore, upgrade
from jarvis.store.engine import BUSY_TIMEOUT_MS

pytestmark = pytest.mark.anyio


async def busy_timeout(store: EventStore) -> int:
    async with store.engine.begin() as connection:
        return int((await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar_one())


async def test_hurry_shortens_the_busy_wait_of_later_transactions(tmp_path: Path) -> None:
    """Before: the busy timeout; after `hurry(0)`: no wait at all; never more than the timeout."""
    store = await EventStore.connect(f"sqlite+aiosqlite:///{tmp_path}/jarvis.db")
    try:
        assert await busy_timeout(store) == BUSY_TIMEOUT_MS
        store.hurry(0)
        assert await busy_timeout(store) == 0
        store.hurry(3600)
        assert await busy_timeout(store) == BUSY_TIMEOUT_MS
    finally:
        await store.aclose()


async def test_hurry_leaves_postgresql_alone(pg_url: str) -> None:
    """PostgreSQL's waits are cut by the caller's scope: hurrying its store changes nothing."""
    await upgrade(pg_url)
    store = await EventStore.connect(pg_url)
    try:
        store.hurry(0)
        await store.ping()
    finally:
        await store.aclose()
