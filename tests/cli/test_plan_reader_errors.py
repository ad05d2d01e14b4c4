"""`jarvis plan` on a database that fails it says so in the store's one line, as every command.

`plan` is the command that reads through the read-only reader (`jarvis.store.readonly`,
stdlib sqlite3 or asyncpg without SQLAlchemy) once the database is at the current
schema. Its errors said ``cannot read URL: TEXT``, the URL as written and the
driver's text as it came; every other command names the database as the store
does (the SQLite file, or PostgreSQL's server and database) and the driver's reason
as ``TypeName: message``. Each case runs the real `jarvis` in a subprocess, with and
without ``--json``.
"""

from __future__ import annotations

import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import asyncpg
import pytest

from jarvis.store import upgrade
from tests.cli.conftest import asyncpg_url, jarvis_argv, jarvis_env, one_object
from tests.store.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio


async def plan(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`jarvis plan ARGS` on ``url``, run without blocking this loop (a proxy may serve it)."""
    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL=url)
    with anyio.fail_after(120):  # a hang guard, not a measure
        done = await anyio.run_process(
            jarvis_argv("plan", *args), cwd=tmp_path, env=env, check=False
        )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def failed_with(result: subprocess.CompletedProcess[str], *, as_json: bool, status: int = 1) -> str:
    """The one line a plan that exited ``status`` said: on stderr after ``error:``, and with
    ``--json`` as the one object on stdout."""
    assert result.returncode == status, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    line = errors[0].removeprefix("error: ")
    if as_json:
        assert one_object(result.stdout, result.stderr) == {"error": line}
    return line


async def test_a_sqlite_table_renamed_away_is_named_with_the_file(tmp_path: Path) -> None:
    """The ledger's table gone from the file: the file and SQLite's reason, one line."""
    database = tmp_path / "jarvis.db"
    url = f"sqlite+aiosqlite:///{database}"
    await upgrade(url)
    with closing(sqlite3.connect(database)) as connection:
        connection.execute("ALTER TABLE retry_state RENAME TO renamed_away")
        connection.commit()
    expected = f"SQLite database {database}: OperationalError: no such table: retry_state"
    for args in ((), ("--json",)):
        assert failed_with(await plan(tmp_path, url, *args), as_json=bool(args)) == expected


async def test_a_postgres_table_renamed_away_is_named_with_the_server(
    tmp_path: Path, pg_url: str
) -> None:
    """The ledger's table gone from the database: its server, name and PostgreSQL's reason,
    and exit 2, as no wait brings a table back. (SQLite says "no such table" with the
    generic error code it gives passing troubles too, so the file's case exits 1.)"""
    await upgrade(pg_url)
    connection = await asyncpg.connect(asyncpg_url(pg_url))
    try:
        await connection.execute("ALTER TABLE retry_state RENAME TO renamed_away")
    finally:
        await connection.close()
    parts = urlsplit(pg_url)
    expected = (
        f"PostgreSQL at {parts.hostname}:{parts.port or 5432} (database {parts.path[1:]}): "
        'UndefinedTableError: relation "retry_state" does not exist'
    )
    for args in ((), ("--json",)):
        result = await plan(tmp_path, pg_url, *args)
        assert failed_with(result, as_json=bool(args), status=2) == expected


async def test_a_postgres_lost_while_planning_cannot_be_reached(
    tmp_path: Path, pg_url: str, pg_proxy: TcpProxy
) -> None:
    """The server gone once the reader opened, at its first read of the ledger: "cannot
    reach" its server and database, never the URL, and the query's own failure, not
    asyncpg's on rolling it back ("cannot call Transaction.__aexit__()"), in one line."""
    await upgrade(pg_url)
    url = pg_proxy.url_for(pg_url)
    database = urlsplit(pg_url).path[1:]
    for args in ((), ("--json",)):
        pg_proxy.cut_at(b"FROM retry_state")
        said = failed_with(await plan(tmp_path, url, *args), as_json=bool(args))
        assert said == (
            f"cannot reach PostgreSQL at 127.0.0.1:{pg_proxy.port} (database {database}): "
            "ConnectionDoesNotExistError: connection was closed in the middle of operation"
        ), said
        assert "postgresql" not in said, said
        await pg_proxy.stop()  # cut already; listening again for the next run
        await pg_proxy.start()
