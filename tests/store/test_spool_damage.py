"""A spool damaged by a crash, a disk or a hand: what waits in it is neither lost nor stuck.

The damage is done to the real files the spool keeps (the journal, its cursor)
between or during the store's own calls, as a crash, a full disk or an
operator's shell would leave them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jarvis.store import EventStore
from jarvis.store.spool import Spool, SpoolBusyError
from tests.store.spooled import damaged_spool, ev, keys

pytestmark = pytest.mark.anyio


def test_a_cursor_past_the_end_does_not_skip_lines_spooled_after_it(tmp_path: Path) -> None:
    """A cursor left past the end of the spool is reset at open, so a later crash loses nothing."""
    path = tmp_path / "spool.jsonl"
    # What a crash between emptying the spool and zeroing its cursor leaves.
    (tmp_path / "spool.jsonl.cursor").write_text("300\n")
    spool = Spool(path)
    spool.append([ev(f"e{i}") for i in range(4)])
    spool.close()  # the process dies before the database is back

    reopened = Spool(path)
    try:
        assert reopened.count == 4
        head = reopened.head()
        assert keys(head.events) == ["e0", "e1", "e2", "e3"]
        assert head.dead == ()
    finally:
        reopened.close()


def test_a_spool_file_replaced_while_running_is_replayed_from_its_start(tmp_path: Path) -> None:
    """A spool file another hand replaces is read as it now is, and its replay comes to an end."""
    path = tmp_path / "spool.jsonl"
    spool = Spool(path)
    try:
        spool.append([ev("a"), ev("b"), ev("c")])
        spool.advance(spool.head(limit=1))
        # An operator keeps two lines of their own in a new file moved over the spool.
        kept = tmp_path / "kept.jsonl"
        other = Spool(tmp_path / "other.jsonl")
        other.append([ev("x"), ev("y")])
        other.close()
        kept.write_bytes((tmp_path / "other.jsonl").read_bytes())
        kept.replace(path)
        head = spool.head()
        assert keys(head.events) == ["x", "y"]
        assert head.dead == ()
        spool.advance(head)
        assert not spool.pending
    finally:
        spool.close()


def test_a_spool_file_removed_while_running_takes_the_next_lines_from_its_start(
    tmp_path: Path,
) -> None:
    """Lines spooled after the spool file was deleted are all replayed, and the replay ends."""
    path = tmp_path / "spool.jsonl"
    spool = Spool(path)
    try:
        spool.append([ev("a"), ev("b"), ev("c")])
        spool.advance(spool.head(limit=2))
        path.unlink()
        spool.append([ev("d")])
        head = spool.head()
        assert keys(head.events) == ["d"]
        assert head.dead == ()
        spool.advance(head)
        assert not spool.pending
        assert path.read_bytes() == b""
    finally:
        spool.close()


async def test_a_dead_letter_file_that_cannot_be_written_is_named_not_the_database(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A flush held up by an unwritable dead-letter file says so, not that the database is away."""
    path = tmp_path / "spool.jsonl"
    damaged_spool(path, b"\x00\xff binary garbage\n", after=None)
    (tmp_path / "spool.jsonl.dead").mkdir()  # what no open(..., "a") can write, even as root

    store = await EventStore.connect(sqlite_url, spool_path=path, auto_migrate=True)
    try:
        store.append([ev("next")])
        assert (await store.flush()).spooled == 3  # kept, in order, behind the damaged line
        assert store.write_error is not None
        assert store.write_error.startswith("cannot write dead-letter file"), store.write_error
    finally:
        await store.aclose()


def test_a_cursor_of_binary_garbage_replays_everything(tmp_path: Path) -> None:
    """A cursor a damaged disk filled with bytes that are no text counts as no cursor."""
    path = tmp_path / "spool.jsonl"
    spool = Spool(path)
    spool.append([ev("a"), ev("b")])
    spool.close()
    (tmp_path / "spool.jsonl.cursor").write_bytes(b"\x00\xff\xfe\x80\n")

    reopened = Spool(path)
    try:
        assert keys(reopened.head().events) == ["a", "b"]
    finally:
        reopened.close()


def test_a_spool_named_through_a_symlink_is_the_same_spool(tmp_path: Path) -> None:
    """A second process naming the spool through a symlink finds it in use, not a new spool."""
    (tmp_path / "data").mkdir()
    real = tmp_path / "data" / "spool.jsonl"
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    first = Spool(real)
    try:
        with pytest.raises(SpoolBusyError, match="in use by another process"):
            Spool(link).close()
    finally:
        first.close()
