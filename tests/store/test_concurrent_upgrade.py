"""Several replicas migrating one PostgreSQL database at once, each with `jarvis db upgrade`.

Before, every one of them read the database as empty (or behind), and all but
the first failed on the tables the first had just created: a traceback from
`jarvis db upgrade`, or a crash-looping init container. The migration now holds
an advisory lock for its transaction, and the ones waiting on it find the
database at head.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest

from jarvis.store import current_revision
from jarvis.store.migrate import HEAD_REVISION
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
