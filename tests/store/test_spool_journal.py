"""The spool as a journal: incremental replay by cursor, ledger rows, dead letters, one owner.

Before, every flush re-read and re-parsed the whole spool file (0.76 s for
20k events, on every failed flush of an outage), one unreadable line failed
every flush after it, ledger rows were kept only in memory, and two
processes could truncate each other's lines.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jarvis.model import RetryState
from jarvis.store import EventStore, FlushResult
from jarvis.store.spool import Spool, SpoolBusyError
from tests.store.spooled import T0, damaged_spool, ev, keys

pytestmark = pytest.mark.anyio


def test_replay_moves_a_cursor_that_survives_a_restart(tmp_path: Path) -> None:
    """A committed chunk is never read again, by this process or the next."""
    path = tmp_path / "spool.jsonl"
    spool = Spool(path)
    spool.append([ev(f"e{i}") for i in range(5)])
    first = spool.head(limit=2)
    assert keys(first.events) == ["e0", "e1"]
    spool.advance(first)
    assert spool.count == 3
    spool.close()

    reopened = Spool(path)
    try:
        assert reopened.count == 3
        assert keys(reopened.head().events) == ["e2", "e3", "e4"]
        reopened.advance(reopened.head())
        assert path.read_bytes() == b""
        assert not reopened.pending
    finally:
        reopened.close()


def test_the_head_is_read_once_while_the_database_stays_away(tmp_path: Path) -> None:
    """Flushes that fail do not re-read what waits: the chunk read first is the one replayed."""
    path = tmp_path / "spool.jsonl"
    spool = Spool(path)
    try:
        spool.append([ev("a"), ev("b")])
        head = spool.head()
        # Were the file read again, this damage would show; the kept chunk is used instead.
        path.write_bytes(path.read_bytes().replace(b'"k":"a"', b'"k":"X"'))
        assert spool.head() is head
        spool.append([ev("c")])
        assert spool.head() is head
    finally:
        spool.close()


def test_ledger_rows_are_journaled_and_the_newest_per_pair_wins(tmp_path: Path) -> None:
    """An attempt's ledger row is as durable as its intent, and replays newest-last."""
    spool = Spool(tmp_path / "spool.jsonl")
    try:
        older = RetryState("sim://a", "restart", attempts=(T0,), consecutive_failures=1)
        newer = RetryState(
            "sim://a", "restart", attempts=(T0, T0), consecutive_failures=2, updated_at=T0
        )
        spool.append([ev("intent-1")], [older])
        spool.append([ev("intent-2")], [newer])
        assert (spool.count, spool.rows) == (2, 2)
        head = spool.head()
        assert keys(head.events) == ["intent-1", "intent-2"]
        assert head.retries == (newer,)
        spool.advance(head)
        assert (spool.count, spool.rows) == (0, 0)
    finally:
        spool.close()


async def test_a_crash_between_commit_and_cursor_duplicates_nothing(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The chunk committed just before a crash replays as a no-op; nothing is lost."""
    path = tmp_path / "spool.jsonl"
    spool = Spool(path)
    spool.append([ev("a"), ev("b")])
    spool.close()
    before_commit = path.read_bytes()

    store = await EventStore.connect(sqlite_url, spool_path=path, auto_migrate=True)
    try:
        store.append([ev("c")])
        assert await store.flush() == FlushResult(written=3, spooled=0, replayed=2)
    finally:
        await store.aclose()
    # As if the process died after the commit, before the cursor moved.
    path.write_bytes(before_commit)
    (tmp_path / "spool.jsonl.cursor").write_text("0\n")

    again = await EventStore.connect(sqlite_url, spool_path=path)
    try:
        assert again.spooled == 2
        assert (await again.flush()).spooled == 0
        assert keys(await again.events(limit=10)) == ["a", "b", "c"]
    finally:
        await again.aclose()


async def test_a_damaged_line_is_set_aside_and_recording_goes_on(
    tmp_path: Path, sqlite_url: str
) -> None:
    """One unreadable line goes to the dead-letter file; the lines around it are written."""
    path = tmp_path / "spool.jsonl"
    damaged_spool(path, b'{"kind": "resource.changed", "ts": "not a time"\n')

    store = await EventStore.connect(sqlite_url, spool_path=path, auto_migrate=True)
    try:
        result = await store.flush()
        assert result == FlushResult(written=2, spooled=0, replayed=2, dead_letters=1)
        assert keys(await store.events(limit=10)) == ["before", "after"]
        store.append([ev("next")])
        assert await store.flush() == FlushResult(written=1, spooled=0)
    finally:
        await store.aclose()
    [dead] = [json.loads(line) for line in (tmp_path / "spool.jsonl.dead").read_text().splitlines()]
    assert dead["line"].startswith('{"kind": "resource.changed"')
    assert "Error" in dead["error"]
    assert dead["spool"] == str(path)


async def test_a_second_process_runs_without_the_spool(tmp_path: Path, sqlite_url: str) -> None:
    """One process owns a spool file; another opening it gets none instead of racing it."""
    path = tmp_path / "spool.jsonl"
    owner = Spool(path)
    try:
        with pytest.raises(SpoolBusyError, match="in use by another process"):
            Spool(path)
        store = await EventStore.connect(sqlite_url, spool_path=path, auto_migrate=True)
        try:
            assert store.dead_letter_path is None
        finally:
            await store.aclose()
    finally:
        owner.close()
    Spool(path).close()


async def test_a_line_the_database_refuses_is_set_aside_and_the_rest_written(
    tmp_path: Path, db_url: str
) -> None:
    """A line that reads but that the database refuses does not stop every flush after it."""
    path = tmp_path / "spool.jsonl"
    refused = (
        b'{"kind":"resource.changed","ts":"2025-03-01T12:00:00+00:00","idempotency_key":null}\n'
    )
    damaged_spool(path, refused)

    store = await EventStore.connect(db_url, spool_path=path, auto_migrate=True)
    try:
        result = await store.flush()
        assert result == FlushResult(written=2, spooled=0, replayed=2, dead_letters=1)
        assert keys(await store.events(limit=10)) == ["before", "after"]
    finally:
        await store.aclose()
    [dead] = [json.loads(line) for line in (tmp_path / "spool.jsonl.dead").read_text().splitlines()]
    assert dead["error"].startswith("refused by the database: ")
    assert '"idempotency_key":null' in dead["line"]
