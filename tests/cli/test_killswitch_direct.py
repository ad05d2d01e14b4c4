"""`jarvis killswitch engage` through the direct path still redacts what it writes.

The command writes its flip with stdlib sqlite3 (`jarvis.store.direct`), not
through the store; the settings' secrets must still be redacted from the
switch row and from the event, as the store's own path does (NUL cannot pass
through argv; `tests/store/test_direct_flip.py` covers it).
"""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from tests.cli.conftest import Jarvis, jarvis_env

TOKEN = "admin-token-for-the-direct-path-0123"


def test_an_engage_stores_no_secret(jarvis: Jarvis, tmp_path: Path) -> None:
    """The token pasted in the reason is redacted in row and event alike, and in no file."""
    env = jarvis_env(tmp_path, JARVIS_ADMIN_TOKEN=TOKEN)
    assert jarvis("db", "upgrade", env=env).returncode == 0
    engaged = jarvis("killswitch", "engage", "--reason", f"stop\x01 {TOKEN} now", env=env)
    assert engaged.returncode == 0, engaged.stderr
    status = json.loads(jarvis("killswitch", "status", "--json", env=env).stdout)
    assert status["engaged"] is True
    assert status["reason"] == "stop\x01 [redacted] now"
    events = jarvis("events", "--json", "--kind", "killswitch.engaged", env=env)
    (flip,) = [json.loads(line) for line in events.stdout.splitlines()]
    assert flip["reason"] == "stop\x01 [redacted] now"
    assert flip["payload"] == {"actor": status["actor"], "reason": flip["reason"]}
    for database in tmp_path.glob("jarvis.db*"):  # the WAL file too
        assert TOKEN.encode() not in database.read_bytes(), database


def database_away(env: dict[str, str]) -> dict[str, str]:
    """``env`` with its database on a loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return {**env, "JARVIS_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{port}/jarvis"}


def test_a_release_the_database_cannot_record_leaves_redis_engaged(
    jarvis: Jarvis, tmp_path: Path, redis_url: str
) -> None:
    """With the database away, `killswitch release` exits 1 and Redis keeps the switch engaged."""
    env = jarvis_env(tmp_path, JARVIS_REDIS_URL=redis_url)
    assert jarvis("db", "upgrade", env=env).returncode == 0
    assert jarvis("killswitch", "engage", "--reason", "drill", env=env).returncode == 0
    away = database_away(env)

    released = jarvis("killswitch", "release", "--reason", "all clear", env=away)

    assert released.returncode == 1, released.stdout
    assert "stays engaged" in released.stderr
    assert "Traceback" not in released.stderr
    status = json.loads(jarvis("killswitch", "status", "--json", env=env).stdout)
    assert status["engaged"] is True
    assert status["reason"] == "drill"


def test_an_engage_the_database_cannot_take_is_spooled_and_says_where(
    jarvis: Jarvis, tmp_path: Path, redis_url: str
) -> None:
    """With the database away an engage still stops Jarvis (exit 0: Redis holds it), its
    event goes to the spool file, a second line (``spooled`` in --json) says where, and the
    next Jarvis that reaches the database writes it there.

    It exited 1 with the flip not recorded anywhere, asking for the engage again later.
    """
    env = jarvis_env(tmp_path, JARVIS_REDIS_URL=redis_url)
    assert jarvis("db", "upgrade", env=env).returncode == 0
    away = database_away(env)
    spool = tmp_path / "spool.jsonl"

    engaged = jarvis("killswitch", "engage", "--reason", "database on fire", env=away)
    as_json = jarvis("killswitch", "engage", "--reason", "still", "--json", env=away)

    assert engaged.returncode == 0, engaged.stderr
    assert "Traceback" not in engaged.stderr
    assert "kill switch ENGAGED" in engaged.stdout
    assert f"spooled to {spool}" in " ".join(engaged.stdout.split()), engaged.stdout
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["spooled"] == str(spool)
    status = json.loads(jarvis("killswitch", "status", "--json", env=env).stdout)
    assert (status["engaged"], status["reason"]) == (True, "still")
    assert jarvis("tick", env=env).returncode in (0, 1)  # its flush replays the spool
    events = jarvis("events", "--json", "--kind", "killswitch.engaged", env=env)
    reasons = [json.loads(line)["reason"] for line in events.stdout.splitlines()]
    assert sorted(reasons) == ["database on fire", "still"], events.stdout + events.stderr


def test_an_engage_into_a_database_a_newer_jarvis_migrated_is_refused_in_one_line(
    jarvis: Jarvis, tmp_path: Path
) -> None:
    """Not reported ENGAGED into a schema this Jarvis cannot know the meaning of: exit 1,
    the store's own refusal, and nothing written."""
    env = jarvis_env(tmp_path)
    assert jarvis("db", "upgrade", env=env).returncode == 0
    with sqlite3.connect(tmp_path / "jarvis.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0099_from_a_newer_jarvis'")

    engaged = jarvis("killswitch", "engage", "--reason", "drill", env=env)

    assert engaged.returncode == 1, engaged.stdout
    assert "newer than this Jarvis knows" in engaged.stderr
    assert len(engaged.stderr.strip().splitlines()) == 1
    assert "ENGAGED" not in engaged.stdout
    with closing(sqlite3.connect(tmp_path / "jarvis.db")) as connection:
        assert connection.execute("SELECT count(*) FROM killswitch").fetchone() == (0,)
        assert connection.execute("SELECT count(*) FROM events").fetchone() == (0,)


@pytest.mark.anyio
async def test_a_release_into_a_read_only_postgres_is_one_line_and_stays_engaged(
    jarvis: Jarvis, tmp_path: Path, pg_url: str
) -> None:
    """A database that refuses writes (a standby after a failover, or set read-only) fails
    the release in one line, not with asyncpg's traceback, and the switch stays engaged."""
    import asyncpg

    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL=pg_url)
    assert jarvis("db", "upgrade", env=env).returncode == 0
    assert jarvis("killswitch", "engage", "--reason", "drill", env=env).returncode == 0
    database = pg_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(pg_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await admin.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
        released = jarvis("killswitch", "release", "--reason", "all clear", env=env)
        engaged = jarvis("killswitch", "engage", "--reason", "again", env=env)
        await admin.execute(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')
    finally:
        await admin.close()

    for result in (released, engaged):
        assert result.returncode == 2, result.stdout  # a refusal (README, "Exit statuses")
        assert "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "read-only transaction" in result.stderr
    assert "stays engaged" in released.stderr
    status = json.loads(jarvis("killswitch", "status", "--json", env=env).stdout)
    assert (status["engaged"], status["reason"]) == (True, "drill")


def _refused_once(result: subprocess.CompletedProcess[str], tmp_path: Path, lock: str) -> None:
    """One line naming the lock, nothing engaged, and the store's path never opened: its
    spool's lock file is what opening the store leaves behind."""
    assert result.returncode == 1, result.stdout
    assert not (tmp_path / "spool.jsonl.lock").exists(), "the store's path waited again"
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert lock in result.stderr, result.stderr
    assert "nothing was written" in result.stderr, result.stderr
    assert "ENGAGED" not in result.stdout


def test_an_engage_into_a_locked_sqlite_file_waits_once(jarvis: Jarvis, tmp_path: Path) -> None:
    """Another process holding the file's write lock: the direct path waits out the busy
    timeout and the command reports that, without a second wait on the store's path."""
    env = jarvis_env(tmp_path)
    assert jarvis("db", "upgrade", env=env).returncode == 0
    (tmp_path / "spool.jsonl.lock").unlink(missing_ok=True)
    holder = sqlite3.connect(tmp_path / "jarvis.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        engaged = jarvis("killswitch", "engage", "--reason", "drill", env=env)
        holder.execute("ROLLBACK")
    finally:
        holder.close()

    _refused_once(engaged, tmp_path, "database is locked")
    with closing(sqlite3.connect(tmp_path / "jarvis.db")) as connection:
        assert connection.execute("SELECT count(*) FROM killswitch").fetchone() == (0,)


@pytest.mark.anyio
async def test_an_engage_into_locked_postgres_tables_waits_once(
    jarvis: Jarvis, tmp_path: Path, pg_url: str
) -> None:
    """Another session holding the tables locked: the direct path waits out its statement
    timeout and the command reports that, without a second wait on the store's path."""
    import asyncpg

    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL=pg_url)
    assert jarvis("db", "upgrade", env=env).returncode == 0
    (tmp_path / "spool.jsonl.lock").unlink(missing_ok=True)
    holder = await asyncpg.connect(pg_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        async with holder.transaction():
            await holder.execute("LOCK TABLE events, killswitch IN ACCESS EXCLUSIVE MODE")
            engaged = jarvis("killswitch", "engage", "--reason", "drill", env=env)
        assert await holder.fetchval("SELECT count(*) FROM killswitch") == 0
    finally:
        await holder.close()

    _refused_once(engaged, tmp_path, "no answer within 15 s")


async def _locked_while(
    pg_url: str, run: Callable[[], subprocess.CompletedProcess[str]]
) -> tuple[subprocess.CompletedProcess[str], int]:
    """``run``'s result with the flip's tables locked by another session, and how many
    sessions waited on that lock meanwhile (`pg_locks`, polled until ``run`` ends)."""
    import anyio
    import asyncpg

    holder = await asyncpg.connect(pg_url.replace("postgresql+asyncpg", "postgresql"))
    waited: set[int] = set()
    result: list[subprocess.CompletedProcess[str]] = []
    try:
        async with holder.transaction():
            await holder.execute("LOCK TABLE events, killswitch IN ACCESS EXCLUSIVE MODE")
            done = anyio.Event()

            async def in_thread() -> None:
                result.append(await anyio.to_thread.run_sync(run))
                done.set()

            async with anyio.create_task_group() as group:
                group.start_soon(in_thread)
                while not done.is_set():
                    rows = await holder.fetch(
                        "SELECT DISTINCT pid FROM pg_locks WHERE NOT granted"
                        " AND database = (SELECT oid FROM pg_database"
                        " WHERE datname = current_database())"
                    )
                    waited.update(row["pid"] for row in rows)
                    await anyio.sleep(0.05)  # a poll's pace, not a deadline
    finally:
        await holder.close()
    return result[0], len(waited)


@pytest.mark.anyio
async def test_an_engage_in_redis_recorded_into_locked_tables_waits_once_and_spools(
    jarvis: Jarvis, tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    """The switch lives in Redis and the flip's event cannot get past a lock: one session
    waits on it (the direct write's), and the event goes to the spool with no second wait."""
    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL=pg_url, JARVIS_REDIS_URL=redis_url)
    assert jarvis("db", "upgrade", env=env).returncode == 0

    engaged, waited = await _locked_while(
        pg_url, lambda: jarvis("killswitch", "engage", "--reason", "drill", env=env)
    )

    assert engaged.returncode == 0, engaged.stderr
    assert waited == 1, f"{waited} sessions waited on the lock"
    assert "killswitch.engaged" in (tmp_path / "spool.jsonl").read_text()
    status = json.loads(jarvis("killswitch", "status", "--json", env=env).stdout)
    assert (status["engaged"], status["reason"]) == (True, "drill")


@pytest.mark.anyio
async def test_a_release_in_redis_into_locked_tables_fails_after_one_wait(
    jarvis: Jarvis, tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    """A release must be a row before it takes effect: the one wait fails it in one line,
    and Redis keeps the switch engaged."""
    env = jarvis_env(tmp_path, JARVIS_DATABASE_URL=pg_url, JARVIS_REDIS_URL=redis_url)
    assert jarvis("db", "upgrade", env=env).returncode == 0
    assert jarvis("killswitch", "engage", "--reason", "drill", env=env).returncode == 0

    released, waited = await _locked_while(
        pg_url, lambda: jarvis("killswitch", "release", "--reason", "all clear", env=env)
    )

    assert released.returncode == 1, released.stdout
    assert waited == 1, f"{waited} sessions waited on the lock"
    assert len(released.stderr.strip().splitlines()) == 1, released.stderr
    assert "stays engaged" in released.stderr
    assert "no answer within 15 s" in released.stderr
    status = json.loads(jarvis("killswitch", "status", "--json", env=env).stdout)
    assert (status["engaged"], status["reason"]) == (True, "drill")


def test_an_engage_in_redis_whose_event_is_spooled_says_where(
    jarvis: Jarvis, tmp_path: Path, redis_url: str
) -> None:
    """Engaged in Redis, its event kept from the database by a lock and spooled: exit 0, and
    one more line (and ``spooled`` in --json) says the record waits in the spool file.

    The command printed ENGAGED alone, as if the flip were in the database.
    """
    env = jarvis_env(tmp_path, JARVIS_REDIS_URL=redis_url)
    assert jarvis("db", "upgrade", env=env).returncode == 0
    spool = tmp_path / "spool.jsonl"
    holder = sqlite3.connect(tmp_path / "jarvis.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        engaged = jarvis("killswitch", "engage", "--reason", "drill", env=env)
        as_json = jarvis("killswitch", "engage", "--reason", "again", "--json", env=env)
        holder.execute("ROLLBACK")
    finally:
        holder.close()

    assert engaged.returncode == 0, engaged.stderr
    assert "ENGAGED" in engaged.stdout
    assert f"spooled to {spool}" in " ".join(engaged.stdout.split()), engaged.stdout
    assert as_json.returncode == 0, as_json.stderr
    flip = json.loads(as_json.stdout)
    assert (flip["engaged"], flip["reason"], flip["spooled"]) == (True, "again", str(spool))
    lines = [json.loads(line) for line in spool.read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["killswitch.engaged"] * 2
