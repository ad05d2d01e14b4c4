"""The spool: a local journal where events and ledger rows wait while the database is away.

Owned by `EventStore`: a flush the database refuses appends its events and
retry-ledger rows here (fsynced), and the next flush that reaches the
database replays them first, in order, a chunk per transaction. Replay is
incremental: a cursor file beside the spool (``<spool>.cursor``) holds the
byte offset of the first line not yet committed, written (atomically, by
rename) only after its chunk's commit, and the chunk read is kept in memory
while the database stays away, so a flush during an outage costs no read of
what already waits. A crash between a commit and the cursor write only
replays that chunk again, which the unique idempotency keys (and the ledger
rows being the same ones) turn into a no-op; nothing is lost, because the
cursor never passes a line that is not committed. A cursor that cannot be
written (a full disk) stays behind and the replay goes on from where it is
in memory: a crash then replays more again, never less. When all is
replayed the cursor is removed and the file emptied, neither of which needs
free space.

A line that cannot be read (a damaged disk, a hand edit) is set aside in a
dead-letter file beside the spool (``<spool>.dead``) with why, and replay goes
on; the store counts them so the loop can raise an alert.

One process owns a spool file at a time (an advisory lock on
``<spool>.lock``): a second one opening it gets `SpoolBusyError`, and runs without
a spool. Methods block on file I/O; the store calls them in a worker thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import structlog

from jarvis.model import Event, RetryState
from jarvis.store.errors import LASTING_ERRNOS, StoreError, file_trouble, real_path, said
from jarvis.store.spool_lines import RETRY_PREFIX, decode_line, encode_lines

__all__ = ["CHUNK_LINES", "Chunk", "Spool", "SpoolBusyError", "SpoolError"]

log = structlog.get_logger("jarvis.store")

CHUNK_LINES = 5000
"""Lines replayed per transaction: bounds the memory and the transaction of one replay step."""


class SpoolError(StoreError):
    """The spool's own files cannot be read or written: the local disk, not the database."""


class SpoolBusyError(StoreError):
    """Another process owns this spool file."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """Lines ``[start, end)`` of the spool, read: what to replay and what to set aside."""

    start: int
    end: int
    events: tuple[Event, ...]
    retries: tuple[RetryState, ...]
    """The newest row per (resource, action kind) among the lines, in first-seen order."""
    dead: tuple[tuple[int, bytes, str], ...]
    """Damaged lines: byte offset, the line, why it cannot be read."""
    dead_events: int
    """How many of ``dead`` were counted as events (all but damaged ledger lines)."""
    row_lines: int
    """Ledger lines read whole (several of one pair are one row in ``retries``)."""


class Spool:
    """Events and ledger rows waiting in one file, oldest first; counts kept without rereading."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # The companions sit beside the file itself: named through a symlink, the
        # spool must find the same lock (a second writer) and the same cursor.
        real = real_path(path)
        self.cursor_path = real.with_name(real.name + ".cursor")
        self.dead_path = real.with_name(real.name + ".dead")
        self._lock = _lock(real.with_name(real.name + ".lock"), path)
        self._identity: tuple[int, int] | None = None
        """(device, inode) of the file this process writes; None while there is none."""
        try:
            self._size, self._offset = self._repair()
            self.count, self.rows = self._count_waiting()
        except BaseException:
            self.close()
            raise
        self._head: Chunk | None = None

    @property
    def pending(self) -> bool:
        """Whether any line waits for replay (events or ledger rows)."""
        return self._offset < self._size

    def close(self) -> None:
        """Release the file to another process."""
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1

    def _repair(self, *, replaced: bool = False) -> tuple[int, int]:
        """Cut a torn last line (a crash mid-write); return the size and the replay offset.

        ``replaced``: the file is not the one the cursor counts in, so it replays from its start.
        """
        self._identity = None
        try:
            with self.path.open("r+b") as handle:
                self._identity = _identity(handle)
                size = handle.seek(0, os.SEEK_END)
                whole = _last_newline(handle, size)
                if whole != size:
                    handle.truncate(whole)
                    os.fsync(handle.fileno())
        except FileNotFoundError:
            whole = 0
        except OSError as exc:
            raise _failed("read spool file", self.path, exc) from exc
        offset = 0 if replaced else self._read_cursor()
        if replaced or offset > whole:
            # A spool cut by hand (or emptied by a version that zeroed the cursor
            # after it) leaves the cursor past the end; a replaced file is not the
            # one it counts in. Dropped now (a missing cursor reads as zero, and
            # removing it needs no space on a full disk): left there, it would skip
            # the first lines appended next, were the process to die before a
            # replay moved it.
            self._drop_cursor()
            offset = 0
        return whole, offset

    def _follow(self) -> None:
        """Take the file as it now is if another hand replaced, cut or removed it.

        Otherwise the size kept here would be past the file's end, and a replay
        reading up to it would never end.
        """
        seen: tuple[tuple[int, int] | None, int]
        try:
            status = self.path.stat()
            if not stat.S_ISREG(status.st_mode):
                return  # not a file at all: the read or write that follows says so
            seen = ((status.st_dev, status.st_ino), status.st_size)
        except FileNotFoundError:
            seen = (None, 0)
        except OSError as exc:
            raise _failed("read spool file", self.path, exc) from exc
        if seen == (self._identity, self._size):
            return
        self._size, self._offset = self._repair(replaced=seen[0] != self._identity)
        self.count, self.rows = self._count_waiting()
        self._head = None

    def _read_cursor(self) -> int:
        try:
            text = self.cursor_path.read_bytes().strip()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise _failed("read spool cursor", self.cursor_path, exc) from exc
        # A cursor that is not a number (a hand edit, bytes a damaged disk left, even
        # ones that are no text) replays everything: duplicates are harmless, loss is not.
        return int(text) if text.isdigit() else 0

    def _count_waiting(self) -> tuple[int, int]:
        """(events, ledger rows) between the cursor and the end, read once at open."""
        if not self.pending:
            return 0, 0
        events = rows = 0
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            for line in handle:
                if line.startswith(RETRY_PREFIX):
                    rows += 1
                else:
                    events += 1
        return events, rows

    def append(self, events: Sequence[Event], retries: Sequence[RetryState] = ()) -> None:
        """Write events, then ledger rows, durably (fsynced) after those already waiting.

        Raises TypeError/ValueError for a value that cannot be JSON (a bug), and
        StoreError when the file cannot be written (then nothing was added).
        """
        if not events and not retries:
            return
        data = encode_lines(list(events), list(retries))
        self._follow()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as handle:
                self._identity = _identity(handle)
                try:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                except OSError:
                    # A half-written line would be glued to the next append.
                    handle.truncate(self._size)
                    raise
        except OSError as exc:
            raise _failed("write spool file", self.path, exc) from exc
        self._size += len(data)
        self.count += len(events)
        self.rows += len(retries)

    def head(self, limit: int = CHUNK_LINES) -> Chunk:
        """The next ``limit`` lines to replay, read once and kept until `advance`."""
        if self._head is not None and self._head.start == self._offset:
            return self._head
        self._follow()
        events: list[Event] = []
        retries: dict[tuple[str, str], RetryState] = {}
        dead: list[tuple[int, bytes, str]] = []
        dead_events = row_lines = 0
        position = self._offset
        try:
            with self.path.open("rb") as handle:
                handle.seek(position)
                while len(events) + len(retries) + len(dead) < limit and position < self._size:
                    line = handle.readline()
                    if not line:
                        break  # cut since `_follow`: the next head takes it as it is
                    at, position = position, position + len(line)
                    try:
                        item = decode_line(line.rstrip(b"\n"))
                    except (ValueError, KeyError, TypeError) as exc:
                        dead.append((at, line, f"{type(exc).__name__}: {exc}"))
                        dead_events += not line.startswith(RETRY_PREFIX)
                        continue
                    if isinstance(item, Event):
                        events.append(item)
                    else:
                        row_lines += 1
                        retries.pop((item.resource, item.action_kind), None)
                        retries[(item.resource, item.action_kind)] = item
        except FileNotFoundError:
            pass  # removed (now, or by another hand before): nothing to read
        except OSError as exc:
            raise _failed("read spool file", self.path, exc) from exc
        chunk = Chunk(
            start=self._offset,
            end=position,
            events=tuple(events),
            retries=tuple(retries.values()),
            dead=tuple(dead),
            dead_events=dead_events,
            row_lines=row_lines,
        )
        self._head = chunk
        return chunk

    def advance(self, chunk: Chunk, refused: Sequence[tuple[bytes, str]] = ()) -> None:
        """Mark ``chunk`` committed: set its damaged lines aside, move the cursor past it.

        ``refused``: lines of the chunk the database would not take, and why;
        they are set aside with the unreadable ones.

        The cursor moves only past committed lines, and is removed before the
        file is emptied, so a crash between the two replays the file again
        (harmless), never leaves a cursor inside lines that still wait.
        """
        if chunk.start != self._offset:
            raise ValueError(f"chunk at {chunk.start} is not the head ({self._offset})")
        self._set_aside([*chunk.dead, *((chunk.start, line, why) for line, why in refused)])
        if chunk.end >= self._size:
            # All replayed: the cursor is removed (a missing one reads as zero)
            # rather than rewritten, so emptying the spool needs no free space.
            # A disk the outage's spool filled must get its space back here:
            # a cursor that could not be written failed this replay, and every
            # flush after it, for as long as the disk stayed full.
            self._drop_cursor()
            try:
                with self.path.open("r+b") as handle:
                    handle.truncate(0)
                    os.fsync(handle.fileno())
            except FileNotFoundError:
                pass  # removed by another hand: as empty as a truncated file
            except OSError as exc:
                raise _failed("truncate spool file", self.path, exc) from exc
            self._size = self._offset = 0
            self.count = self.rows = 0
            self._head = None
            return
        try:
            self._write_cursor(chunk.end)
        except SpoolError as exc:
            # The cursor only spares a later process what is committed. Left
            # behind (no space for it on the disk the outage's spool filled),
            # it is never ahead: a crash before the spool is replayed to its
            # end replays the chunks since then again, which the unique
            # idempotency keys (and the ledger rows coming again in their
            # order) make no-ops, and skips nothing. Stopping here instead
            # committed this chunk again on every flush and never reached the
            # lines after it, nor emptied the spool to free the space.
            log.warning("spool replay goes on without its cursor", error=said(exc))
        self._offset = chunk.end
        self._head = None
        self.count -= len(chunk.events) + chunk.dead_events
        self.rows -= len(chunk.dead) - chunk.dead_events + chunk.row_lines

    def _set_aside(self, dead: Sequence[tuple[int, bytes, str]]) -> None:
        if not dead:
            return
        lines = "".join(
            json.dumps(
                {
                    "spool": str(self.path),
                    "offset": at,
                    "error": error,
                    "line": line.decode("utf-8", "backslashreplace"),
                },
                ensure_ascii=False,
            )
            + "\n"
            for at, line, error in dead
        )
        try:
            with self.dead_path.open("a", encoding="utf-8") as handle:
                handle.write(lines)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise _failed("write dead-letter file", self.dead_path, exc) from exc

    def _drop_cursor(self) -> None:
        """Remove the cursor (durably), so the spool replays from its start; needs no space.

        Before the spool is emptied, so a crash between the two only replays it again."""
        try:
            self.cursor_path.unlink(missing_ok=True)
            _sync_directory(self.cursor_path.parent)
        except OSError as exc:
            raise _failed("remove spool cursor", self.cursor_path, exc) from exc

    def _write_cursor(self, offset: int) -> None:
        partial = self.cursor_path.with_name(self.cursor_path.name + ".tmp")
        try:
            with partial.open("w", encoding="ascii") as handle:
                handle.write(f"{offset}\n")
                handle.flush()
                os.fsync(handle.fileno())
            partial.replace(self.cursor_path)
            _sync_directory(self.cursor_path.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)  # what it holds, back to a full disk
            raise _failed("write spool cursor", self.cursor_path, exc) from exc


def _sync_directory(path: Path) -> None:
    """Make a file's creation, rename or removal in ``path`` durable."""
    directory = os.open(path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _last_newline(handle: BinaryIO, size: int) -> int:
    """The offset just past the last newline (0 when there is none), reading from the end."""
    block = 65536
    end = size
    while end > 0:
        start = max(0, end - block)
        handle.seek(start)
        found = handle.read(end - start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


def _identity(handle: BinaryIO) -> tuple[int, int]:
    status = os.fstat(handle.fileno())
    return status.st_dev, status.st_ino


def _lock(path: Path, spool: Path) -> int:
    """A descriptor holding an exclusive advisory lock on ``path`` until it is closed.

    A bare descriptor rather than a file object: a store nobody closes (the
    simulation's) releases it at exit without a ResourceWarning.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise _failed("open spool lock", path, exc) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SpoolBusyError(f"spool file {spool} is in use by another process") from None
    except OSError as exc:
        os.close(fd)
        raise _failed("lock spool", path, exc) from exc
    return fd


def _failed(doing: str, path: Path, exc: OSError) -> SpoolError:
    """``cannot DOING PATH: why. What to do.``: one line an operator acts on, for every
    file of the spool (itself, its lock, cursor and dead-letter file)."""
    why, advice = file_trouble(exc.errno, path, exc.strerror, setting="spool_path")
    return SpoolError(
        f"cannot {doing} {path}: {why}. {advice}", lasting=exc.errno in LASTING_ERRNOS
    )
