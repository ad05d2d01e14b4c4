"""Errors raised by the event store (`jarvis.store`) to the loop, the CLI and the app.

Callers catch `StoreError` alone: every failure the store can explain (an
unreachable database, an unreadable kill switch, a schema behind the code) is
one, with a one-line message an operator can act on. `is_operational` is the
store's own judgement of whether a database failure is the world's fault (spool
and retry later) or the program's (raise).
"""

from __future__ import annotations

import errno
import re
import sys
from asyncio import CancelledError
from collections.abc import Iterator
from pathlib import Path

from jarvis.text import one_line

__all__ = [
    "LASTING_ERRNOS",
    "CredentialsRefusedError",
    "FlipOverrunError",
    "LeaseLostError",
    "NotMigratedError",
    "StoreError",
    "credentials_refused",
    "describe",
    "file_trouble",
    "from_database",
    "insufficient_privilege",
    "is_lasting",
    "is_operational",
    "no_schema",
    "no_such_database",
    "not_a_database",
    "real_path",
    "refuses_writes",
    "said",
    "unopenable",
]


class StoreError(Exception):
    """The store cannot do what was asked; the message says why, on one line.

    ``lasting``: the database, or a file Jarvis keeps, answered and refused this
    process (see `is_lasting`), so the same command fails the same way until someone
    changes something; the CLI exits 2 on it, 1 on any other (README, "Exit statuses").
    """

    lasting: bool = False

    def __init__(self, *args: object, lasting: bool | None = None) -> None:
        super().__init__(*args)
        if lasting is not None:
            self.lasting = lasting


class NotMigratedError(StoreError):
    """The database schema is missing or behind this version of Jarvis."""

    lasting = True  # `jarvis db upgrade` first: no wait migrates it


class CredentialsRefusedError(StoreError):
    """A server answered and refused the credentials Jarvis gave it (PostgreSQL's SQLSTATE
    28P01 or 28000, Redis's WRONGPASS or NOAUTH): a password, a role or a host rule to fix.

    Lasting to a command (exit 2: no wait brings a wrong password right). To a running
    daemon the database's refusal is an outage all the same (`is_operational`: a password
    rotated under it spools and reads not ready until the two agree again); a kill switch
    in Redis it cannot read fails safe, as when Redis is down. The message names the
    role or user, the server and the setting, never the password.
    """

    lasting = True


class FlipOverrunError(StoreError):
    """A kill-switch release lost to a flip that landed while it was recorded.

    The release's event is committed, the backend keeps the other flip's state
    (`KillSwitchBackend.release`); `jarvis.loop.killswitch.write_in_order`
    records that state again, so the record's last flip is the one in force.
    Each backend watches in its own way; the one message is made here.
    """

    def __init__(self, where: str) -> None:
        super().__init__(
            f"the kill switch in {where} changed while the release was recorded"
            " (another flip landed first): the release is recorded but not applied,"
            " the switch is left as that flip set it"
        )


# SQLSTATE classes and codes that mean "the database is unavailable or busy
# right now", not "this statement is wrong": connection exceptions (08),
# insufficient resources (53), operator intervention such as a restart (57),
# transaction rollbacks such as deadlocks (40), invalid authorization (28: a
# password rotated under the daemon, which spools until it is set right), a
# database that no longer exists (3D000), lost CONNECT privilege (42501),
# lock timeouts (55P03) and a database that takes no writes (25006: a standby
# the URL reaches after a failover, or one set read-only).
_READ_ONLY_SQLSTATE = "25006"
_OPERATIONAL_SQLSTATE_PREFIXES = (
    "08",
    "53",
    "57",
    "40",
    "28",
    "3D000",
    "42501",
    "55P03",
    _READ_ONLY_SQLSTATE,
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what it wraps (`.orig`) and what caused it, each once."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        todo.extend(
            [
                current.__context__,
                current.__cause__,
                orig if isinstance(orig, BaseException) else None,
            ]
        )


def is_operational(exc: BaseException) -> bool:
    """Whether a failure talking to the database is transient (spool) or a bug (raise).

    A value the driver cannot encode (TypeError/ValueError anywhere in the
    chain) is a bug; a socket error, a lost connection, SQLite's "database is
    locked" and the SQLSTATEs above are the database being unavailable.
    """
    # Only a driver already loaded can have raised its own errors: looked up,
    # not imported, so `jarvis killswitch engage` loads no SQLAlchemy to judge
    # a failure and a daemon on SQLite no asyncpg (its first outage loaded it).
    sa_exc = sys.modules.get("sqlalchemy.exc")
    pg_exc = sys.modules.get("asyncpg.exceptions")
    transient: tuple[type[BaseException], ...] = (OSError,)
    if sa_exc is not None:
        transient += (sa_exc.OperationalError, sa_exc.InterfaceError)
    if pg_exc is not None:
        transient += (pg_exc.InterfaceError,)  # "connection is closed"

    chain = list(_chain(exc))
    if any(isinstance(e, TypeError | ValueError) and not isinstance(e, OSError) for e in chain):
        return False
    for e in chain:
        if isinstance(e, transient):
            return True
        if sa_exc is not None and isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
            return True
        sqlstate = getattr(e, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_OPERATIONAL_SQLSTATE_PREFIXES):
            return True
    return False


def no_such_database(exc: BaseException) -> bool:
    """Whether PostgreSQL answered that the database does not exist (SQLSTATE 3D000).

    The server is reachable then, and the operator needs `createdb`, not the network.
    """
    return any(getattr(e, "sqlstate", None) == "3D000" for e in _chain(exc))


def insufficient_privilege(exc: BaseException) -> bool:
    """Whether PostgreSQL refused for want of a privilege (SQLSTATE 42501).

    Operational to the daemon (a CONNECT privilege revoked under it), but to a
    migration it is the role lacking CREATE or ownership: a grant, not the network.
    """
    return any(getattr(e, "sqlstate", None) == "42501" for e in _chain(exc))


_CREDENTIALS_SQLSTATES = frozenset({"28000", "28P01"})
"""invalid_authorization_specification (a role that does not exist, a host pg_hba.conf
rejects) and invalid_password (a wrong password, or none where one is required)."""


def credentials_refused(exc: BaseException) -> bool:
    """Whether PostgreSQL answered and refused the role, password or host (SQLSTATE 28xxx).

    The server is reachable then: the operator fixes database_url or pg_hba.conf, not
    the network.
    """
    return any(getattr(e, "sqlstate", None) in _CREDENTIALS_SQLSTATES for e in _chain(exc))


def refuses_writes(exc: BaseException) -> bool:
    """Whether the database answered but takes no writes: PostgreSQL read-only (25006), or
    a SQLite file it may not write. Operational, but "cannot reach" would mislead."""
    for e in _chain(exc):
        if getattr(e, "sqlstate", None) == _READ_ONLY_SQLSTATE:
            return True
        if str(getattr(e, "sqlite_errorname", "")).startswith("SQLITE_READONLY"):
            return True
    return False


def no_schema(exc: BaseException) -> bool:
    """Whether PostgreSQL found no schema to create in (SQLSTATE 3F000): none of the
    search_path exists, as with ``?options=-csearch_path=jarvis`` before ``CREATE SCHEMA``."""
    return any(getattr(e, "sqlstate", None) == "3F000" for e in _chain(exc))


def not_a_database(exc: BaseException) -> bool:
    """Whether SQLite found no database in its file (corrupt, or another kind of file).

    Not an outage (nothing to wait out, nothing to spool), and not a bug either:
    the operator's to fix, so it gets a one-line error like an unreachable database.
    """
    names = {"SQLITE_NOTADB", "SQLITE_CORRUPT"}
    return any(getattr(e, "sqlite_errorname", None) in names for e in _chain(exc))


LASTING_ERRNOS = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.EISDIR,
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EEXIST,  # a file where a directory must be made
        errno.ELOOP,
        errno.EROFS,
    }
)
"""Why a file Jarvis keeps cannot be opened that no wait changes (`file_trouble` names
most): a full disk (ENOSPC) may be freed by something else, as an outage ends."""

_UNDEFINED_SQLSTATES = ("42P01", "42703")
"""A table or a column the schema's revision promises and the database does not have: a
database restored from an older dump, or altered by hand. No wait brings it back."""
_LASTING_SQLSTATES = frozenset(
    {_READ_ONLY_SQLSTATE, "42501", "3D000", "3F000", *_UNDEFINED_SQLSTATES, *_CREDENTIALS_SQLSTATES}
)
_LASTING_SQLITE = ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_NOTADB", "SQLITE_CORRUPT")


def is_lasting(exc: BaseException) -> bool:
    """Whether a failure repeats until someone changes something, not until something ends.

    Lasting: a database that answered and refused this process (read-only, a role
    without the privilege, no such database, schema, table or column, its credentials),
    a SQLite file it cannot open, write or read as a database, a schema to migrate, a
    file in the way or out of reach (`StoreError.lasting`). Not lasting: a database
    that does not answer, a lock held past the wait, a timeout, a full disk. The CLI
    exits 2 on the first, 1 on the second. Looks through what the failure wraps and
    what caused it, but not at an error it was raised while handling when it said
    ``from None``.
    """
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, StoreError) and current.lasting:
            return True
        if getattr(current, "sqlstate", None) in _LASTING_SQLSTATES:
            return True
        if str(getattr(current, "sqlite_errorname", "")).startswith(_LASTING_SQLITE):
            return True
        orig = getattr(current, "orig", None)
        nested = [current.__cause__, orig if isinstance(orig, BaseException) else None]
        if not current.__suppress_context__:
            nested.append(current.__context__)
        todo.extend(one for one in nested if one is not None)
    return False


def describe(exc: BaseException) -> str:
    """The root cause of a failure as one printable line: ``TypeName: message``.

    The message is the driver's reason alone (`_reason`), never SQLAlchemy's statement,
    bound parameters or link; outside text in it (a server's, a provider's) is made
    printable (`one_line`), so it cannot forge a log line or drive a terminal.
    """
    *_, root = _causes(exc)
    text = one_line(_reason(root))
    if not text:
        text = "no answer in time" if isinstance(root, TimeoutError) else "no detail"
    return f"{type(root).__name__}: {text}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The failure, then what it wraps (``.orig``) or was raised from, down to its root."""
    current: BaseException = exc
    yield current
    for _ in range(10):  # a bound, not a count: wrapping chains are two or three deep
        orig = getattr(current, "orig", None)
        following = orig if isinstance(orig, BaseException) else current.__cause__
        # A timeout is raised from the cancellation that ended the wait: that is how
        # it stopped, not why, and read "CancelledError: no detail".
        if following is None or isinstance(following, CancelledError):
            return
        current = following
        yield current


def said(exc: BaseException) -> str:
    """A failure in one printable line where no store is at hand to name the database
    (`jarvis.store.EventStore.explain` does): the store's own error says itself, being
    written for an operator already; any other says its root cause (`describe`)."""
    return one_line(str(exc)) if isinstance(exc, StoreError) else describe(exc)


_SQLALCHEMY_LINK = re.compile(r"\s*\(Background on this \w+ at: \S*sqlalche\.me\S*\)")


def _reason(root: BaseException) -> str:
    """What a failure says, without what a driver wraps around it.

    SQLAlchemy's own error (a pool timeout, one that wraps nothing) says its message,
    not the statement, its bound parameters (which carry outside or private values)
    and its documentation link that ``str`` appends; asyncpg's says its message and
    hint, not its DETAIL (the values of the row a constraint refused).
    """
    sa_exc = sys.modules.get("sqlalchemy.exc")
    pg_exc = sys.modules.get("asyncpg.exceptions")
    message = root.args[0] if len(root.args) == 1 and isinstance(root.args[0], str) else None
    if message is not None and pg_exc is not None and isinstance(root, pg_exc.PostgresError):
        hint = getattr(root, "hint", None)
        return f"{message} HINT: {hint}" if hint else message
    if message is not None and sa_exc is not None and isinstance(root, sa_exc.SQLAlchemyError):
        return _SQLALCHEMY_LINK.sub("", message)
    return _SQLALCHEMY_LINK.sub("", str(root))


def from_database(exc: BaseException) -> bool:
    """Whether a failure came from a database or its driver (SQLAlchemy, asyncpg, SQLite),
    itself or what it wraps (as `describe` follows it, not an error it was raised while
    handling): its one line names the database (`jarvis.store.EventStore.explain`)."""
    kinds: tuple[type[BaseException], ...] = ()
    for module, name in (
        ("sqlalchemy.exc", "SQLAlchemyError"),
        ("asyncpg.exceptions", "PostgresError"),
        ("asyncpg.exceptions", "InterfaceError"),
        ("sqlite3", "Error"),
    ):
        loaded = sys.modules.get(module)  # looked up, not imported, as in `is_operational`
        if loaded is not None:
            kinds += (getattr(loaded, name),)
    return any(isinstance(e, kinds) for e in _causes(exc))


class LeaseLostError(StoreError):
    """A fenced write found this replica's epoch no longer current: it must step down.

    Never operational (never spooled): the write it refused must not happen later.
    """


def file_trouble(
    code: int | None, path: Path, strerror: str | None = None, *, setting: str = "database_url"
) -> tuple[str, str]:
    """Why ``path`` (a file Jarvis keeps: the database, its ``.lock``, the spool and its
    companions) could not be opened, read or written (``errno`` ``code``), in a few words,
    and what to do about it; ``setting`` names the option that puts the file there.

    An operator reads this instead of ``[Errno 13] Permission denied: '...'``.
    """
    denied = (
        "permission denied",
        f"Run jarvis as the user that runs the daemon (the owner of {path}), or let "
        "this user read and write it",
    )
    known = {
        errno.EACCES: denied,
        errno.EPERM: denied,
        errno.EISDIR: (
            "it is a directory",
            f"Remove or rename {path}: jarvis makes that file itself (check {setting})",
        ),
        errno.ENOENT: ("its directory does not exist", f"Check {setting}'s directory exists"),
        errno.ENOTDIR: ("a part of its path is a file, not a directory", f"Check {setting}"),
        errno.ELOOP: (
            "a symlink loop on its path",
            f"Fix the symlinks on the way to {path} (check {setting})",
        ),
        errno.EROFS: ("read-only filesystem", f"Run it where {setting}'s directory is writable"),
        errno.ENOSPC: ("no space left on the device", f"Free space on the filesystem of {path}"),
    }
    if code in known:
        return known[code]
    why = (strerror or f"errno {code}").lower()
    return why, f"Check {setting}'s directory exists and is writable"


def unopenable(path: Path, *, setting: str = "database_url") -> StoreError | None:
    """Why the SQLite file at ``path`` cannot be opened when its path cannot be followed
    (a symlink loop, a directory this user may not search), which SQLite reports only
    as "unable to open database file"; None when the path leads somewhere or nowhere
    (a missing file is created, or named by its own line: `jarvis.app.no_database`)."""
    try:
        path.stat()
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        why, advice = file_trouble(exc.errno, path, exc.strerror, setting=setting)
        return StoreError(f"cannot open SQLite database {path}: {why}. {advice}", lasting=True)
    return None


def real_path(path: Path) -> Path:
    """``path`` with its symlinks resolved, where a file's companions (``.lock``, ``.cursor``)
    go; ``path`` itself when they cannot be (a symlink loop: Python 3.11 raises
    RuntimeError), so that opening it fails with ELOOP, which `file_trouble` puts in words."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return path.absolute()
