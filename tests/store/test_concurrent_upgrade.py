"""Several replicas migrating one PostgreSQL database at once, each with `jarvis db upgrade`.

Before, every one of them read the database as empty (or behind), and all but
the first failed on the tables the first had just created: a traceback from
`jarvis db upgrade`, or a crash-looping init container. The migration now holds
an advisory lock for its transaction, and the ones waiting on it find the
database at head, however long they wait (no statement timeout on a migration).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest

from jarvis.store import current_revision, upgrade
from jarvis.store.migrate import HEAD_REVISION, MIGRATION_LOCK
from jarvis.store.timeouts import STATEMENT_TIMEOUT_S
from tests.store.test_migrations import _alembic

pytestmark = pytest.mark.anyio

REPLICAS = 3


async def _upgrade_together(url: str, cwd: Path) -> list[tuple[int, str]]:
    """Run ``REPLICAS`` `jarvis db upgrade` processes at once; each one's status and output."""
    env = {**os.environ, "JARVIS_DATABASE_URL": url}
    env.pop("JARVIS_CONFIG", None)
    argv = [str(Path(sys.executable).parent / "jarvis"), "db", "upgrade"]
    results: list[tuple[int, str]] = []

    async def one() -> None:
        done = await anyio.run_process(argv, cwd=cwd, env=env, check=False)
        results.append((done.returncode, (done.stdout + done.stderr).decode()[-400:]))

    with anyio.fail_after(120):
        async with anyio.create_task_group() as group:
            for _ in range(REPLICAS):
                group.start_soon(one)
    return results


async def test_replicas_upgrading_a_new_postgres_database_at_once_all_succeed(
    pg_url: str, tmp_path: Path
) -> None:
    """Three upgrades of one empty database at once: one creates it, the others find it at head."""
    results = await _upgrade_together(pg_url, tmp_path)
    assert [code for code, _ in results] == [0] * REPLICAS, results
    assert all(f"database at revision {HEAD_REVISION}" in out for _, out in results)
    assert await current_revision(pg_url) == HEAD_REVISION


async def test_replicas_upgrading_an_old_postgres_database_at_once_all_succeed(
    pg_url: str, tmp_path: Path
) -> None:
    """Three upgrades of one database at an older revision at once: the scripts run once."""
    await _alembic(pg_url, "upgrade", "0008_revenue")
    results = await _upgrade_together(pg_url, tmp_path)
    assert [code for code, _ in results] == [0] * REPLICAS, results
    assert await current_revision(pg_url) == HEAD_REVISION


async def test_an_upgrade_waits_for_a_migration_longer_than_a_statement_timeout(
    pg_url: str,
) -> None:
    """A migration may run longer than the daemon's statement timeout (a table rewrite of a
    large ``events``): an upgrade waiting on its lock that long still goes through after."""
    import asyncpg

    holder = await asyncpg.connect(pg_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        results: list[str | BaseException] = []

        async def waiter() -> None:
            try:
                results.append(await upgrade(pg_url))
            except Exception as exc:  # noqa: BLE001 - the assertion below shows it
                results.append(exc)

        async with anyio.create_task_group() as group:
            group.start_soon(waiter)
            with anyio.fail_after(60):  # a generous deadline on a loaded machine
                # PostgreSQL's lock table is polled: no event says a backend started waiting.
                while not await holder.fetchval(_WAITING, MIGRATION_LOCK):  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            # Held past the statement timeout from a moment the waiter was already waiting.
            await anyio.sleep(STATEMENT_TIMEOUT_S + 2)
            await transaction.commit()
        assert results == [HEAD_REVISION]
    finally:
        await holder.close()


_WAITING = """
SELECT count(*) > 0 FROM pg_locks
WHERE locktype = 'advisory' AND NOT granted AND database = (
    SELECT oid FROM pg_database WHERE datname = current_database()
) AND ((classid::bigint << 32) | objid::bigint) = $1
"""
"""Whether a session waits for the advisory lock ``$1`` (its 64-bit key split in two)."""
