"""A fleet-wide duty that fails for the database logs one warning line, not a traceback.

The revenue settlement and the daily report's check logged an outage as a bug
(``log.exception``): an error line with the whole traceback, SQLAlchemy's text among it,
and no ``error`` field to read. An outage is now a warning whose ``error`` is the
store's one line naming the database (a bug keeps its traceback). Real PostgreSQL
behind a TCP proxy that stops (`tests.store.tcp_proxy`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Coroutine, MutableMapping
from datetime import UTC, time
from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest
from structlog.testing import capture_logs

from jarvis.loop.clock import VirtualClock
from jarvis.report.deliver import ReportSender
from jarvis.store import EventStore, upgrade
from jarvis.telemetry.metrics import Metrics
from tests.revenue.test_ledger import START, keeper_for
from tests.store.tcp_proxy import TcpProxy

pytestmark = pytest.mark.anyio


async def logged_once(
    run: Callable[[], Coroutine[Any, Any, object]], event: str
) -> MutableMapping[str, Any]:
    """Run a duty's loop until it logs ``event``, then stop it; that line."""
    with capture_logs() as logs, anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            group.start_soon(run)
            for _ in itertools.count():  # polled: the duty has no event to wait on
                found = [line for line in logs if line["event"] == event]
                if found:
                    break
                await anyio.sleep(0.05)
            group.cancel_scope.cancel()
    return found[0]


def the_store_said(line: MutableMapping[str, Any], url: str) -> None:
    parts = urlsplit(url)
    assert line["log_level"] == "warning", line
    assert "exc_info" not in line, line
    error = line["error"]
    assert error.isprintable(), error
    assert error.startswith(
        f"cannot reach PostgreSQL at {parts.hostname}:{parts.port} (database {parts.path[1:]}): "
    ), error
    assert "sqlalche.me" not in error


@pytest.fixture
async def store_behind(pg_proxy: TcpProxy, pg_url: str) -> EventStore:
    """The migrated database, reached through the proxy the test stops."""
    await upgrade(pg_url)
    return await EventStore.connect(pg_proxy.url_for(pg_url))


async def test_a_settlement_the_database_misses_is_one_warning_line(
    pg_proxy: TcpProxy, store_behind: EventStore
) -> None:
    """The database goes away: the settlement's failure is a warning naming it in one line."""
    keeper = keeper_for(store_behind, VirtualClock(START), Metrics())
    try:
        await pg_proxy.stop()
        line = await logged_once(
            keeper.run, "revenue: settlement failed; trying again at the next interval"
        )
    finally:
        await store_behind.aclose()
    the_store_said(line, store_behind.url)


async def test_a_report_check_the_database_misses_is_one_warning_line(
    pg_proxy: TcpProxy, store_behind: EventStore
) -> None:
    """The database goes away when a report is due: the check's failure is a warning
    naming it in one line."""
    sender = ReportSender(
        store=store_behind, clock=VirtualClock(START), at=time(0), zone=UTC, budget_usd=100.0
    )
    try:
        await pg_proxy.stop()
        line = await logged_once(sender.run, "daily report: check failed; trying again later")
    finally:
        await store_behind.aclose()
    the_store_said(line, store_behind.url)
