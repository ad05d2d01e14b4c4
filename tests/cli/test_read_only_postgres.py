"""A one-shot writer against PostgreSQL that answers but takes no writes: one line, nothing spooled.

A role granted SELECT alone, or a database set ``default_transaction_read_only``,
made `jarvis tick --dry-run` and `jarvis silence add` spool their events and exit
0 (the silence was never in force, and nothing that can write the database
replays that spool), and `jarvis tick` say it "could not take the leader lease
(see the log)". Each now exits 2 (a refusal: README, "Exit statuses") in one line
naming the database and the server's reason; the daemon still waits such a
database out in its spool (a standby the URL reaches after a failover).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests.cli.conftest import (
    QUARANTINED,
    Jarvis,
    asyncpg_url,
    jarvis_env,
    migrated_with_quarantine,
)

WRITERS: list[tuple[str, ...]] = [
    ("tick", "--dry-run"),
    ("silence", "add", "--match", "sim://*", "--for", "1h", "--reason", "maintenance"),
    ("retries", "reset", QUARANTINED),
]


@pytest.fixture(params=["select-only role", "read-only database"])
async def read_only_url(request: pytest.FixtureRequest, pg_url: str) -> AsyncIterator[str]:
    """The test's database as a role granted SELECT alone, or with every transaction read-only."""
    await migrated_with_quarantine(pg_url)
    name = urlsplit(pg_url).path.lstrip("/")
    connection = await asyncpg.connect(asyncpg_url(pg_url))
    role = f"reader_{uuid.uuid4().hex[:10]}"
    try:
        if request.param == "read-only database":
            await connection.execute(
                f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'
            )
            yield pg_url
            return
        await connection.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'sekret-pw'")
        await connection.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        parts = urlsplit(pg_url)
        netloc = f"{role}:sekret-pw@{parts.hostname}:{parts.port or 5432}"
        yield urlunsplit(parts._replace(netloc=netloc))
    finally:
        await connection.close()
        if request.param == "select-only role":
            server = await asyncpg.connect(asyncpg_url(pg_url).rsplit("/", 1)[0] + "/postgres")
            try:
                await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await server.execute(f"DROP ROLE IF EXISTS {role}")
            finally:
                await server.close()


def reason(url: str) -> str:
    if "reader_" in url:
        return "InsufficientPrivilegeError: permission denied for table"
    return "ReadOnlySQLTransactionError: cannot execute"


def one_error(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    assert "sekret-pw" not in stderr
    return lines[0]


@pytest.mark.anyio
@pytest.mark.parametrize("command", WRITERS, ids=[" ".join(c[:2]) for c in WRITERS])
async def test_a_writer_is_refused_in_one_line_and_spools_nothing(
    jarvis: Jarvis, tmp_path: Path, read_only_url: str, command: tuple[str, ...]
) -> None:
    """Exit 2 naming the database and the server's reason; the spool stays empty."""
    result = jarvis(*command, env=jarvis_env(tmp_path, JARVIS_DATABASE_URL=read_only_url))
    assert result.returncode == 2, result.stdout + result.stderr
    line = one_error(result.stderr)
    database = urlsplit(read_only_url).path.lstrip("/")
    assert f"PostgreSQL at 127.0.0.1:5432 (database {database})" in line
    assert reason(read_only_url) in line
    assert "cannot reach" not in line  # the server answered: no network to look at
    if command[0] != "retries":  # a reset's DELETE is refused before it records anything
        assert line.endswith("its events were not recorded, nor spooled")
    spool = tmp_path / "spool.jsonl"
    assert not spool.exists() or not spool.read_text(encoding="utf-8")


@pytest.mark.anyio
async def test_a_tick_names_why_it_could_not_take_the_lease(
    jarvis: Jarvis, tmp_path: Path, read_only_url: str
) -> None:
    """Exit 2 as every lease refusal, with the server's answer instead of "see the log"."""
    result = jarvis("tick", env=jarvis_env(tmp_path, JARVIS_DATABASE_URL=read_only_url))
    assert result.returncode == 2, result.stdout + result.stderr
    line = one_error(result.stderr)
    assert "`jarvis tick` could not take the leader lease: PostgreSQL at 127.0.0.1:5432" in line
    assert reason(read_only_url) in line


@pytest.mark.anyio
async def test_a_database_kill_switch_never_says_it_flipped(
    jarvis: Jarvis, tmp_path: Path, read_only_url: str
) -> None:
    """Engage with the switch in the database: exit 2, the database named as every message
    names it (never the password), and the switch still released."""
    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL=read_only_url)
    engaged = jarvis("killswitch", "engage", "--reason", "incident", env=env)
    assert engaged.returncode == 2, engaged.stdout
    line = one_error(engaged.stderr)
    assert "cannot write the kill switch in PostgreSQL at 127.0.0.1:5432 (database " in line
    assert reason(read_only_url) in line
    assert "ENGAGED" not in engaged.stdout
    assert jarvis("killswitch", "status", env=env).stdout.startswith("released")
