"""Stripe's webhooks, received: verified, de-duplicated, put in order, written to the table.

Called by the daemon's ``POST /webhooks/stripe`` (through `jarvis.loop.billing`,
which records the ``billing.*`` event and wakes the loop); it only records.
What to do about a failed payment or a cancelled subscription is the dunning
policy's call on the next tick (`jarvis.policies.dunning`).

- **Signature**: ``Stripe-Signature`` is checked by the official library
  (`stripe.WebhookSignature.verify_header`) against the endpoint secret with
  Stripe's default tolerance of 300 s; a missing, wrong or stale signature is
  a 400 and nothing is read or written.
- **Once**: the event id is the primary key of ``stripe_events``; a replay is
  answered 200 and changes nothing (`BillingLedger`).
- **Order**: Stripe does not deliver in order. The row keeps, per object, the
  ``created`` second of the newest event applied; an event at or before it
  is in doubt (older, or the same second, whose order cannot be told), and the
  object is read back from Stripe's API and its current state applied instead.
- **Whose**: the Stripe customer is the row whose ``stripe_customer_id`` it
  is; failing that, the object's or the Stripe customer's metadata
  ``jarvis_customer_id`` (onboarding sets it), read from the API.
- Handled: ``customer.subscription.created/updated/deleted`` (plan from the
  first item's price ``lookup_key``, else the price id; status; a deleted
  subscription is ``canceled``), ``invoice.payment_failed`` and
  ``invoice.paid``. Any other type is recorded as ``ignored`` and answered 200.
  One live subscription per customer is assumed: one that is not live (not
  ``active``, ``trialing`` or ``past_due``) changes the row only when it is the
  row's own (`BillingLedger`), else it is ``stale``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import anyio
import stripe

from jarvis.actuators.base import ActuatorError, run_blocking
from jarvis.actuators.customers.billing import (
    BillingLedger,
    Delivery,
    InvoiceChange,
    SubscriptionChange,
)
from jarvis.actuators.customers.stripe_billing import METADATA_KEY
from jarvis.model import Clock

__all__ = ["HANDLED", "Receipt", "StripeReadError", "StripeWebhooks"]

SUBSCRIPTION_EVENTS = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    }
)
INVOICE_EVENTS = frozenset({"invoice.paid", "invoice.payment_failed"})
HANDLED = SUBSCRIPTION_EVENTS | INVOICE_EVENTS
_NOT_FOUND = 404
_SETTLED = frozenset({"paid", "void", "uncollectible"})
"""Invoice statuses that leave nothing to pay (a re-read invoice in one of them clears dunning)."""
_CREATED = range(-(2**63), 2**63)
"""The ``created`` seconds the BIGINT columns hold; any other is no event of Stripe's."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """What became of one delivery: the HTTP status and, once verified, what it was."""

    status: int
    outcome: str
    """``applied``, ``replayed``, ``stale``, ``ignored``, ``unknown_customer``, or why refused."""
    event_id: str | None = None
    event_type: str | None = None
    customer_id: str | None = None
    """The Jarvis customer (never the Stripe customer's e-mail or name)."""
    state: str | None = None
    """The subscription status, or ``payment_failed`` / ``paid`` for an invoice."""
    reread: bool = False


class StripeReadError(ActuatorError):
    """Stripe's API did not answer a read-back, or refused it: its error class and status,
    never a body or a secret."""


class StripeWebhooks:
    """Receives one delivery at a time; safe to call concurrently (the table arbitrates)."""

    def __init__(
        self,
        client: stripe.StripeClient,
        ledger: BillingLedger,
        *,
        secret: str,
        clock: Clock,
        tolerance: int = stripe.Webhook.DEFAULT_TOLERANCE,
    ) -> None:
        self._client = client
        self._ledger = ledger
        self._secret = secret
        self._clock = clock
        self._tolerance = tolerance
        self._limiter = anyio.CapacityLimiter(4)

    async def receive(self, body: bytes, signature: str | None) -> Receipt:
        """Verify, then record. A table that fails raises its `ActuatorError` (or, not
        connecting, the driver's `OSError`) and Stripe's API `StripeReadError`: the
        caller answers 503 and Stripe delivers again later."""
        # Stripe's header is ASCII; the library compares with compare_digest on str,
        # which raises TypeError for a non-ASCII signature instead of refusing it.
        if signature is not None and not signature.isascii():
            return Receipt(400, "bad_signature")
        try:
            stripe.WebhookSignature.verify_header(body, signature, self._secret, self._tolerance)
        except (stripe.SignatureVerificationError, UnicodeDecodeError):
            return Receipt(400, "bad_signature")
        parsed = _parse(body)
        if parsed is None:
            return Receipt(400, "bad_payload")
        delivery, obj = parsed
        return await self._record(delivery, obj)

    async def _record(self, delivery: Delivery, obj: dict[str, Any]) -> Receipt:
        receipt = Receipt(200, "replayed", delivery.id, delivery.type)
        if await self._ledger.seen(delivery.id):
            return receipt
        now = self._clock.now()
        if delivery.type not in HANDLED:
            outcome = await self._ledger.record(
                delivery, customer_id=None, change=None, outcome="ignored", now=now
            )
            return Receipt(200, outcome, delivery.id, delivery.type)
        customer_id = await self._whose(obj)
        stamps = None if customer_id is None else await self._ledger.stamps(customer_id)
        if customer_id is None or stamps is None:
            outcome = await self._ledger.record(
                delivery, customer_id=None, change=None, outcome="unknown_customer", now=now
            )
            return Receipt(200, outcome, delivery.id, delivery.type)
        invoice = delivery.type in INVOICE_EVENTS
        stamp = stamps.invoice if invoice else stamps.subscription
        doubt = stamp is not None and delivery.created <= stamp
        change: SubscriptionChange | InvoiceChange | None = None
        current = await self._read(delivery.type, str(obj["id"])) if doubt else obj
        if current is not None:
            change = (
                _invoice(delivery.type, current, doubt)
                if invoice
                else _subscription(current, doubt)
            )
        # Nothing to read back (an object Stripe no longer has): the event is stale.
        outcome = "applied" if change is not None else "stale" if current is None else "ignored"
        outcome = await self._ledger.record(
            delivery, customer_id=customer_id, change=change, outcome=outcome, now=now
        )
        state = None
        if isinstance(change, SubscriptionChange):
            state = change.status
        elif isinstance(change, InvoiceChange):
            state = "payment_failed" if change.failed else "paid"
        return Receipt(200, outcome, delivery.id, delivery.type, customer_id, state, doubt)

    async def _whose(self, obj: dict[str, Any]) -> str | None:
        """The Jarvis customer an object belongs to, or None when it is not one of ours."""
        stripe_id = obj.get("customer")
        if isinstance(stripe_id, dict):
            stripe_id = stripe_id.get("id")
        if isinstance(stripe_id, str):
            found = await self._ledger.customer_by_stripe_id(stripe_id)
            if found is not None:
                return found
        named = _metadata(obj)
        if named is None and isinstance(stripe_id, str):
            found_in_stripe = await self._call(
                lambda: self._client.v1.customers.retrieve(stripe_id)
            )
            named = None if found_in_stripe is None else _metadata(found_in_stripe)
        return named

    async def _read(self, event_type: str, object_id: str) -> dict[str, Any] | None:
        """The object as Stripe holds it now; None when Stripe has none by that id."""
        if event_type in INVOICE_EVENTS:
            return await self._call(lambda: self._client.v1.invoices.retrieve(object_id))
        return await self._call(lambda: self._client.v1.subscriptions.retrieve(object_id))

    async def _call(self, call: Any) -> dict[str, Any] | None:
        """The object the call reads; None when Stripe has no such object (404)."""

        def blocking() -> dict[str, Any] | None:
            try:
                answer: dict[str, Any] = call().to_dict()
            except stripe.StripeError as exc:
                if isinstance(exc, stripe.InvalidRequestError) and exc.http_status == _NOT_FOUND:
                    return None
                raise StripeReadError(f"stripe {type(exc).__name__} ({exc.http_status})") from None
            return answer

        return await run_blocking(blocking, self._limiter)


def _parse(body: bytes) -> tuple[Delivery, dict[str, Any]] | None:
    """The event's id, type, created second and object; None for anything else."""
    try:
        event = json.loads(body)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    event_id, kind, created = event.get("id"), event.get("type"), event.get("created")
    if not (isinstance(event_id, str) and isinstance(kind, str) and isinstance(obj, dict)):
        return None
    if (
        not isinstance(created, int)
        or isinstance(created, bool)
        or created not in _CREATED
        or not isinstance(obj.get("id"), str)
    ):
        return None
    return Delivery(event_id[:255], kind[:255], created), obj


def _metadata(obj: dict[str, Any]) -> str | None:
    metadata = obj.get("metadata")
    value = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    return value if isinstance(value, str) and value else None


def _subscription(obj: dict[str, Any], reread: bool) -> SubscriptionChange | None:
    status = obj.get("status")
    if not isinstance(status, str):
        return None
    return SubscriptionChange(str(obj["id"]), status, _plan(obj), reread)


def _plan(subscription: dict[str, Any]) -> str | None:
    """The plan's name: the first item's price ``lookup_key``, else its id; None: unchanged."""
    items = subscription.get("items")
    data = items.get("data") if isinstance(items, dict) else None
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        return None
    price = data[0].get("price")
    if not isinstance(price, dict):
        return None
    name = price.get("lookup_key") or price.get("id")
    return name if isinstance(name, str) else None


def _invoice(event_type: str, obj: dict[str, Any], reread: bool) -> InvoiceChange | None:
    """What the invoice says: failed and still open, settled, or (None) nothing to change."""
    invoice_id, status = str(obj["id"]), obj.get("status")
    if not isinstance(status, str):
        # A list or an object would not even compare with the statuses below.
        return None
    url = obj.get("hosted_invoice_url")
    url = url if isinstance(url, str) else None
    if status in _SETTLED:
        return InvoiceChange(invoice_id, failed=False, reread=reread)
    failed = event_type == "invoice.payment_failed" or (reread and bool(obj.get("attempt_count")))
    if status == "open" and failed:
        return InvoiceChange(invoice_id, failed=True, url=url, reread=reread)
    return None
