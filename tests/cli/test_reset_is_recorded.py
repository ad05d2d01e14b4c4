"""A retry reset is its `retries.reset` event: a role that may delete ledger rows but not
record events resets nothing.

`reset_retries` deleted the rows in one transaction and flushed the event in
another, so a PostgreSQL role granted DELETE on ``retry_state`` but no INSERT on
``events`` lifted a quarantine that no event recorded (`jarvis retries reset`
said "refuses user", after the reset was done). The rows and the event now go
in one transaction: such a role gets one line and the ledger is as it was, from
the CLI and from the status page's reset (`AdminService`) alike.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from jarvis.loop.admin import AdminService
from jarvis.loop.clock import WallClock
from jarvis.loop.killswitch import KillSwitch
from jarvis.store import DbKillSwitch, EventStore, StoreError
from tests.cli.conftest import (
    QUARANTINED,
    Jarvis,
    asyncpg_url,
    jarvis_env,
    migrated_with_quarantine,
)


@pytest.fixture
async def deleter_url(pg_url: str) -> AsyncIterator[str]:
    """The test's database, migrated with one quarantined pair, as a role that may read
    everything and delete ledger rows, but record no event."""
    await migrated_with_quarantine(pg_url)
    role = f"deleter_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(asyncpg_url(pg_url))
    try:
        await connection.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'sekret-pw'")
        await connection.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        await connection.execute(f"GRANT DELETE ON retry_state TO {role}")
        parts = urlsplit(pg_url)
        netloc = f"{role}:sekret-pw@{parts.hostname}:{parts.port or 5432}"
        yield urlunsplit(parts._replace(netloc=netloc))
    finally:
        # Its grants go with DROP OWNED, in this database, before the role can go.
        await connection.execute(f"DROP OWNED BY {role}")
        await connection.close()
        server = await asyncpg.connect(asyncpg_url(pg_url).rsplit("/", 1)[0] + "/postgres")
        try:
            await server.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
            )
            await server.execute(f"DROP ROLE IF EXISTS {role}")
        finally:
            await server.close()


async def ledger_and_resets(pg_url: str) -> tuple[list[str], int]:
    """The ledger's resources and the count of `retries.reset` events, read as the owner."""
    connection = await asyncpg.connect(asyncpg_url(pg_url))
    try:
        rows = await connection.fetch("SELECT resource FROM retry_state ORDER BY resource")
        resets = await connection.fetchval(
            "SELECT count(*) FROM events WHERE kind = 'retries.reset'"
        )
    finally:
        await connection.close()
    return [row["resource"] for row in rows], int(resets)


@pytest.mark.anyio
async def test_jarvis_retries_reset_by_a_role_that_cannot_record_resets_nothing(
    jarvis: Jarvis, tmp_path: Path, pg_url: str, deleter_url: str
) -> None:
    """Exit 2 in one line naming the refusal; the quarantined row is still in the ledger."""
    result = jarvis(
        "retries", "reset", QUARANTINED, env=jarvis_env(tmp_path, JARVIS_DATABASE_URL=deleter_url)
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert "refuses user deleter_" in lines[0]
    assert "InsufficientPrivilegeError: permission denied for table events" in lines[0]
    assert "sekret-pw" not in result.stderr
    assert "reset" not in result.stdout
    assert await ledger_and_resets(pg_url) == ([QUARANTINED], 0)


@pytest.mark.anyio
async def test_the_pages_reset_by_such_a_role_resets_nothing_and_spools_nothing(
    tmp_path: Path, pg_url: str, deleter_url: str
) -> None:
    """The status page's reset (the daemon's store, which spools what a database refuses)
    raises and leaves the ledger and the spool as they were."""
    spool = tmp_path / "spool.jsonl"
    store = await EventStore.connect(deleter_url, spool_path=spool)
    store.spool_refusals = True  # as `jarvis run` opens it (`jarvis.app.open_store`)
    try:
        service = AdminService(KillSwitch(DbKillSwitch(store.engine), store, WallClock()))
        with pytest.raises(StoreError, match="permission denied for table events"):
            await service.reset_retries(resource=QUARANTINED, actor="web:ops")
        assert [state.resource for state in (await store.load_retries()).values()] == [QUARANTINED]
        assert store.spooled == 0
    finally:
        await store.aclose()
    assert await ledger_and_resets(pg_url) == ([QUARANTINED], 0)
    assert not spool.exists() or not spool.read_text(encoding="utf-8")
