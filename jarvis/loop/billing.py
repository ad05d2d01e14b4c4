"""Stripe's webhook, wired to the loop: record what changed, then wake the scheduler.

The daemon's HTTP server (`jarvis.telemetry.http`, ``POST /webhooks/stripe``)
hands each delivery here; the receiver (`jarvis.actuators.customers.webhooks`)
verifies it and writes the customer's billing columns. A delivery that changed
a customer becomes one ``billing.subscription`` or ``billing.invoice`` event,
by customer id and Stripe event id (no address, no name, no invoice link), and
wakes the loop, whose next tick reads the row and lets the policies decide.
Nothing is decided here. A delivery the table or Stripe's API could not take is
an outage (`BillingWebhook.outage`, in one line naming the database as the store
names its own): the server answers 503 and Stripe delivers it again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

import structlog

from jarvis.actuators.customers.webhooks import StripeReadError
from jarvis.model import CUSTOMER_SCHEME, Clock, Event, EventKind
from jarvis.store.engine import database_outage

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from jarvis.actuators.customers.webhooks import Receipt
    from jarvis.store import EventStore

__all__ = ["BillingWebhook", "billing_event"]

log = structlog.get_logger("jarvis.webhooks")


class Receiver(Protocol):
    async def receive(self, body: bytes, signature: str | None) -> Receipt: ...


class BillingWebhook:
    """The HTTP server's `WebhookBackend` for Stripe; ``database`` is where the receiver's
    table is (the store's URL, or ``customers.database_url``)."""

    def __init__(
        self,
        receiver: Receiver,
        store: EventStore,
        *,
        clock: Clock,
        wake: Callable[[], None],
        database: URL,
        close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._receiver = receiver
        self._store = store
        self._clock = clock
        self._wake = wake
        self._database = database
        self._close = close

    def outage(self, exc: BaseException) -> str | None:
        """Stripe's API, or the table's database, failing in one line (the database named
        as `jarvis.store.EventStore.explain` names the store's); None for anything else."""
        if isinstance(exc, StripeReadError):
            return str(exc)
        return database_outage(self._database, exc)

    async def receive(self, body: bytes, signature: str | None) -> tuple[int, dict[str, object]]:
        receipt = await self._receiver.receive(body, signature)
        answer: dict[str, object] = {"outcome": receipt.outcome}
        if receipt.status >= 400:
            answer["error"] = receipt.outcome.replace("_", " ")
            return receipt.status, answer
        answer["event"] = receipt.event_id
        event = billing_event(receipt, self._clock)
        if event is not None:
            self._store.append([event])
            await self._store.flush()
            self._wake()
        return receipt.status, answer

    async def aclose(self) -> None:
        if self._close is not None:
            await self._close()


def billing_event(receipt: Receipt, clock: Clock) -> Event | None:
    """The event a delivery that changed a customer makes; None for one that changed nothing."""
    if receipt.outcome != "applied" or receipt.customer_id is None or receipt.event_type is None:
        return None
    invoice = receipt.event_type.startswith("invoice.")
    return Event(
        kind=EventKind.BILLING_INVOICE if invoice else EventKind.BILLING_SUBSCRIPTION,
        ts=clock.now(),
        idempotency_key=f"stripe:{receipt.event_id}",
        resource=f"{CUSTOMER_SCHEME}://{receipt.customer_id}",
        reason=f"{receipt.event_type}: {receipt.state}",
        payload={
            "stripe_event": receipt.event_id,
            "type": receipt.event_type,
            "state": receipt.state,
            "reread": receipt.reread,
        },
    )
