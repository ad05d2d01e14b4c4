"""Fixtures for the event-store tests: a URL per backend, an open store, a TCP proxy.

`db_url` runs a test once on SQLite and once on PostgreSQL; `store` runs it on
both and on the simulation's in-memory backend, so the three answer alike
(migrated, with a spool file, closed after the test).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jarvis.store import EventStore


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh database on each backend in turn."""
    url: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return url


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def store_url(request: pytest.FixtureRequest) -> str | None:
    """A fresh database on each backend in turn; None for the in-memory one."""
    if request.param == "memory":
        return None
    url: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return url


@pytest.fixture
async def store(store_url: str | None, tmp_path: Path) -> AsyncIterator[EventStore]:
    """A migrated store with a spool file in the test's temporary directory."""
    spool = tmp_path / "spool.jsonl"
    if store_url is None:
        opened = await EventStore.in_memory(spool_path=spool)
    else:
        opened = await EventStore.connect(store_url, spool_path=spool, auto_migrate=True)
    try:
        yield opened
    finally:
        await opened.aclose()
