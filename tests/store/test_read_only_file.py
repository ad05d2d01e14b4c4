"""A store opened to read reads a SQLite file this process cannot write, or says why not.

In WAL mode SQLite reads through two files beside the database (``-wal``, ``-shm``)
and creates them when missing, even to read: on a read-only mount of the
daemon's volume (a sidecar, a debug container) or in another user's directory,
every reading command failed with "attempt to write a readonly database". Each
test reads through a read-only bind mount (`tests.read_only_mount`): tests run as
root, whom ``chmod`` does not stop.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jarvis.loop.events import tick_event
from jarvis.model import EventKind
from jarvis.store import EventStore, StoreError
from jarvis.store.nodelock import NodeLock
from jarvis.store.readonly import open_reader
from tests.read_only_mount import read_only_view

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def _write_ticks(store: EventStore, *names: str) -> None:
    for n, name in enumerate(names):
        store.append([tick_event(EventKind.TICK_STARTED, name, T0 + timedelta(minutes=n))])
    await store.flush()


async def _seeded(directory: Path) -> Path:
    """A database in ``directory`` (made by the store) holding two ticks, closed: nothing has it
    open."""
    database = directory / "jarvis.db"
    store = await EventStore.connect(_url(database))
    try:
        await _write_ticks(store, "t1", "t2")
    finally:
        await store.aclose()
    return database


@asynccontextmanager
async def _held_open(directory: Path) -> AsyncIterator[tuple[Path, EventStore]]:
    """The database `_seeded` makes, held open by a writer whose last commit (``t3``) is
    still in ``-wal`` only: SQLite copies its log into the file at 1,000 pages."""
    database = await _seeded(directory)
    writer = await EventStore.connect(_url(database))
    try:
        await _write_ticks(writer, "t3")
        yield database, writer
    finally:
        await writer.aclose()


async def _ticks(url: str) -> list[str | None]:
    store = await EventStore.connect(url, read_only=True)
    try:
        return [event.tick_id for event in await store.events(limit=10)]
    finally:
        await store.aclose()


async def test_a_read_only_mount_of_a_closed_database_is_read(tmp_path: Path) -> None:
    """With no ``-wal`` and none to be made, the file holds every transaction and is read."""
    await _seeded(tmp_path / "data")
    with read_only_view(tmp_path / "data", tmp_path / "ro") as view:
        assert await _ticks(_url(view / "jarvis.db")) == ["t1", "t2"]
        assert sorted(p.name for p in view.iterdir()) == ["jarvis.db"]


async def test_a_read_only_mount_beside_a_live_writer_sees_what_is_only_in_its_log(
    tmp_path: Path,
) -> None:
    """A writer holds the database open: its latest commits, still in ``-wal``, are read too."""
    async with _held_open(tmp_path / "data") as (database, writer):
        assert database.with_name("jarvis.db-wal").stat().st_size > 0
        with read_only_view(tmp_path / "data", tmp_path / "ro") as view:
            assert await _ticks(_url(view / "jarvis.db")) == ["t1", "t2", "t3"]
            await _write_ticks(writer, "t4")
            assert await _ticks(_url(view / "jarvis.db")) == ["t1", "t2", "t3", "t4"]


async def test_a_log_without_its_index_on_a_read_only_mount_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    """A ``-wal`` with commits but no ``-shm`` (which cannot be made) is named, not skipped."""
    async with _held_open(tmp_path / "data") as (database, _):
        copy = _without_index(database, tmp_path / "copy")
    with read_only_view(copy, tmp_path / "ro") as view, pytest.raises(StoreError) as caught:
        await _ticks(_url(view / "jarvis.db"))
    message = str(caught.value)
    assert "\n" not in message
    assert f"{view}/jarvis.db-wal" in message
    assert "jarvis.db-shm" in message


async def test_a_reader_that_began_with_nothing_open_sees_a_daemon_that_starts_later(
    tmp_path: Path,
) -> None:
    """`jarvis events --follow` read the file as immutable with no daemon running: once one
    starts and writes, the same store reads through its log, not the stale file."""
    await _seeded(tmp_path / "data")
    with read_only_view(tmp_path / "data", tmp_path / "ro") as view:
        reader = await EventStore.connect(_url(view / "jarvis.db"), read_only=True)
        try:
            assert [e.tick_id for e in await reader.events(limit=10)] == ["t1", "t2"]
            async with _held_open(tmp_path / "data"):  # seeding again adds nothing: same keys
                assert [e.tick_id for e in await reader.events(limit=10)] == ["t1", "t2", "t3"]
        finally:
            await reader.aclose()


def _without_index(database: Path, copy: Path) -> Path:
    """A copy of ``database`` and its ``-wal`` in ``copy``, taken without the ``-shm``."""
    copy.mkdir()
    for suffix in ("", "-wal"):
        (copy / f"jarvis.db{suffix}").write_bytes(Path(f"{database}{suffix}").read_bytes())
    return copy


async def test_a_database_a_daemon_holds_is_not_read_as_immutable(tmp_path: Path) -> None:
    """The daemon's node lock is held and no ``-wal`` exists yet: a read would be unsafe, and
    says so in one line rather than read a file the daemon is about to write."""
    database = await _seeded(tmp_path / "data")
    lock = NodeLock(database)
    lock.acquire()
    try:
        with (
            read_only_view(tmp_path / "data", tmp_path / "ro") as view,
            pytest.raises(StoreError) as caught,
        ):
            await _ticks(_url(view / "jarvis.db"))
    finally:
        lock.release()
    message = str(caught.value)
    assert "\n" not in message
    assert f"pid {os.getpid()}" in message
    assert "jarvis.db-shm" in message


async def test_jarvis_plans_reader_reads_a_read_only_mount(tmp_path: Path) -> None:
    """`jarvis plan`'s direct reader (stdlib sqlite3) reads it too, without SQLAlchemy."""
    await _seeded(tmp_path / "data")
    with read_only_view(tmp_path / "data", tmp_path / "ro") as view:
        reader = await open_reader(_url(view / "jarvis.db"))
        assert reader is not None
        try:
            ticks = [
                e.tick_id
                for e in await reader.events(
                    limit=10, kinds=None, resource=None, after_id=None, since=None
                )
            ]
        finally:
            await reader.aclose()
    assert ticks == ["t1", "t2"]
