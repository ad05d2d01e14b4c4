"""`EventStore.explain` and `describe`: any failure in one printable line for a log.

What a warning's ``error`` says when the database or its driver failed: the database
named, the driver's reason, and none of what SQLAlchemy adds (the statement, its bound
parameters, a link to its docs) nor what PostgreSQL's DETAIL quotes (a row's values,
which may be outside or private text). Outside text is made printable, never raw.
Real PostgreSQL.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import create_async_engine

from jarvis.store import EventStore
from jarvis.store.errors import describe

pytestmark = pytest.mark.anyio

HOSTILE = "web\x1b]0;owned\x07\nlevel=error forged=1 \u202eevil"


def named(pg_url: str) -> str:
    parts = urlsplit(pg_url)
    return f"PostgreSQL at {parts.hostname}:{parts.port or 5432} (database {parts.path[1:]}): "


def test_a_reason_with_control_characters_is_one_printable_line() -> None:
    """A line break, an escape sequence and a bidi override in a reason are shown as their
    escapes: the log line cannot be forged, nor a terminal reading it driven."""
    said = describe(RuntimeError(f"provider said: {HOSTILE}"))

    assert said.isprintable(), said
    assert said == (
        "RuntimeError: provider said: web\\x1b]0;owned\\x07 level=error forged=1 \\u202eevil"
    )


async def test_a_refused_row_is_named_without_its_statement_values_or_link(pg_url: str) -> None:
    """A constraint refuses a row: the line names the database and the constraint, not the
    statement, its bound parameters, the row's values PostgreSQL quotes, or the link."""
    store = await EventStore.connect(pg_url, auto_migrate=True)
    try:
        async with store.engine.begin() as connection:
            await connection.execute(text("CREATE TABLE keyed (k text PRIMARY KEY)"))
            await connection.execute(text("INSERT INTO keyed VALUES (:k)"), {"k": HOSTILE})
        with pytest.raises(IntegrityError) as refused:
            async with store.engine.begin() as connection:
                await connection.execute(text("INSERT INTO keyed VALUES (:k)"), {"k": HOSTILE})
        said = store.explain(refused.value)
    finally:
        await store.aclose()

    assert said.startswith(named(pg_url) + "UniqueViolationError: duplicate key value"), said
    assert said.isprintable(), said
    for leaked in ("INSERT", "sqlalche.me", "web", "DETAIL", "Key (k)"):
        assert leaked not in said, said


async def test_a_pool_out_of_connections_is_named_without_the_link(pg_url: str) -> None:
    """SQLAlchemy's own error (no connection free in the pool in time) names the database
    and says the pool's reason, without its link."""
    store = await EventStore.connect(pg_url, auto_migrate=True)
    engine = create_async_engine(pg_url, pool_size=1, max_overflow=0, pool_timeout=0.1)
    try:
        async with engine.connect():
            with pytest.raises(PoolTimeoutError) as waited:
                async with engine.connect():
                    pass
        said = store.explain(waited.value)
    finally:
        await engine.dispose()
        await store.aclose()

    assert said.startswith(named(pg_url) + "TimeoutError: QueuePool limit of size 1"), said
    assert "sqlalche.me" not in said
    assert "Background" not in said
