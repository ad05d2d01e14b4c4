"""The product's own database as the customers source: read-only, incremental, mapped.

Used by the customers sensor when ``[customers.source]`` is configured: the
product keeps its users in its own table, under its own column names, and
Jarvis may only read it. Each observe copies the rows changed since the last
read into Jarvis's ``customers`` table (insert, or update of the mapped
columns only), and the sensor then reads that table as usual. So what Jarvis
writes about a customer (the Stripe id, ``welcomed_at``, ``reengaged_at``, an
opt-out made through ``/unsubscribe``) stays in Jarvis's database, and a
customer who opted out in either place stays opted out.

Read-only is enforced, not hoped for: on PostgreSQL every session of the
source engine starts with ``default_transaction_read_only = on``, so a write
would be refused by the server; only SELECTs are ever sent. Incremental like
the sensor: keyset pages in (cursor, id) order, where the cursor is the mapped
``updated_at`` column, or else ``COALESCE(last_active_at, signed_up_at)`` (then
a change that moves neither, such as a new plan, is not seen until the
customer is active again). An update that changes nothing writes nothing.

Late commits: a row may commit up to ``lag`` after its stamp, so each pass
reads again the rows stamped within ``lag`` of the newest stamp seen, until a
pass has begun more than ``lag`` after that newest row was first read; by then
every row stamped before it had committed and that pass saw it, and the next
starts after the newest stamp itself. The wait is measured on Jarvis's clock,
the stamps compared only with each other: neither the product's clock, nor its
time zone if its columns hold local time, enters into it. So a bulk of rows
sharing the newest stamp, as an import leaves them, is read twice, not on every
pass while nothing newer comes. One bound uses Jarvis's clock: a pass never
starts after its now less ``lag``, so a row stamped in the future (a bogus
date, a ``9999-12-31`` sentinel, a clock or local time ahead of Jarvis's)
cannot hide the changes stamped before it; such rows are read again each
pass, and unchanged ones write nothing.

A product row whose id, email or sign-up time is NULL is not copied (Jarvis
cannot reach or onboard it); it is copied once those are filled in and its
stamp moves. A NUL character in the product's text becomes U+FFFD.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from jarvis.actuators.base import ActuatorError
from jarvis.actuators.customers.activity import quote
from jarvis.actuators.customers.table import as_utc, bind_time
from jarvis.sqlengine import async_engine

__all__ = ["FIELDS", "REQUIRED", "ProductSource"]

REQUIRED = ("id", "email", "signed_up_at")
"""Fields the mapping must name; the others are optional."""
FIELDS = (
    *REQUIRED,
    "name",
    "plan",
    "last_active_at",
    "subscription_status",
    "opted_out",
    "updated_at",
)
_TARGET = {"opted_out": "marketing_opt_out"}
"""Jarvis's column for a mapped field, where the names differ."""
_TIMES = frozenset({"signed_up_at", "last_active_at", "updated_at"})


class ProductSource:
    """Copies changed rows of the product's customer table into Jarvis's ``customers``."""

    def __init__(
        self,
        source: AsyncEngine,
        target: AsyncEngine,
        *,
        table: str,
        columns: Mapping[str, str],
        lag: timedelta,
        batch: int,
    ) -> None:
        self._source = source
        self._target = target
        self._fields = [f for f in FIELDS if f in columns]
        self._lag = lag
        self._batch = batch
        cursor = (
            quote(columns["updated_at"])
            if "updated_at" in columns
            else f"COALESCE({quote(columns['last_active_at'])}, {quote(columns['signed_up_at'])})"
            if "last_active_at" in columns
            else quote(columns["signed_up_at"])
        )
        selected = ", ".join(quote(columns[f]) for f in self._fields)
        key = quote(columns["id"])
        head = f"SELECT {selected}, {cursor} FROM {quote(table)} WHERE "  # noqa: S608 - checked identifiers
        tail = f" ORDER BY {cursor}, {key} LIMIT :limit"
        since = bindparam("since", type_=DateTime(timezone=True))
        self._read = text(f"{head}{cursor} > :since{tail}").bindparams(since)
        # Keyset: the next page starts just after the last row, even among rows of one stamp.
        self._page = text(
            f"{head}{cursor} > :since OR ({cursor} = :since AND {key} > :after){tail}"
        ).bindparams(since)
        self._write = text(_upsert(self._fields)).bindparams(
            *(
                bindparam(f, type_=DateTime(timezone=True))
                for f in _copied(self._fields)
                if f in _TIMES
            ),
            bindparam("now", type_=DateTime(timezone=True)),
        )
        self._since = datetime(1970, 1, 1, tzinfo=UTC)
        self._after: object = None
        """The last row's id while paging (typed as the product's column), else None."""
        self._newest = self._since
        self._newest_at = self._since
        """When the newest stamp was first read, on Jarvis's clock."""
        self._started = self._since
        """When the pass under way began (its first batch), on Jarvis's clock."""
        self.rows_read = 0

    @property
    def paging(self) -> bool:
        """Whether the last sync read a full batch: the next continues after its last row."""
        return self._after is not None

    @classmethod
    def connect(cls, url: str, target: AsyncEngine, **options: Any) -> ProductSource:
        """A read-only engine on ``url`` (PostgreSQL refuses writes in its sessions)."""
        connect_args: dict[str, Any] = {}
        if url.startswith("postgresql+asyncpg"):
            connect_args["server_settings"] = {"default_transaction_read_only": "on"}
        engine = async_engine(url, connect_args=connect_args)
        return cls(engine, target, **options)

    async def sync(self, now: datetime) -> None:
        """Copy one page of changed rows; the next continues, or starts a new pass."""
        if self._after is None:
            self._started = now
        try:
            params = {"since": bind_time(self._since, self._source), "limit": self._batch}
            statement = self._read
            if self._after is not None:
                params["after"] = self._after
                statement = self._page
            async with self._source.connect() as connection:
                rows = (await connection.execute(statement, params)).all()
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            raise ActuatorError(f"customers source: {type(cause).__name__}: {cause}") from exc
        self.rows_read = len(rows)
        if rows:
            # A row missing a required field (NOT NULL in Jarvis's table) is left out: one
            # such user would fail the whole batch, and every pass after it.
            values = [self._values(row, now) for row in rows]
            complete = [v for v in values if all(v[f] is not None for f in REQUIRED)]
            if complete:
                await self._upsert(complete)
            stamp = as_utc(rows[-1][-1])
            if stamp > self._newest:
                self._newest, self._newest_at = stamp, now
        if len(rows) == self._batch:
            self._since, self._after = as_utc(rows[-1][-1]), rows[-1][0]
        else:
            settled = self._started - self._newest_at > self._lag
            since = self._newest if settled else self._newest - self._lag
            # Never past Jarvis's own clock less the lag: one row stamped far ahead
            # (a bogus date, a 9999 sentinel) would otherwise hide every later change.
            self._since = min(since, now - self._lag)
            self._after = None

    def _values(self, row: Any, now: datetime) -> dict[str, Any]:
        values: dict[str, Any] = {"now": bind_time(now, self._target)}
        for field, value in zip(self._fields, row, strict=False):
            values[field] = self._convert(field, value)
        return values

    def _convert(self, field: str, value: Any) -> Any:
        if field == "opted_out":
            return bool(value)
        if value is None:
            return None
        if field in _TIMES:
            return bind_time(as_utc(value), self._target)
        # PostgreSQL text cannot hold NUL (SQLite and MySQL can): one such name would
        # fail the whole batch. Replaced as the event store replaces it.
        return str(value).replace("\x00", "\ufffd")

    async def _upsert(self, values: list[dict[str, Any]]) -> None:
        try:
            async with self._target.begin() as connection:
                await connection.execute(self._write, values)
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            raise ActuatorError(f"customers: {type(cause).__name__}: {cause}") from exc

    async def aclose(self) -> None:
        await self._source.dispose()


def _upsert(fields: list[str]) -> str:
    """INSERT … ON CONFLICT (id) DO UPDATE of the mapped columns, only when one differs.

    The same statement on PostgreSQL and SQLite (3.39 and later know
    ``IS DISTINCT FROM``). An opt-out is never undone here: Jarvis's own
    (from ``/unsubscribe``) or the product's, either holds.
    """
    copied = _copied(fields)
    columns = [_TARGET.get(f, f) for f in copied]
    names = ", ".join(["id", *columns, "updated_at"])
    params = ", ".join(
        [":id", *(("COALESCE(:plan, 'free')" if f == "plan" else f":{f}") for f in copied), ":now"]
    )
    assignments = []
    differs = []
    for column in columns:
        if column == "marketing_opt_out":
            assignments.append(
                "marketing_opt_out = customers.marketing_opt_out OR excluded.marketing_opt_out"
            )
            differs.append("(excluded.marketing_opt_out AND NOT customers.marketing_opt_out)")
        else:
            assignments.append(f"{column} = excluded.{column}")
            differs.append(f"customers.{column} IS DISTINCT FROM excluded.{column}")
    assignments.append("updated_at = excluded.updated_at")
    return (
        f"INSERT INTO customers ({names}) VALUES ({params}) ON CONFLICT (id) DO UPDATE SET "  # noqa: S608 - our column names only
        + ", ".join(assignments)
        + " WHERE "
        + " OR ".join(differs)
    )


def _copied(fields: list[str]) -> list[str]:
    """The mapped fields written to a column of their own (``updated_at`` is Jarvis's stamp)."""
    return [f for f in fields if f not in {"id", "updated_at"}]
