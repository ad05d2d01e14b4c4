"""The loop's warnings about its database say what failed in one line that names it.

The leader that could not take the lead, the retry ledger and the disruption budgets
that could not be read again logged ``error=str(exc)``: for an error of the database
that is no outage (here a table gone, as after restoring an older dump), SQLAlchemy's
text, several lines with the statement, its bound parameters and a link to its docs,
and no server. They now say it as the store says every database error
(`EventStore.explain`). Real PostgreSQL, the daemon's own elector and gate
(`jarvis.cli.daemon`).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import anyio
import asyncpg
import pytest
from structlog.testing import capture_logs

from jarvis.app import App
from jarvis.cli.daemon import _elector, _gate
from jarvis.config.sections import RetentionSettings
from jarvis.loop.clock import VirtualClock
from jarvis.loop.election import Elector
from jarvis.loop.retention import Pruner
from jarvis.store import EventStore, upgrade
from tests.loop.conftest import AppFactory
from tests.loop.test_shard_warnings import LEASE, one_line_naming

pytestmark = pytest.mark.anyio


@pytest.fixture
async def db_url(pg_url: str) -> str:
    """The leader's lease and the fleet-wide reads run on PostgreSQL."""
    await upgrade(pg_url)
    return pg_url


async def table_gone(url: str, table: str) -> None:
    """Rename ``table`` away: every statement on it fails as a missing relation."""
    admin = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await admin.execute(f"ALTER TABLE {table} RENAME TO {table}_elsewhere")
    finally:
        await admin.close()


def logged(logs: list[MutableMapping[str, Any]], event: str) -> MutableMapping[str, Any]:
    (line,) = [line for line in logs if line["event"] == event]
    return line


def where(app: App) -> tuple[str, str]:
    parts = urlsplit(app.settings.database_url)
    return f"{parts.hostname}:{parts.port or 5432}", parts.path.lstrip("/")


async def test_a_lead_not_taken_says_why_in_one_line(make_app: AppFactory, db_url: str) -> None:
    """Elected, the replica cannot read its retry ledger to take the lead: the warning and
    the reason it steps down are one line naming the database and the missing table."""
    app = await make_app(lease=LEASE)
    elector = _elector(app.settings, app)
    assert isinstance(elector, Elector)
    gate = _gate(elector, app)
    await elector.step()
    assert elector.epoch is not None
    await table_gone(db_url, "retry_state")
    with capture_logs() as logs:
        assert not await gate.ready()

    server, database = where(app)
    error = logged(logs, "could not take the lead")["error"]
    one_line_naming(error, server, database)
    assert 'relation "retry_state" does not exist' in error
    why = logged(logs, "stepped down")["why"]
    assert why == f"taking the lead failed: {error}"


async def test_the_ledger_and_budgets_unreadable_say_why_in_one_line(
    make_app: AppFactory, db_url: str
) -> None:
    """The retry ledger and the intents the budgets count cannot be read again: each
    warning is one line naming the database and what it answered."""
    app = await make_app(loop={"shards": 2}, lease=LEASE)  # shards count every intent
    await app.reconciler.start()
    await table_gone(db_url, "retry_state")
    await table_gone(db_url, "events")
    with capture_logs() as logs:
        await app.reconciler.ledger.refresh(app.store.flush)
        await app.reconciler.changes.refresh(app.store)

    server, database = where(app)
    for event, table in (
        ("retry ledger unreadable; using the in-memory copy", "retry_state"),
        ("disruption budgets unreadable; using the in-memory list", "events"),
    ):
        error = logged(logs, event)["error"]
        one_line_naming(error, server, database)
        assert f'relation "{table}" does not exist' in error


async def test_retention_that_meets_a_database_error_says_why_and_prunes_again_later(
    db_url: str,
) -> None:
    """A prune the database refuses with no outage (the events table gone) is one warning
    naming the database, and the next interval prunes again: retention never stops the
    daemon, whose task group a prune's exception would end."""
    store = await EventStore.connect(db_url)
    pruner = Pruner(store, RetentionSettings(), VirtualClock(), horizon=timedelta(hours=24))
    await table_gone(db_url, "events")
    rounds = 0
    try:
        with anyio.fail_after(60), anyio.CancelScope() as scope:  # fail_after: a hang guard

            def leads() -> bool:
                nonlocal rounds
                rounds += 1
                if rounds > 2:
                    scope.cancel()  # ends the run at its next sleep
                return rounds <= 2

            pruner.leads = leads
            with capture_logs() as logs:
                await pruner.run()
    finally:
        await store.aclose()

    parts = urlsplit(db_url)
    warnings = [line for line in logs if line["log_level"] == "warning"]
    assert [line["event"] for line in warnings] == [
        "event retention skipped; trying again at the next interval"
    ] * 2
    for line in warnings:
        one_line_naming(line["error"], f"{parts.hostname}:{parts.port or 5432}", parts.path[1:])
        assert 'relation "events" does not exist' in line["error"]
