"""The product's own database as the customers source: mapped, incremental, read-only.

A real PostgreSQL schema made here (database ``test``, a unique schema name)
plays the product's database, under its own table and column names; Jarvis's
own database is SQLite or another PostgreSQL database, as for every loop test.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from sqlalchemy import select

from jarvis.actuators.customers.sensor import CustomersActuator
from jarvis.actuators.customers.source import ProductSource
from jarvis.app import App
from jarvis.config import ConfigError, load_settings
from jarvis.loop.clock import VirtualClock
from jarvis.model import EventKind
from jarvis.store.customers import customers
from tests.billing.stripe_standin import StripeStandIn
from tests.conftest import PG_URL

pytestmark = pytest.mark.anyio

DAY = timedelta(days=1)
COLUMNS = {
    "id": "user_id",
    "email": "mail",
    "name": "full_name",
    "plan": "tier",
    "signed_up_at": "created",
    "last_active_at": "last_seen",
    "opted_out": "no_marketing",
    "updated_at": "modified",
}


class Product:
    """The product's database: a schema of its own in ``test``, dropped afterwards."""

    def __init__(self, url: str, schema: str) -> None:
        self.url = url
        self.schema = schema
        self.table = f"{schema}.users"

    async def execute(self, sql: str, *args: Any) -> None:
        connection = await asyncpg.connect(self.url.replace("postgresql+asyncpg", "postgresql"))
        try:
            await connection.execute(sql, *args)
        finally:
            await connection.close()

    async def fetch(self, sql: str) -> list[Any]:
        connection = await asyncpg.connect(self.url.replace("postgresql+asyncpg", "postgresql"))
        try:
            return list(await connection.fetch(sql))
        finally:
            await connection.close()

    async def user(self, user_id: int, now: datetime, *, last_seen: datetime, **cols: Any) -> None:
        values = {"tier": "pro", "no_marketing": False, "modified": now, **cols}
        await self.execute(
            f"INSERT INTO {self.table} (user_id, mail, full_name, tier, created, last_seen, "  # noqa: S608 - test schema
            "no_marketing, modified) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            user_id,
            f"u{user_id}@product.test",
            f"User {user_id}",
            values["tier"],
            now - 100 * DAY,
            last_seen,
            values["no_marketing"],
            values["modified"],
        )


@pytest.fixture
async def product() -> AsyncIterator[Product]:
    url = urlunsplit(urlsplit(PG_URL)._replace(path="/test"))
    schema = f"product_{secrets.token_hex(6)}"
    made = Product(url, schema)
    await made.execute(f"CREATE SCHEMA {schema}")
    await made.execute(
        f"CREATE TABLE {made.table} (user_id bigint PRIMARY KEY, mail text NOT NULL, "
        "full_name text, tier text, created timestamptz NOT NULL, last_seen timestamptz, "
        "no_marketing boolean NOT NULL DEFAULT false, modified timestamptz NOT NULL)"
    )
    try:
        yield made
    finally:
        await made.execute(f"DROP SCHEMA {schema} CASCADE")


def _source(product: Product, **columns: str) -> dict[str, Any]:
    return {"source": {"url": product.url, "table": product.table, "columns": COLUMNS | columns}}


async def _row(app: App, customer_id: str) -> Any:
    async with app.store.engine.connect() as connection:
        result = await connection.execute(select(customers).where(customers.c.id == customer_id))
        return result.one_or_none()


def _sensor(app: App) -> CustomersActuator:
    return next(a for a in app.actuators if isinstance(a, CustomersActuator))


async def test_the_product_s_users_become_customers_under_the_mapping(
    make_app: Any, product: Product, stripe_api: StripeStandIn, clock: VirtualClock
) -> None:
    """Mapped columns are copied; the 30-day-quiet user is observed as high risk and onboarded."""
    now = clock.now()
    await product.user(1, now, last_seen=now - 30 * DAY)
    await product.user(2, now, last_seen=now - DAY, tier="free")
    app = await make_app(customers_extra=_source(product))
    await app.reconciler.tick()
    one, two = await _row(app, "1"), await _row(app, "2")
    assert (one.email, one.name, one.plan) == ("u1@product.test", "User 1", "pro")
    assert one.last_active_at == now - 30 * DAY
    assert two.plan == "free"
    changed = await app.store.events(kinds=[EventKind.RESOURCE_CHANGED], limit=10)
    assert sorted(e.resource for e in changed) == ["customer://1", "customer://2"]
    assert "u1@product.test" not in str([e.payload for e in changed])
    proposed = await app.store.events(kinds=[EventKind.ACTION_PROPOSED], limit=10)
    assert {(e.resource, e.action_kind) for e in proposed} >= {
        ("customer://1", "create_billing_customer")
    }


async def test_later_reads_copy_only_what_changed(
    make_app: Any, product: Product, clock: VirtualClock
) -> None:
    """After the first read, a tick reads the rows stamped since (and within the lag), not all."""
    now = clock.now()
    for user_id in range(1, 51):
        stamp = now - timedelta(minutes=51 - user_id)
        await product.user(user_id, now, last_seen=now - DAY, modified=stamp)
    app = await make_app(customers_extra=_source(product))
    source = _sensor(app)._source
    assert isinstance(source, ProductSource)
    await app.reconciler.tick()
    assert source.rows_read == 50
    clock.advance(60)
    later = now + 10 * DAY
    await product.execute(
        f"UPDATE {product.table} SET tier = 'team', modified = $1 WHERE user_id = 7",  # noqa: S608 - test schema
        later,
    )
    await app.reconciler.tick()
    assert source.rows_read == 2  # user 7, and user 50 again: within the lag of the newest
    copied = await _row(app, "7")
    assert copied.plan == "team"
    clock.advance(60)
    await app.reconciler.tick()
    assert source.rows_read == 1  # user 7 again, within the lag
    assert (
        await _row(app, "7")
    ).updated_at == copied.updated_at  # an unchanged copy writes nothing


async def test_a_row_committed_after_a_read_began_is_read_by_the_next(
    make_app: Any, product: Product, clock: VirtualClock
) -> None:
    """What the lag is for: a row stamped before a read, committed after it, is not missed.

    User 2 is stamped when its transaction starts and committed only after the
    first tick's read, which sees user 1, stamped later. Reading on from the
    newest stamp alone would skip user 2 for good.
    """
    insert = (
        f"INSERT INTO {product.table} (user_id, mail, tier, created, last_seen, modified) "  # noqa: S608 - test schema
        "VALUES ($1, $2, 'pro', now(), now(), now())"
    )
    late = await asyncpg.connect(product.url.replace("postgresql+asyncpg", "postgresql"))
    try:
        transaction = late.transaction()
        await transaction.start()
        await late.execute(insert, 2, "u2@product.test")  # now() is the transaction's start
        await product.execute(insert, 1, "u1@product.test")  # stamped later, committed first
        app = await make_app(allowlist=[], customers_extra={**_source(product), "lag_seconds": 600})
        source = _sensor(app)._source
        assert isinstance(source, ProductSource)
        await app.reconciler.tick()
        assert source.rows_read == 1
        assert await _row(app, "2") is None
        await transaction.commit()
    finally:
        await late.close()
    clock.advance(60)
    await app.reconciler.tick()
    assert (await _row(app, "2")).email == "u2@product.test"


async def test_a_large_product_table_is_read_a_batch_a_tick_then_not_again_while_quiet(
    make_app: Any, product: Product, clock: VirtualClock
) -> None:
    """25 users of one stamp, batches of 10: read 10, 10, 5, once more, then not while quiet.

    A bulk of users sharing the newest stamp, as an import leaves them, was
    read again in full every pass while nothing newer came. Now the second pass
    is the last: it began more than the lag after that stamp was first read, so
    every row stamped before it had committed. The sensor is catching up while
    either read stops at a full batch.
    """
    now = clock.now()
    for user_id in range(1, 26):
        await product.user(user_id, now, last_seen=now - DAY)
    clock.advance(60)
    app = await make_app(allowlist=[], customers_extra=_source(product), customers_read_batch=10)
    sensor = _sensor(app)
    source = sensor._source
    assert isinstance(source, ProductSource)
    read: list[int] = []
    paging: list[bool] = []
    catching_up: list[bool] = []
    for _ in range(8):
        await app.reconciler.tick()
        read.append(source.rows_read)
        paging.append(source.paging)
        catching_up.append(sensor.catching_up)
        clock.advance(30)
    assert read == [10, 10, 5, 10, 10, 5, 0, 0]
    assert paging == [True, True, False] * 2 + [False, False]
    assert catching_up == [True, True, False] * 2 + [False, False]


async def test_an_opt_out_made_in_jarvis_survives_the_product_s_row(
    make_app: Any, product: Product, clock: VirtualClock
) -> None:
    """``/unsubscribe`` writes Jarvis's table; a later copy of the product's row keeps it."""
    now = clock.now()
    await product.user(1, now, last_seen=now)
    app = await make_app(customers_extra=_source(product))
    await app.reconciler.tick()
    assert await _sensor(app).opt_out("1") is True
    await product.execute(
        f"UPDATE {product.table} SET tier = 'team', modified = $1",  # noqa: S608 - test schema
        now + DAY,
    )
    clock.advance(60)
    await app.reconciler.tick()
    row = await _row(app, "1")
    assert (row.plan, row.marketing_opt_out) == ("team", True)
    before = await product.fetch(f"SELECT no_marketing FROM {product.table}")  # noqa: S608 - test schema
    assert [r["no_marketing"] for r in before] == [False]


async def test_the_source_session_refuses_writes(product: Product, clock: VirtualClock) -> None:
    """Read-only is the server's rule: the source engine's sessions cannot write."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.ext.asyncio import create_async_engine

    target = create_async_engine("sqlite+aiosqlite://")
    source = ProductSource.connect(
        product.url, target, table=product.table, columns=COLUMNS, lag=DAY, batch=10
    )
    try:
        with pytest.raises(DBAPIError, match="read-only"):
            async with source._source.begin() as connection:
                await connection.execute(text(f"DELETE FROM {product.table}"))  # noqa: S608 - test
    finally:
        await source.aclose()
        await target.dispose()


URL = "sqlite+aiosqlite:///product.db"
"""A usable URL: the mapping, not the URL, is what each case gets wrong."""


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ({"url": URL, "table": "users", "columns": {"id": "a", "email": "b"}}, "signed_up_at"),
        (
            {
                "url": URL,
                "table": "users; drop",
                "columns": {"id": "a", "email": "b", "signed_up_at": "c"},
            },
            "customers.source.table",
        ),
        (
            {
                "url": URL,
                "table": "u",
                "columns": {"id": "a", "email": "b", "signed_up_at": "c", "age": "d"},
            },
            "'age'",
        ),
        (
            {"url": URL, "table": "u", "columns": {"id": "a", "email": "b", "signed_up_at": "c d"}},
            "customers.source.columns.signed_up_at",
        ),
    ],
)
def test_a_bad_mapping_is_a_configuration_error_naming_the_key(
    source: dict[str, Any], named: str
) -> None:
    """A missing field, an unknown one, or a name that is not an identifier: one clear error."""
    with pytest.raises(ConfigError, match=r"customers\.source") as error:
        load_settings(customers={"enabled": True, "source": source})
    assert named in str(error.value)


async def test_a_product_row_without_an_email_does_not_stop_the_others_being_copied(
    make_app: Any, product: Product, clock: VirtualClock
) -> None:
    """A product user with a NULL required column is left out; the users beside it are copied."""
    now = clock.now()
    await product.execute(f"ALTER TABLE {product.table} ALTER COLUMN mail DROP NOT NULL")
    await product.user(1, now, last_seen=now)
    await product.user(2, now, last_seen=now)
    await product.execute(f"UPDATE {product.table} SET mail = NULL WHERE user_id = 1")  # noqa: S608 - test schema
    app = await make_app(allowlist=[], customers_extra=_source(product))
    await app.reconciler.tick()
    assert await _row(app, "1") is None
    assert (await _row(app, "2")).email == "u2@product.test"


async def test_a_nul_character_in_a_product_name_does_not_stop_the_copy(
    make_app: Any, tmp_path: Any, clock: VirtualClock
) -> None:
    """A NUL in a product's text (SQLite keeps it, PostgreSQL refuses it) is copied replaced."""
    path = tmp_path / "product.db"
    with sqlite3.connect(path) as product:
        product.execute(
            "CREATE TABLE users (user_id TEXT PRIMARY KEY, mail TEXT NOT NULL, full_name TEXT, "
            "created TEXT NOT NULL)"
        )
        stamp = clock.now().replace(tzinfo=None).isoformat(sep=" ")
        product.executemany(
            "INSERT INTO users VALUES (?, ?, ?, ?)",
            [("1", "u1@product.test", "Eve\x00il", stamp), ("2", "u2@product.test", "Two", stamp)],
        )
    columns = {"id": "user_id", "email": "mail", "name": "full_name", "signed_up_at": "created"}
    source = {"url": f"sqlite+aiosqlite:///{path}", "table": "users", "columns": columns}
    app = await make_app(allowlist=[], customers_extra={"source": source})
    await app.reconciler.tick()
    assert (await _row(app, "1")).name == "Eve\ufffdil"
    assert (await _row(app, "2")).name == "Two"


async def test_a_product_row_stamped_in_the_future_does_not_hide_later_changes(
    make_app: Any, product: Product, clock: VirtualClock
) -> None:
    """A bogus far-future stamp on one user does not stop later changes of the others being read."""
    now = clock.now()
    await product.user(1, now, last_seen=now, modified=now + 3650 * DAY)
    await product.user(2, now, last_seen=now, tier="free")
    app = await make_app(allowlist=[], customers_extra=_source(product))
    await app.reconciler.tick()
    for _ in range(3):
        clock.advance(60)
        await app.reconciler.tick()
    await product.execute(
        f"UPDATE {product.table} SET tier = 'team', modified = $1 WHERE user_id = 2",  # noqa: S608 - test schema
        clock.now(),
    )
    clock.advance(60)
    await app.reconciler.tick()
    assert (await _row(app, "2")).plan == "team"
