"""One daemon per SQLite file: an exclusive lock on a file beside the database.

SQLite has no leases and no fencing a second process could respect, and two
daemons on one file would both act (the HA issue measured 58 pairs acted on
twice within half a second). So on SQLite there is one node: `jarvis run`
takes an exclusive, non-blocking `flock` on the database file itself (so every
name of it, a hard link as much as a symlink, finds the same lock) and on
``<database>.lock`` (where it writes its pid, for the message and `jarvis status`)
for its whole life, and a second one is refused with a one-line message. The kernel drops
the lock when the process dies, however it dies, so a crash never leaves a
stale lock behind. A one-shot command that acts (`tick`, `restart`, …) takes it
for as long as it acts (`jarvis.cli.oneshot.acting_app`); read-only ones, dry runs
and `killswitch` take none.

Whoever reads the lock (`jarvis status`, the refusal naming the holder, a
reader of a read-only mount) may be another user, or find a directory or a
missing one where the file should be: `holder` then raises
`UnreadableLockError` naming the file, why, and what to do, never a bare
``OSError``; `acquire` says the same of what it cannot open (`UnlockableError`).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

from sqlalchemy.engine import make_url

from jarvis.store.errors import StoreError, file_trouble, real_path

__all__ = [
    "AlreadyRunningError",
    "NodeLock",
    "UnlockableError",
    "UnreadableLockError",
    "sqlite_path",
]


class AlreadyRunningError(StoreError):
    """Another daemon holds this SQLite database."""

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid
        """The holder's pid; None when it cannot be read (or names a past run)."""


class UnlockableError(StoreError):
    """The database or its ``.lock`` cannot be opened to be locked (no such directory, a
    read-only filesystem, a directory in the way): nothing runs, nothing is held."""


class UnreadableLockError(StoreError):
    """The ``.lock`` cannot be read here, so whether a daemon holds the database is unknown."""

    def __init__(self, path: Path, database: Path, why: str, advice: str) -> None:
        super().__init__(
            f"cannot read {path} to see whether a jarvis daemon holds {database}: {why}. {advice}"
        )


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL; None for PostgreSQL or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


class NodeLock:
    """Exclusive locks on the database and ``<database>.lock``: `acquire` or raise, `release`."""

    def __init__(self, database: Path) -> None:
        self.database = database
        # Beside the file itself: a symlink to it must find the same lock.
        real = real_path(database)
        self.path = real.with_name(real.name + ".lock")
        self._real = real
        self._fd: int | None = None
        self._gate: int | None = None

    def acquire(self) -> None:
        # A hard link has a name of its own, so a ``.lock`` of its own: the inode is
        # what every name shares, so the database file itself is locked too. flock
        # and SQLite's POSIX locks do not interact on Linux; the descriptor stays
        # open until `release`, after the store is closed, because closing one of
        # the database's descriptors drops the POSIX locks SQLite holds here.
        gate = _open(self._real, os.O_RDONLY)
        try:
            fd = _open(self.path, os.O_RDWR)
        except UnlockableError:
            os.close(gate)
            raise
        try:
            fcntl.flock(gate, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 64, 0).decode(errors="replace").strip()
            # Beside another name of the file (a hard link) only the database is held:
            # this ``.lock`` names nobody, or a past run.
            pid = int(text) if text.isdigit() and _held(fd) else None
            os.close(fd)
            os.close(gate)
            raise AlreadyRunningError(
                f"another jarvis run (pid {pid or 'unknown'}) is using {self.database}; SQLite "
                "runs one node. Stop it, or use PostgreSQL (database_url) to run several replicas",
                pid,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        self._gate = gate

    def holder(self) -> int | None:
        """The pid of the daemon holding the lock (-1: held, pid unreadable), or None when
        nobody does (no ``.lock``, or no directory for one). UnreadableLockError when the
        ``.lock`` cannot be read here (another user's, a directory in its place)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._unreadable(exc.errno, exc.strerror) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # opened read-only, a directory opens
                raise self._unreadable(errno.EISDIR)
            if not _held(fd):
                return None
            text = os.pread(fd, 64, 0).decode(errors="replace").strip()
        except OSError as exc:
            raise self._unreadable(exc.errno, exc.strerror) from None
        finally:
            os.close(fd)
        return int(text) if text.isdigit() else -1

    def _unreadable(self, code: int | None, strerror: str | None = None) -> UnreadableLockError:
        why, advice = file_trouble(code, self.path, strerror)
        return UnreadableLockError(self.path, self.database, why, advice)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._gate is not None:
            os.close(self._gate)
            self._gate = None


def _held(fd: int) -> bool:
    """Whether another open file description holds an flock on ``fd``'s file."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def _open(path: Path, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_CREAT, 0o644)
    except OSError as exc:
        why, advice = file_trouble(exc.errno, path, exc.strerror)
        raise UnlockableError(
            f"cannot open {path} to hold the SQLite database alone: {why}. {advice}"
        ) from None
