"""A SQLite file opened by a process that cannot write it: how to read it, and who may not.

In WAL mode SQLite reads through two files beside the database, ``-wal`` (the
transactions not yet copied into the file) and ``-shm`` (the log's index,
shared memory), and creates them when they are missing, even to read. Where
this process cannot create them (the daemon's volume mounted ``:ro`` in a
sidecar or a debug container, another user's directory, a read-only
filesystem), a reading command failed with "attempt to write a readonly
database" or "unable to open database file". SQLite reads such a file in one
of two ways (https://www.sqlite.org/wal.html, "Read-Only Databases"):

- ``mode=ro`` when both exist, as they do while the daemon has the database
  open: SQLite reads the log through a private copy of its index, and sees
  every committed transaction, as any reader beside a writer does.
- ``immutable=1`` when there is no log to read: the file holds every committed
  transaction, and SQLite reads it with no lock and no file beside it. That is
  safe only while nothing writes, so it is never chosen while a daemon holds the
  file (`jarvis.store.nodelock`: it is about to write) or a log with
  transactions in it exists (they would be missed). The choice is made at
  each connection; a process that opens the file just after it (a daemon
  starting, a `jarvis killswitch` flip, which holds no node lock) writes its
  log first and the file only when its last connection closes, so the one
  query that overlaps that checkpoint may fail or see part of it: run it again.

Otherwise `reading_uri` refuses in one line saying why and what to do.
Commands that only read open an unwritable file this way: through the SQL
backend (`jarvis.store.engine`, ``read_only``) or stdlib ``sqlite3``
(`jarvis.store.readonly`, `jarvis plan`'s reader); a file this process can
write is opened as always. `jarvis run`, the one-shot ticks (dry runs included) and every
other command that writes (`jarvis.app.open_store`: `silence add`, `retries
reset`, …) refuse an unwritable file at once (`check_writable`) instead of
spooling what they record where nothing that can write the database replays it.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from jarvis.store.errors import StoreError

__all__ = ["check_writable", "reading_uri", "unwritable"]

_SIDE_FILES = ("-wal", "-shm")
_CANNOT_MAKE_SIDE_FILES = {sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY}
"""Primary result codes of a read that could not open or create ``-wal`` or ``-shm``."""


def unwritable(path: str) -> bool:
    """Whether the existing database file at ``path`` is one SQLite cannot write here: the
    file itself, or the directory where its missing ``-wal`` and ``-shm`` must be made, or
    one of those that exists. False when there is no such file (it is created as always)."""
    database = Path(path)
    if not database.is_file():
        return False
    sides = [database.with_name(database.name + suffix) for suffix in _SIDE_FILES]
    if all(side.exists() for side in sides):
        needed = [database, *sides]
    else:  # SQLite makes the missing ones in the directory
        needed = [database, database.parent, *(side for side in sides if side.exists())]
    return not all(_writable(one) for one in needed)


def _writable(path: Path) -> bool:
    # access(2) answers as SQLite's open will: EROFS on a read-only mount, the
    # permission bits for another user, and yes for root whatever chmod said.
    return os.access(path, os.W_OK, effective_ids=os.access in os.supports_effective_ids)


def reading_uri(path: str) -> str:
    """The ``file:`` URI that reads the database at ``path`` and writes nothing there or
    beside it: ``mode=ro``, or with ``immutable=1`` when nothing can be missed by it (see
    the module docstring). Raises StoreError, in one line, when neither reads it safely.

    A failure that is not about the files beside it (no such file, not a database) is
    left to the first query through the ``mode=ro`` URI, which names it as always.
    """
    uri = f"file:{quote(path)}?mode=ro"
    failure = _read_failure(uri)
    if failure is None or (failure & 0xFF) not in _CANNOT_MAKE_SIDE_FILES:
        return uri
    database = Path(path)
    log, index = (f"{path}{suffix}" for suffix in _SIDE_FILES)
    cannot = (
        f"SQLite cannot create {index} beside it to read it (the directory is read-only "
        "to this process)"
    )
    if Path(log).is_file() and Path(log).stat().st_size > 0:
        raise StoreError(
            f"SQLite database {path} has transactions in {log} that this process cannot "
            f"read: {cannot}. Read it where {database.parent} can be written, or once a "
            "daemon has opened and closed it there (which copies the log into the file)"
        )
    holder = _daemon(database)
    if holder is not None:
        raise StoreError(
            f"a daemon ({holder}) holds SQLite database {path} and is about to write it, "
            f"and {cannot}: read it again once the daemon has opened it ({log} exists), or "
            f"where {database.parent} can be written"
        )
    return f"{uri}&immutable=1"


def _read_failure(uri: str) -> int | None:
    """SQLite's extended result code for a first read through ``uri``; None when it reads."""
    try:
        connection = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        return exc.sqlite_errorcode
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        return exc.sqlite_errorcode
    finally:
        connection.close()
    return None


def _daemon(database: Path) -> str | None:
    """``pid N`` of the process holding the database's node lock, if one does."""
    from jarvis.store.nodelock import (  # noqa: PLC0415 - only when it matters
        NodeLock,
        UnreadableLockError,
    )

    try:
        pid = NodeLock(database).holder()
    except UnreadableLockError:  # its ``.lock`` unreadable here: whoever made it may hold it
        pid = -1
    if pid is None:
        return None
    return f"pid {pid}" if pid > 0 else "pid unknown"


def check_writable(path: str, command: str | None = None) -> None:
    """Raise StoreError, in one line, when ``jarvis COMMAND`` (None: this command), which
    records what it does, could not write the existing database at ``path``: it would
    spool everything instead, to a file nothing that can write the database replays."""
    if not unwritable(path):
        return
    writes = "this command writes" if command is None else f"`jarvis {command}` records"
    raise StoreError(
        f"SQLite database {path} cannot be written by this process (a read-only mount, or "
        f"another user's file or directory), and {writes} there: nothing was done or "
        "recorded. Run it where the database and its directory are writable; "
        "the reading commands (`jarvis plan`, `jarvis events`, `jarvis status`, …) work "
        "from here",
        lasting=True,
    )
