"""libpq's URL parameters (``sslmode``, ``options``, a server setting) on every PostgreSQL path.

Operators copy URLs such as ``…/jarvis?sslmode=require`` from their provider's
documentation. The direct paths (`jarvis killswitch engage`, `jarvis plan`)
connect through asyncpg's own DSN parser and understood them; the engine handed
them to ``asyncpg.connect`` as keyword arguments, so `jarvis run` and
`jarvis db upgrade` failed with "connect() got an unexpected keyword argument".
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from jarvis.actuators.customers.table import CustomerTable
from jarvis.actuators.llm.usage import LlmUsageActuator
from jarvis.config.cost import CostSettings
from jarvis.loop.clock import VirtualClock
from jarvis.model import Event, EventKind
from jarvis.store import EventStore, StoreError, upgrade
from jarvis.store.migrate import HEAD_REVISION

pytestmark = pytest.mark.anyio


async def test_a_url_with_sslmode_opens_the_store(pg_url: str) -> None:
    """``?sslmode=disable`` (libpq's spelling) is a connection option, not an error; beside
    it, SQLAlchemy's own ``prepared_statement_cache_size`` still reaches SQLAlchemy."""
    url = f"{pg_url}?sslmode=disable&prepared_statement_cache_size=0"
    assert await upgrade(url) == HEAD_REVISION
    store = await EventStore.connect(url)
    try:
        await store.ping()
    finally:
        await store.aclose()


async def test_a_search_path_in_the_url_puts_every_table_in_that_schema(pg_url: str) -> None:
    """``?options=-csearch_path=jarvis`` migrates into, writes to and reads from schema
    ``jarvis``, leaving ``public`` empty."""
    admin = await asyncpg.connect(pg_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await admin.execute("CREATE SCHEMA jarvis")
        url = f"{pg_url}?options=-csearch_path%3Djarvis"
        assert await upgrade(url) == HEAD_REVISION
        store = await EventStore.connect(url)
        try:
            store.append([Event(EventKind.TICK_STARTED, datetime.now(UTC), "tick-1")])
            await store.flush()
            assert [e.idempotency_key for e in await store.events(limit=5)] == ["tick-1"]
        finally:
            await store.aclose()
        tables = await admin.fetch(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'events'"
        )
        assert [row["table_schema"] for row in tables] == ["jarvis"]
        assert await admin.fetchval("SELECT count(*) FROM jarvis.events") == 1
    finally:
        await admin.close()


async def test_the_customers_table_and_the_usage_table_read_a_url_with_sslmode(
    pg_url: str,
) -> None:
    """The engines Jarvis makes beside the store's take the same URL: the customers table
    (`CustomerTable.connect`) and the LLM usage table (`LlmUsageActuator.from_settings`)
    failed with the same TypeError at their first read."""
    url = f"{pg_url}?sslmode=disable"
    assert await upgrade(url) == HEAD_REVISION
    table = CustomerTable.connect(url)
    try:
        assert await table.changed_since(datetime(2026, 1, 1, tzinfo=UTC), limit=10) == []
    finally:
        await table.aclose()
    usage = LlmUsageActuator.from_settings(
        CostSettings(), clock=VirtualClock(datetime(2026, 11, 30, tzinfo=UTC)), database_url=url
    )
    try:
        (state,) = await usage.observe()
        assert state.llm_usage is not None and state.llm_usage.requests_month_to_date == 0
    finally:
        await usage.aclose()


async def test_a_search_path_naming_no_schema_that_exists_is_one_line_naming_the_fix(
    pg_url: str,
) -> None:
    """`jarvis db upgrade` into a schema not created yet says so (a StoreError, one line
    for the CLI), rather than a traceback ending "no schema has been selected to create in"."""
    url = f"{pg_url}?options=-csearch_path%3Djarvis"
    with pytest.raises(StoreError) as raised:
        await upgrade(url)
    message = str(raised.value)
    assert "\n" not in message
    assert "CREATE SCHEMA jarvis" in message and "search_path" in message
