"""What Stripe's webhooks change in the database: ``stripe_events`` and the billing columns.

Plain SQL, like `CustomerTable`, because actuators may not import the store
that defines the tables (`jarvis.store.customers`). Used by the webhook
receiver (`jarvis.actuators.customers.webhooks`) alone.

Each delivery is one transaction: the Stripe event id goes into
``stripe_events`` (its primary key, so a replay, even a concurrent one, finds
it there and changes nothing) together with the change to the customer's row.
The change is conditional on the row's stamp for that object
(``subscription_event_at``, ``invoice_event_at``: the ``created`` second of
the newest event applied), so an older event delivered late cannot undo a
newer one; a change read back from Stripe's API (``reread``) is current by
definition and applies whatever the stamp, which then keeps the newer of the two.
A subscription that is not live (not ``active``, ``trialing`` or
``past_due``: ``incomplete``, ``incomplete_expired``, ``canceled``, ``unpaid``,
``paused``) changes the row only when it is the row's subscription (or the row
has none yet): the late ``deleted`` of a subscription the customer replaced, a
checkout whose card was declined, or its expiry, leave the row's as it is
(``stale``), so a cancelled customer gets no access back before paying.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, bindparam, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from jarvis.actuators.base import ActuatorError

__all__ = ["BillingLedger", "Delivery", "InvoiceChange", "Stamps", "SubscriptionChange"]

_TIME = DateTime(timezone=True)
_FORCE = bindparam("force", type_=Boolean())
_LIVE = frozenset({"active", "trialing", "past_due"})
"""Subscription statuses that give the customer a subscription (Stripe's, while it collects)."""


# Each change applies only over an older stamp (or ``force``: read back from the API),
# and leaves the newer stamp of the two. Every SET expression reads the row as it was.
# A subscription that is not live replaces the row's only when it is that one (or there is none).
_SUBSCRIPTION = text(
    "UPDATE customers SET stripe_subscription_id = :object, subscription_status = :status, "
    "plan = COALESCE(:plan, plan), subscription_event_at = CASE WHEN subscription_event_at "
    "> :created THEN subscription_event_at ELSE :created END, updated_at = :now "
    "WHERE id = :id AND (:force OR subscription_event_at IS NULL "
    "OR subscription_event_at < :created) AND (:live OR stripe_subscription_id IS NULL "
    "OR stripe_subscription_id = :object)"
).bindparams(_FORCE, bindparam("live", type_=Boolean()), bindparam("now", type_=_TIME))
_INVOICE_FAILED = text(
    "UPDATE customers SET unpaid_invoice_id = :object, unpaid_invoice_url = :url, "
    "invoice_event_at = CASE WHEN invoice_event_at > :created THEN invoice_event_at "
    "ELSE :created END, updated_at = :now "
    "WHERE id = :id AND (:force OR invoice_event_at IS NULL OR invoice_event_at < :created)"
).bindparams(_FORCE, bindparam("now", type_=_TIME))
_INVOICE_SETTLED = text(
    "UPDATE customers SET "
    "unpaid_invoice_url = CASE WHEN unpaid_invoice_id = :object THEN NULL "
    "ELSE unpaid_invoice_url END, "
    "unpaid_invoice_id = CASE WHEN unpaid_invoice_id = :object THEN NULL "
    "ELSE unpaid_invoice_id END, "
    "invoice_event_at = CASE WHEN invoice_event_at > :created THEN invoice_event_at "
    "ELSE :created END, updated_at = :now "
    "WHERE id = :id AND (:force OR invoice_event_at IS NULL OR invoice_event_at < :created)"
).bindparams(_FORCE, bindparam("now", type_=_TIME))
_RECORD = text(
    "INSERT INTO stripe_events (id, type, created, received_at, customer_id, outcome) "
    "VALUES (:id, :type, :created, :received_at, :customer_id, :outcome)"
).bindparams(bindparam("received_at", type_=_TIME))


@dataclass(frozen=True, slots=True)
class Delivery:
    """One verified Stripe event: its id, type and ``created`` second."""

    id: str
    type: str
    created: int


@dataclass(frozen=True, slots=True)
class Stamps:
    """The ``created`` second of the newest subscription and invoice events applied."""

    subscription: int | None
    invoice: int | None


@dataclass(frozen=True, slots=True)
class SubscriptionChange:
    subscription_id: str
    status: str
    plan: str | None
    reread: bool = False


@dataclass(frozen=True, slots=True)
class InvoiceChange:
    invoice_id: str
    failed: bool
    """The payment failed and the invoice is open; False: it is paid (or otherwise settled)."""
    url: str | None = None
    reread: bool = False


class BillingLedger:
    """``stripe_events`` and the customers' billing columns over one async engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def seen(self, event_id: str) -> bool:
        rows = await self._run("SELECT 1 FROM stripe_events WHERE id = :id", {"id": event_id})
        return bool(rows)

    async def customer_by_stripe_id(self, stripe_id: str) -> str | None:
        rows = await self._run(
            "SELECT id FROM customers WHERE stripe_customer_id = :s ORDER BY id LIMIT 1",
            {"s": stripe_id},
        )
        return str(rows[0][0]) if rows else None

    async def stamps(self, customer_id: str) -> Stamps | None:
        """The customer's stamps; None when there is no such customer."""
        rows = await self._run(
            "SELECT subscription_event_at, invoice_event_at FROM customers WHERE id = :id",
            {"id": customer_id},
        )
        return Stamps(rows[0][0], rows[0][1]) if rows else None

    async def record(
        self,
        delivery: Delivery,
        *,
        customer_id: str | None,
        change: SubscriptionChange | InvoiceChange | None,
        outcome: str,
        now: datetime,
    ) -> str:
        """Record the delivery and apply its change in one transaction; the outcome.

        ``replayed`` when the event id was recorded meanwhile (nothing changes),
        ``stale`` when the row holds a newer event for the object.
        """
        stamp = now.astimezone(UTC)
        if self._engine.dialect.name == "sqlite":
            # As `CustomerTable` writes it: SQLite compares the text of naive UTC stamps.
            stamp = stamp.replace(tzinfo=None)
        try:
            async with self._engine.begin() as connection:
                if change is not None and customer_id is not None:
                    statement, params = _change(change, customer_id, delivery.created, stamp)
                    result = await connection.execute(statement, params)
                    outcome = outcome if result.rowcount > 0 else "stale"
                await connection.execute(
                    _RECORD,
                    {
                        "id": delivery.id,
                        "type": delivery.type,
                        "created": delivery.created,
                        "received_at": stamp,
                        "customer_id": customer_id,
                        "outcome": outcome,
                    },
                )
        except IntegrityError:
            return "replayed"
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            raise ActuatorError(f"stripe_events: {type(cause).__name__}") from exc
        return outcome

    async def _run(self, sql: str, params: dict[str, Any]) -> list[Any]:
        try:
            async with self._engine.connect() as connection:
                return list((await connection.execute(text(sql), params)).all())
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            raise ActuatorError(f"customers: {type(cause).__name__}") from exc


def _change(
    change: SubscriptionChange | InvoiceChange, customer_id: str, created: int, now: datetime
) -> tuple[Any, dict[str, Any]]:
    params: dict[str, Any] = {
        "id": customer_id,
        "created": created,
        "force": change.reread,
        "now": now,
    }
    if isinstance(change, SubscriptionChange):
        params |= {
            "object": change.subscription_id,
            "status": change.status,
            "plan": change.plan,
            "live": change.status in _LIVE,
        }
        return _SUBSCRIPTION, params
    params["object"] = change.invoice_id
    if change.failed:
        return _INVOICE_FAILED, params | {"url": change.url}
    return _INVOICE_SETTLED, params
