"""`is_operational`: which database failures are the world's (spool, retry) and which a bug's.

It judges drivers' own exception classes, so it must know them when they can
have been raised, and must not load a driver that cannot have raised anything:
a daemon on SQLite (or the simulation's in-memory store) judging its first
outage used to import asyncpg for an `isinstance` check.
"""

from __future__ import annotations

import json
import subprocess
import sys

import asyncpg.exceptions
from sqlalchemy import exc as sa_exc

from jarvis.store.errors import is_operational

_PROBE = """
import json, sys
from jarvis.store.errors import is_operational
verdicts = [
    is_operational(ConnectionRefusedError("refused")),
    is_operational(TimeoutError()),
    is_operational(TypeError("cannot encode")),
    is_operational(RuntimeError("bug")),
]
loaded = [name for name in ("asyncpg", "sqlalchemy") if name in sys.modules]
print(json.dumps({"verdicts": verdicts, "loaded": loaded}))
"""


def test_judging_a_failure_loads_no_driver() -> None:
    """A fresh process judges socket errors and bugs without importing asyncpg or SQLAlchemy."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout) == {"verdicts": [True, True, False, False], "loaded": []}


def test_the_drivers_own_errors_are_judged_when_they_are_loaded() -> None:
    """asyncpg's closed connection, SQLAlchemy's operational and invalidated errors: transient."""
    closed = asyncpg.exceptions.InterfaceError("connection is closed")
    assert is_operational(closed)
    assert is_operational(sa_exc.OperationalError("SELECT 1", {}, Exception("locked")))
    assert is_operational(sa_exc.InterfaceError("SELECT 1", {}, Exception("gone")))
    invalidated = sa_exc.DBAPIError("SELECT 1", {}, Exception("reset"), connection_invalidated=True)
    assert is_operational(invalidated)
    assert not is_operational(sa_exc.DBAPIError("SELECT 1", {}, Exception("syntax")))
    wrapped = sa_exc.DBAPIError("SELECT 1", {}, closed)
    assert is_operational(wrapped)  # the driver's error under SQLAlchemy's (`.orig`)


def test_a_database_that_takes_no_writes_is_the_worlds_failure() -> None:
    """PostgreSQL read-only (25006: a standby after a failover) spools and retries; the other
    invalid-transaction-state codes (a statement after a failed one, 25P02) are bugs."""
    read_only = asyncpg.exceptions.ReadOnlySQLTransactionError("cannot execute INSERT")
    assert is_operational(read_only)
    assert is_operational(sa_exc.DBAPIError("INSERT", {}, read_only))
    assert not is_operational(asyncpg.exceptions.InFailedSQLTransactionError("aborted"))
