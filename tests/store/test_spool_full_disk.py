"""A spool of several chunks replayed on a full disk: every chunk lands, once.

The replay moves a cursor file beside the spool after each chunk it commits
(`jarvis.store.spool`), and writing it needs free space. On a disk the outage's
spool filled, the first chunk (`CHUNK_LINES` lines) committed, its cursor could
not be written, and the replay failed there; every later flush committed that
chunk again (a no-op) and failed the same way, so the lines after it, and every
flush's own batch, never reached the healthy database again. The spool is
on a real tmpfs filled to the last byte; the database is PostgreSQL.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path

import pytest

from jarvis.model import Event, RetryState
from jarvis.store import EventStore, FlushResult, upgrade
from jarvis.store.spool import CHUNK_LINES, Spool
from tests.full_disk import fill, tmpfs
from tests.store.spooled import T0, ev, keys

pytestmark = pytest.mark.anyio

OLDER = RetryState("sim://a", "restart", attempts=(T0,), consecutive_failures=1)
NEWER = RetryState("sim://a", "restart", attempts=(T0, T0), consecutive_failures=2, updated_at=T0)
FIRST = [ev(f"e{i}") for i in range(CHUNK_LINES - 1)]
"""With `OLDER`, the first chunk's lines exactly."""
SECOND = [ev(f"e{i}") for i in range(CHUNK_LINES - 1, CHUNK_LINES + 500)]
"""With `NEWER`, what waits after the first chunk."""


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (the spool takes about a quarter of it), unmounted afterwards."""
    with tmpfs(tmp_path / "disk", "4m") as mount:
        yield mount


def spool_two_chunks(path: Path) -> None:
    """What an outage left: `FIRST` and the older ledger row, then `SECOND` and the newer."""
    spool = Spool(path)
    try:
        spool.append(FIRST, [OLDER])
        spool.append(SECOND, [NEWER])
    finally:
        spool.close()


def fill_to_the_last_byte(disk: Path) -> None:
    fill(disk)
    with pytest.raises(OSError) as full:
        (disk / "probe").write_bytes(b"x")
    assert full.value.errno == errno.ENOSPC


async def stored(store: EventStore) -> list[str]:
    return keys(await store.events(limit=len(FIRST) + len(SECOND) + 10))


def every_key(*more: Event) -> list[str]:
    return keys([*FIRST, *SECOND, *more])


async def test_a_spool_of_several_chunks_replays_to_its_end_on_a_full_disk(
    pg_url: str, tmp_path: Path, disk: Path
) -> None:
    """The flush replays both chunks, then writes its own batch; the spool is emptied."""
    await upgrade(pg_url)
    path = disk / "spool.jsonl"
    spool_two_chunks(path)
    store = await EventStore.connect(pg_url, spool_path=path)
    try:
        fill_to_the_last_byte(disk)
        store.append([ev("after")])
        waiting = len(FIRST) + len(SECOND)
        assert await store.flush() == FlushResult(written=waiting + 1, spooled=0, replayed=waiting)
        assert await stored(store) == every_key(ev("after"))
        assert await store.load_retries() == {("sim://a", "restart"): NEWER}
        assert path.stat().st_size == 0
        assert not (disk / "spool.jsonl.cursor").exists()
        assert store.write_error is None
    finally:
        await store.aclose()


async def test_a_crash_after_a_chunk_whose_cursor_was_not_written_duplicates_nothing(
    pg_url: str, tmp_path: Path, disk: Path
) -> None:
    """The cursor that cannot be written stays behind, never ahead: after a crash the chunk
    committed without it replays again, as a no-op, and nothing after it is skipped."""
    await upgrade(pg_url)
    path = disk / "spool.jsonl"
    spool_two_chunks(path)
    spool = Spool(path)
    try:
        fill_to_the_last_byte(disk)
        chunk = spool.head()
        assert keys(chunk.events) == keys(FIRST)
        assert chunk.retries == (OLDER,)
        # The replay commits it (below, as its own transaction would have), then:
        spool.advance(chunk)
        assert keys(spool.head().events) == keys(SECOND)
    finally:
        spool.close()  # the process dies here, before the spool is replayed to its end
    assert not (disk / "spool.jsonl.cursor").exists()
    committed = await EventStore.connect(pg_url)
    try:
        committed.append(FIRST)
        committed.stage_retry(OLDER)
        await committed.flush()
    finally:
        await committed.aclose()

    store = await EventStore.connect(pg_url, spool_path=path)
    try:
        assert store.spooled == len(FIRST) + len(SECOND)
        assert (await store.flush()).spooled == 0
        assert await stored(store) == every_key()
        assert await store.load_retries() == {("sim://a", "restart"): NEWER}
        assert path.stat().st_size == 0
    finally:
        await store.aclose()


def test_a_cursor_past_the_spools_end_is_dropped_on_a_full_disk(disk: Path) -> None:
    """A spool cut by hand (or emptied by a version that zeroed the cursor after it) leaves
    the cursor past its end; the spool then replays from its start. Before, the cursor was
    rewritten as 0, which a full disk refused: the spool could not be opened (the daemon
    ran without one) or, found while running, no replay could read it."""
    path = disk / "spool.jsonl"
    spool = Spool(path)
    spool.append([ev("a"), ev("b")])
    spool.close()
    (disk / "spool.jsonl.cursor").write_text(f"{path.stat().st_size + 100}\n")
    fill_to_the_last_byte(disk)

    reopened = Spool(path)
    try:
        assert reopened.count == 2
        assert keys(reopened.head().events) == ["a", "b"]
        assert not (disk / "spool.jsonl.cursor").exists()
    finally:
        reopened.close()
