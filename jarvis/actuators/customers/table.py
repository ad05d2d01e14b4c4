"""Plain-SQL access to the ``customers`` table, shared by the customer sensor and actuators.

Plain SQL because actuators may not import the store that defines the table
(`jarvis.store.customers`). Every write stamps ``updated_at``, which is what
the sensor reads by; a write is one statement, so it commits or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BindParameter, Boolean, DateTime, bindparam, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from jarvis.actuators.base import ActuatorError
from jarvis.model import ErrorKind
from jarvis.model.customers import WITHHOLD_ACCESS
from jarvis.sqlengine import async_engine

__all__ = ["Contact", "CustomerRow", "CustomerTable"]

_TIME = DateTime(timezone=True)

_COLUMNS = (
    "SELECT id, plan, signed_up_at, stripe_customer_id IS NOT NULL, welcomed_at IS NOT NULL, "
    "dashboard_access, marketing_opt_out, subscription_status, updated_at, "
    "unpaid_invoice_id, dunned_invoice_id, last_active_at, reengaged_at, discount_at "
    "FROM customers "
)
# Keyset order (updated_at, id): a page ends at a row, and the next starts just after
# it, even when thousands of rows share one stamp (a bulk import).
_AFTER = text(
    _COLUMNS
    + "WHERE updated_at > :since OR (updated_at = :since AND id > :after) "
    + "ORDER BY updated_at, id LIMIT :limit"
).bindparams(bindparam("since", type_=_TIME))
_SINCE = text(
    _COLUMNS + "WHERE updated_at > :since ORDER BY updated_at, id LIMIT :limit"
).bindparams(bindparam("since", type_=_TIME))

_CONTACT = text(
    "SELECT email, name, stripe_customer_id, welcomed_at IS NOT NULL, unpaid_invoice_id, "
    "unpaid_invoice_url, dunned_invoice_id, marketing_opt_out, subscription_status, "
    "reengaged_at, discount_code, discount_at FROM customers WHERE id = :id"
)

# Access follows the subscription as the row holds it when the change is applied.
_SET_ACCESS = (
    "UPDATE customers SET dashboard_access = :value, updated_at = :now WHERE id = :id AND "
)
_ACCESS_PARAMS: tuple[BindParameter[Any], ...] = (
    bindparam("value", type_=Boolean()),
    bindparam("now", type_=_TIME),
    bindparam("withheld", expanding=True),
)
_GRANT = text(
    _SET_ACCESS + "(subscription_status IS NULL OR subscription_status NOT IN :withheld) "
    "RETURNING id"
).bindparams(*_ACCESS_PARAMS)
_REVOKE = text(_SET_ACCESS + "subscription_status IN :withheld RETURNING id").bindparams(
    *_ACCESS_PARAMS
)


@dataclass(frozen=True, slots=True)
class CustomerRow:
    """A row as the sensor reads it: no personal data."""

    id: str
    plan: str
    signed_up_at: datetime
    billing: bool
    welcomed: bool
    access: bool
    opted_out: bool
    subscription_status: str | None
    updated_at: datetime
    unpaid_invoice: str | None = None
    dunned_invoice: str | None = None
    last_active_at: datetime | None = None
    reengaged_at: datetime | None = None
    discount_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Contact:
    """What an actuator needs to reach one customer; never leaves the actuator."""

    email: str
    name: str | None
    stripe_customer_id: str | None
    welcomed: bool
    unpaid_invoice: str | None = None
    """The open invoice whose payment failed (its Stripe id)."""
    invoice_url: str | None = None
    """That invoice's hosted page, where the customer pays it."""
    dunned_invoice: str | None = None
    opted_out: bool = False
    subscription_status: str | None = None
    reengaged_at: datetime | None = None
    discount_code: str | None = None
    discount_at: datetime | None = None


def _maybe_utc(value: Any) -> datetime | None:
    return None if value is None else as_utc(value)


def as_utc(value: Any) -> datetime:
    """A timestamp column's value as an aware UTC datetime, from either backend."""
    # SQLite hands back naive text-parsed datetimes (stored in UTC); Postgres aware ones.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)  # noqa: S101 - the column's type
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def bind_time(value: datetime, engine: AsyncEngine) -> datetime:
    """``value`` as the engine stores timestamps: naive UTC on SQLite, aware elsewhere."""
    value = value.astimezone(UTC)
    return value.replace(tzinfo=None) if engine.dialect.name == "sqlite" else value


class CustomerTable:
    """The ``customers`` table over one async engine (disposed by `aclose` when owned)."""

    def __init__(self, engine: AsyncEngine, *, owns_engine: bool = False) -> None:
        self._engine = engine
        self._owns = owns_engine

    @classmethod
    def connect(cls, url: str) -> CustomerTable:
        return cls(async_engine(url), owns_engine=True)

    @property
    def engine(self) -> AsyncEngine:
        """The engine, for a writer that shares it (the product source's copies)."""
        return self._engine

    async def changed_since(
        self, since: datetime, *, after: str | None = None, limit: int
    ) -> list[CustomerRow]:
        """At most ``limit`` rows stamped after ``since`` (or at it, with an id after
        ``after``), in (updated_at, id) order."""
        params: dict[str, Any] = {"since": bind_time(since, self._engine), "limit": limit}
        if after is not None:
            params["after"] = after
        rows = await self._run(_SINCE if after is None else _AFTER, params, fetch=True)
        return [
            CustomerRow(
                id=str(r[0]),
                plan=str(r[1]),
                signed_up_at=as_utc(r[2]),
                billing=bool(r[3]),
                welcomed=bool(r[4]),
                access=bool(r[5]),
                opted_out=bool(r[6]),
                subscription_status=r[7],
                updated_at=as_utc(r[8]),
                unpaid_invoice=r[9],
                dunned_invoice=r[10],
                last_active_at=_maybe_utc(r[11]),
                reengaged_at=_maybe_utc(r[12]),
                discount_at=_maybe_utc(r[13]),
            )
            for r in rows
        ]

    async def contact(self, customer_id: str) -> Contact:
        rows = await self._run(_CONTACT, {"id": customer_id}, fetch=True)
        if not rows:
            raise ActuatorError(
                f"customer {customer_id} is not in the customers table",
                kind=ErrorKind.TERMINAL,
                code="NotFound",
            )
        (email, name, stripe_id, welcomed, unpaid, url, dunned) = rows[0][:7]
        opted_out, status, reengaged, code, discount = rows[0][7:]
        return Contact(
            str(email),
            name,
            stripe_id,
            bool(welcomed),
            unpaid,
            url,
            dunned,
            opted_out=bool(opted_out),
            subscription_status=status,
            reengaged_at=_maybe_utc(reengaged),
            discount_code=code,
            discount_at=_maybe_utc(discount),
        )

    async def set_stripe_customer(self, customer_id: str, stripe_id: str, now: datetime) -> None:
        await self._update(customer_id, "stripe_customer_id = :value", stripe_id, now)

    async def set_welcomed(self, customer_id: str, now: datetime) -> None:
        await self._update(customer_id, "welcomed_at = :value", bind_time(now, self._engine), now)

    async def set_discount(self, customer_id: str, code: str, now: datetime) -> None:
        statement = text(
            "UPDATE customers SET discount_code = :code, discount_at = :now, updated_at = :now "
            "WHERE id = :id"
        ).bindparams(bindparam("now", type_=_TIME))
        await self._run(
            statement, {"code": code, "now": bind_time(now, self._engine), "id": customer_id}
        )

    async def set_reengaged(self, customer_id: str, now: datetime) -> None:
        await self._update(customer_id, "reengaged_at = :value", bind_time(now, self._engine), now)

    async def opt_out(self, customer_id: str, now: datetime) -> bool:
        """Record a refusal of marketing email; False when there is no such customer."""
        statement = text(
            "UPDATE customers SET marketing_opt_out = :value, updated_at = :now "
            "WHERE id = :id AND NOT marketing_opt_out RETURNING id"
        ).bindparams(bindparam("value", type_=Boolean()), bindparam("now", type_=_TIME))
        params = {"value": True, "now": bind_time(now, self._engine), "id": customer_id}
        if await self._run(statement, params, fetch=True):
            return True
        known = await self._run(_CONTACT, {"id": customer_id}, fetch=True)
        return bool(known)

    async def set_dunned(self, customer_id: str, invoice_id: str, now: datetime) -> None:
        await self._update(customer_id, "dunned_invoice_id = :value", invoice_id, now)

    async def set_access(self, customer_id: str, allowed: bool, now: datetime) -> bool:
        """Grant (or revoke) access unless the row's subscription status, as it is now,
        says otherwise; False when it does (a renewal or a cancellation since observe).

        Raises a terminal ``NotFound`` when the row is gone (deleted since it was observed).
        """
        statement = _GRANT if allowed else _REVOKE
        params = {
            "value": allowed,
            "now": bind_time(now, self._engine),
            "id": customer_id,
            "withheld": sorted(WITHHOLD_ACCESS),
        }
        if await self._run(statement, params, fetch=True):
            return True
        if await self._run(_CONTACT, {"id": customer_id}, fetch=True):
            return False
        raise ActuatorError(
            f"customer {customer_id} is not in the customers table",
            kind=ErrorKind.TERMINAL,
            code="NotFound",
        )

    async def _update(
        self, customer_id: str, assignment: str, value: object, now: datetime
    ) -> None:
        statement = text(
            f"UPDATE customers SET {assignment}, updated_at = :now WHERE id = :id"  # noqa: S608 - the assignment is one of ours, never input
        ).bindparams(bindparam("now", type_=_TIME))
        if isinstance(value, datetime):
            statement = statement.bindparams(bindparam("value", type_=_TIME))
        await self._run(
            statement, {"value": value, "now": bind_time(now, self._engine), "id": customer_id}
        )

    async def _run(
        self, statement: Any, params: dict[str, Any], *, fetch: bool = False
    ) -> Sequence[Any]:
        try:
            async with self._engine.begin() as connection:
                result = await connection.execute(statement, params)
                return result.all() if fetch else ()
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            raise ActuatorError(f"customers: {type(cause).__name__}: {cause}") from exc

    async def aclose(self) -> None:
        if self._owns:
            await self._engine.dispose()
