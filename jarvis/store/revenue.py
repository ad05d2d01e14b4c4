"""The revenue ledger: MRR per UTC day in ``revenue_daily``, settled from the customers table.

Defined on the store's shared `metadata` (migration 0008_revenue creates the
tables). The daemon's revenue keeper (`jarvis.loop.revenue`) calls
`RevenueLedger.settle` for today every ``[customers] revenue_interval_seconds``;
`jarvis report` reads the month's days with `RevenueLedger.days`. The arithmetic
is `jarvis.model.revenue.settle`, pure; this module only reads and writes rows.

``revenue_book`` holds each customer's MRR since the day it last changed and
what it was before, one row per customer who ever paid: the baseline a day's
movements are measured from. Settling today again replaces today's row and
yields the same movements (idempotent per day, recomputable within the day);
a past day stays as it was settled, since the customers table holds only the
present. The book is read and written in one transaction (``BEGIN IMMEDIATE``
on SQLite), so two settlements never interleave. The customers may live in
another database (``[customers] database_url``, read-only): they are read
there, with plain SQL on its ``customers`` table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime
from typing import TypeVar

from sqlalchemy import (
    Column,
    Date,
    Float,
    Integer,
    RowMapping,
    Table,
    Text,
    delete,
    insert,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from jarvis.model import BookEntry, Movement, RevenueDay, Subscription, settle
from jarvis.store.engine import SQLITE_IMMEDIATE, unreachable
from jarvis.store.errors import StoreError, describe, is_operational
from jarvis.store.tables import UtcDateTime, json_type, metadata

__all__ = ["RevenueLedger", "revenue_book", "revenue_daily"]

_T = TypeVar("_T")
_CHUNK = 500
"""Book rows per statement: under every backend's bound-parameter limit."""

revenue_daily = Table(
    "revenue_daily",
    metadata,
    Column("day", Date, primary_key=True),
    Column("mrr_usd", Float, nullable=False),
    Column("new_usd", Float, nullable=False),
    Column("expansion_usd", Float, nullable=False),
    Column("contraction_usd", Float, nullable=False),
    Column("churned_usd", Float, nullable=False),
    Column("paying", Integer, nullable=False),
    Column("unpriced", Integer, nullable=False),
    Column("customers", json_type(), nullable=False),
    Column("settled_at", UtcDateTime(), nullable=False),
)

revenue_book = Table(
    "revenue_book",
    metadata,
    Column("customer_id", Text, primary_key=True),
    Column("mrr_usd", Float, nullable=False),
    Column("since", Date, nullable=False),
    Column("before_usd", Float, nullable=False),
)

_SUBSCRIPTIONS = text("SELECT id, plan, subscription_status FROM customers")


class RevenueLedger:
    """``revenue_daily`` and ``revenue_book`` on Jarvis's database; customers read from theirs."""

    def __init__(self, engine: AsyncEngine, *, customers: AsyncEngine | None = None) -> None:
        self._engine = engine
        self._customers = customers or engine
        self._owns_customers = customers is not None
        """A customers engine of its own (another database) is the ledger's to dispose."""

    async def settle(self, day: date, prices: Mapping[str, float], now: datetime) -> RevenueDay:
        """Settle ``day`` from the customers as they are now; store it and the book."""
        subscriptions = await self._guard(self._customers, self._subscriptions)
        writer = self._engine.execution_options(**{SQLITE_IMMEDIATE: True})

        async def run(connection: AsyncConnection) -> RevenueDay:
            async with connection.begin():
                rows = await connection.execute(select(revenue_book))
                book = {r.customer_id: BookEntry(r.mrr_usd, r.since, r.before_usd) for r in rows}
                try:
                    revenue, changed = settle(day, subscriptions, book, prices)
                except ValueError as exc:
                    raise StoreError(str(exc)) from None
                await self._write(connection, revenue, changed, now)
                return revenue

        return await self._guard(writer, run)

    async def days(self, since: date, until: date) -> list[RevenueDay]:
        """The settled days from ``since`` to ``until`` inclusive, oldest first."""

        async def run(connection: AsyncConnection) -> list[RevenueDay]:
            query = (
                select(revenue_daily)
                .where(revenue_daily.c.day >= since, revenue_daily.c.day <= until)
                .order_by(revenue_daily.c.day)
            )
            return [_day(row._mapping) for row in await connection.execute(query)]

        return await self._guard(self._engine, run)

    @staticmethod
    async def _subscriptions(connection: AsyncConnection) -> list[Subscription]:
        rows = await connection.execute(_SUBSCRIPTIONS)
        return [Subscription(str(r[0]), str(r[1]), r[2]) for r in rows]

    @staticmethod
    async def _write(
        connection: AsyncConnection,
        revenue: RevenueDay,
        changed: dict[str, BookEntry],
        now: datetime,
    ) -> None:
        await connection.execute(delete(revenue_daily).where(revenue_daily.c.day == revenue.day))
        await connection.execute(
            insert(revenue_daily).values(
                day=revenue.day,
                mrr_usd=revenue.mrr_usd,
                **{f"{kind.value}_usd": revenue.usd(kind) for kind in Movement},
                paying=revenue.paying,
                unpriced=revenue.unpriced,
                customers=dict(revenue.customers),
                settled_at=now,
            )
        )
        ids = sorted(changed)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            await connection.execute(
                delete(revenue_book).where(revenue_book.c.customer_id.in_(chunk))
            )
            await connection.execute(
                insert(revenue_book),
                [
                    {
                        "customer_id": i,
                        "mrr_usd": changed[i].mrr_usd,
                        "since": changed[i].since,
                        "before_usd": changed[i].before_usd,
                    }
                    for i in chunk
                ],
            )

    @staticmethod
    async def _guard(engine: AsyncEngine, run: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        """Run on a connection; an outage or a bug in the database becomes one-line StoreError."""
        try:
            async with engine.connect() as connection:
                return await run(connection)
        except (SQLAlchemyError, OSError) as exc:
            if is_operational(exc):
                raise unreachable(engine.url, exc) from exc
            raise StoreError(f"revenue: {describe(exc)}") from exc

    async def aclose(self) -> None:
        if self._owns_customers:
            await self._customers.dispose()


def _day(row: RowMapping) -> RevenueDay:
    customers = row["customers"]
    return RevenueDay(
        day=row["day"],
        mrr_usd=float(row["mrr_usd"]),
        moved={
            kind: float(row[f"{kind.value}_usd"]) for kind in Movement if row[f"{kind.value}_usd"]
        },
        customers={str(k): int(v) for k, v in (customers or {}).items()},
        paying=int(row["paying"]),
        unpriced=int(row["unpriced"]),
    )
