"""Rows changed by hand: a damaged event is skipped with a warning, a damaged ledger row is named.

Before, one malformed ``events`` row crashed `jarvis events` (and any reader of
the history), and a malformed ``retry_state`` row stopped start-up with a
traceback.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from sqlalchemy import text

from jarvis.model import Event, EventKind, RetryState
from jarvis.store import EventStore
from jarvis.store.codec import DamagedRowError
from tests.cli.conftest import jarvis_argv, jarvis_env

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


async def damage_events(store: EventStore) -> None:
    """Copy a good row twice, once with an unknown kind and once with an array payload."""
    array_payload = (
        "INSERT INTO events (ts, kind, payload, idempotency_key) "
        "SELECT ts, kind, json_build_array(), 'bad-payload' FROM events "
        "WHERE idempotency_key = 'good'"
        if store.engine.dialect.name == "postgresql"
        else "INSERT INTO events (ts, kind, payload, idempotency_key) "
        "SELECT ts, kind, json_array(), 'bad-payload' FROM events WHERE idempotency_key = 'good'"
    )
    async with store.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO events (ts, kind, payload, idempotency_key) "
                "SELECT ts, 'bogus', payload, 'bad-kind' FROM events WHERE idempotency_key = 'good'"
            )
        )
        await connection.execute(text(array_payload))


async def test_a_damaged_event_row_is_skipped_and_the_rest_read(db_url: str) -> None:
    """Readers get every readable event; the damaged rows are left out, not fatal."""
    store = await EventStore.connect(db_url, auto_migrate=True)
    try:
        store.append([Event(EventKind.TICK_STARTED, NOW, "good")])
        await store.flush()
        await damage_events(store)
        found = await store.events(limit=10)
        by_time = await store.events_by_time(kinds=None, resource=None, since=NOW, limit=10)
    finally:
        await store.aclose()
    assert [e.idempotency_key for e in found] == ["good"]
    assert [e.idempotency_key for e in by_time] == ["good"]


async def test_jarvis_events_lists_the_readable_rows_and_warns(tmp_path: Path) -> None:
    """`jarvis events` exits 0, prints the good event and names the damaged rows on stderr."""
    url = f"sqlite+aiosqlite:///{tmp_path}/jarvis.db"
    store = await EventStore.connect(url, auto_migrate=True)
    try:
        store.append([Event(EventKind.TICK_STARTED, NOW, "good")])
        await store.flush()
        await damage_events(store)
    finally:
        await store.aclose()
    with anyio.fail_after(120):
        done = await anyio.run_process(
            jarvis_argv("events", "--json"), cwd=tmp_path, env=jarvis_env(tmp_path), check=False
        )
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, stderr
    assert stdout.count("\n") == 1 and '"kind": "tick.started"' in stdout
    assert "damaged event row skipped" in stderr
    assert "Traceback" not in stderr


async def test_a_damaged_ledger_row_is_named_and_stops_start_up_in_one_line(
    tmp_path: Path,
) -> None:
    """The ledger is safety state: a damaged row stops `jarvis run` with exit 1 naming it."""
    url = f"sqlite+aiosqlite:///{tmp_path}/jarvis.db"
    store = await EventStore.connect(url, auto_migrate=True)
    try:
        store.stage_retry(RetryState("sim://api", "restart", attempts=(NOW,)))
        await store.flush()
        async with store.engine.begin() as connection:
            await connection.execute(text("UPDATE retry_state SET attempts = '\"soon\"'"))
        with pytest.raises(DamagedRowError, match=r"\('sim://api', 'restart'\) is damaged"):
            await store.load_retries()
    finally:
        await store.aclose()
    with anyio.fail_after(120):
        done = await anyio.run_process(
            jarvis_argv("run", "--ticks", "1", "--http-port", "0"),
            cwd=tmp_path,
            env=jarvis_env(tmp_path),
            check=False,
        )
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr  # damaged until reset: README, "Exit statuses"
    assert "retry_state row ('sim://api', 'restart') is damaged" in stderr
    assert "jarvis retries reset sim://api" in stderr
    assert "Traceback" not in stderr
