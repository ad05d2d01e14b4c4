"""The ``stripe`` provider: creates a customer's Stripe customer through the official library.

Built by the provider registry from ``[customers.stripe]``, with the secret key
read from the environment (never a setting). The blocking `stripe.StripeClient`
runs in worker threads behind a capacity limiter; tests point its API base at
a loopback stand-in that speaks Stripe's wire format (tests/billing).

Once per customer, three ways over: the customer's row already holding a
Stripe id answers "already applied"; a Stripe customer found by the search API
under ``metadata['jarvis_customer_id']`` (made by an attempt whose write-back
was lost) is adopted, not duplicated; and the create itself carries the
action's key as Stripe's ``Idempotency-Key``, so a retry of one attempt that
Stripe already served returns the same customer. Stripe's search index lags
writes by up to about a minute, so two attempts a few seconds apart whose
write-back both failed could still make two (not handled).
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import stripe

from jarvis.actuators.base import ActuatorError, Scope, run_blocking
from jarvis.actuators.customers.table import Contact, CustomerTable
from jarvis.model import (
    CUSTOMER_SCHEME,
    Action,
    Clock,
    CreateBillingCustomer,
    ErrorKind,
    Outcome,
    ResourceState,
)

__all__ = [
    "METADATA_KEY",
    "TEMPORARY",
    "StripeActuator",
    "StripeBilling",
    "describe",
    "stripe_client",
]

METADATA_KEY = "jarvis_customer_id"
"""The Stripe customer's metadata key that names the Jarvis customer it belongs to."""

TEMPORARY = (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError)
"""Stripe errors worth retrying; every other `stripe.StripeError` is terminal."""


def stripe_client(*, api_key: str, api_base: str, timeout: float) -> stripe.StripeClient:
    """The one client of the ``stripe`` provider: no retries of its own (the loop retries)."""
    http = stripe.RequestsClient(timeout=timeout)
    return stripe.StripeClient(
        api_key, base_addresses={"api": api_base}, max_network_retries=0, http_client=http
    )


def _search_query(customer_id: str) -> str:
    escaped = customer_id.replace("\\", "\\\\").replace("'", "\\'")
    return f"metadata['{METADATA_KEY}']:'{escaped}'"


class StripeActuator:
    """What the ``stripe`` provider's actuators share: the client, the customers table,
    a limit of 4 blocking calls at once, and nothing to observe of their own."""

    def __init__(self, client: stripe.StripeClient, table: CustomerTable, *, clock: Clock) -> None:
        self._client = client
        self._table = table
        self._clock = clock
        self._limiter = anyio.CapacityLimiter(4)

    @property
    def provider(self) -> str:
        return CUSTOMER_SCHEME

    async def observe(self, _scope: Scope | None = None) -> Sequence[ResourceState]:
        return []


class StripeBilling(StripeActuator):
    """Applies ``create_billing_customer`` on ``customer://ID``."""

    @property
    def name(self) -> str:
        return "stripe"

    @property
    def action_kinds(self) -> frozenset[str]:
        return frozenset({CreateBillingCustomer.kind})

    async def apply(self, action: Action, key: str) -> Outcome:
        if not isinstance(action.params, CreateBillingCustomer):
            return Outcome.failure(f"stripe cannot apply {action.kind}", kind=ErrorKind.TERMINAL)
        customer_id = action.target.name
        try:
            contact = await self._table.contact(customer_id)
            if contact.stripe_customer_id:
                return Outcome.success(f"already applied: {contact.stripe_customer_id}")
            stripe_id, made = await run_blocking(
                lambda: self._find_or_create(customer_id, contact, key), self._limiter
            )
            await self._table.set_stripe_customer(customer_id, stripe_id, self._clock.now())
        except ActuatorError as exc:
            return exc.outcome()
        return Outcome.success(f"{'created' if made else 'adopted'} {stripe_id}")

    def _find_or_create(self, customer_id: str, contact: Contact, key: str) -> tuple[str, bool]:
        customers = self._client.v1.customers
        try:
            found = customers.search(params={"query": _search_query(customer_id), "limit": 1})
            if found.data:
                return found.data[0].id, False
            made = customers.create(
                params={
                    "email": contact.email,
                    **({"name": contact.name} if contact.name else {}),
                    "metadata": {METADATA_KEY: customer_id},
                },
                options={"idempotency_key": key},
            )
        except TEMPORARY as exc:
            raise ActuatorError(describe(exc), code=exc.code or type(exc).__name__) from None
        except stripe.StripeError as exc:
            raise ActuatorError(
                describe(exc), kind=ErrorKind.TERMINAL, code=exc.code or type(exc).__name__
            ) from None
        return made.id, True

    async def aclose(self) -> None:
        await self._table.aclose()


def describe(exc: stripe.StripeError) -> str:
    # The user message only: the library's str() may include the request id, never the key.
    return f"stripe {type(exc).__name__} ({exc.http_status}): {exc.user_message or 'no message'}"
