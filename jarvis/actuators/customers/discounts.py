"""The ``stripe`` provider's ``create_discount``: a one-time promotion code for one customer.

Built by the provider registry beside `StripeBilling`, on the same client. A
discount is two Stripe objects: a coupon (``percent_off``, ``duration=once``,
``max_redemptions=1``) and a promotion code for it restricted to the
customer's Stripe customer (``customer``), redeemable once
(``max_redemptions=1``) until ``expires_at``. The code is written to the
customer's row (``discount_code``, ``discount_at``), where the ``win_back``
email reads it; it never goes into an event.

Once per win-back, three ways over, as for the Stripe customer: a row already
holding a fresh discount (made after the last win-back, not yet expired)
answers "already applied"; the code is derived from the customer and the row's
last win-back and discount stamps, so an attempt whose write-back was lost is
found by listing the customer's promotion codes with that code and adopted;
and both creates carry Idempotency-Keys from the action's key (the promotion
code the key itself, the coupon the key with ``-coupon``), so a replay of one
attempt returns the same objects. A coupon made by an attempt that failed
before its promotion code is left unused (harmless: nobody can redeem a coupon
without a code).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import stripe

from jarvis.actuators.base import ActuatorError, run_blocking
from jarvis.actuators.customers.stripe_billing import (
    METADATA_KEY,
    TEMPORARY,
    StripeActuator,
    describe,
)
from jarvis.actuators.customers.table import Contact
from jarvis.model import (
    Action,
    CreateDiscount,
    ErrorKind,
    Outcome,
)

__all__ = ["StripeDiscounts", "discount_code", "fresh_discount"]


@dataclass(frozen=True, slots=True)
class _Offer:
    """One discount to make in Stripe: whose, which code, how much, until when."""

    customer_id: str
    stripe_id: str
    code: str
    params: CreateDiscount
    expires: int


def discount_code(customer_id: str, contact: Contact) -> str:
    """The code for the customer's next discount: the same for every attempt of one win-back."""
    seed = "\0".join(
        [
            customer_id,
            contact.reengaged_at.isoformat() if contact.reengaged_at else "",
            contact.discount_at.isoformat() if contact.discount_at else "",
        ]
    )
    return "BACK-" + hashlib.sha256(seed.encode()).hexdigest()[:12].upper()


def fresh_discount(contact: Contact, now: datetime, valid: timedelta) -> bool:
    """Whether the row holds a discount made since the last win-back that can still be redeemed."""
    made = contact.discount_at
    if made is None or contact.discount_code is None:
        return False
    after_last = contact.reengaged_at is None or made > contact.reengaged_at
    return after_last and now - made < valid


class StripeDiscounts(StripeActuator):
    """Applies ``create_discount`` on ``customer://ID``."""

    @property
    def name(self) -> str:
        return "stripe-discounts"

    @property
    def action_kinds(self) -> frozenset[str]:
        return frozenset({CreateDiscount.kind})

    async def apply(self, action: Action, key: str) -> Outcome:
        params = action.params
        if not isinstance(params, CreateDiscount):
            return Outcome.failure(f"stripe cannot apply {action.kind}", kind=ErrorKind.TERMINAL)
        customer_id = action.target.name
        now = self._clock.now()
        try:
            contact = await self._table.contact(customer_id)
            if fresh_discount(contact, now, timedelta(days=params.valid_days)):
                return Outcome.success("already applied: a discount is on offer")
            if not contact.stripe_customer_id:
                return Outcome.failure(
                    f"customer {customer_id} has no Stripe customer",
                    kind=ErrorKind.TERMINAL,
                    code="NoBillingCustomer",
                )
            # Whole days, so a replay of the key on another attempt sends the same parameters.
            day = now.replace(hour=0, minute=0, second=0, microsecond=0)
            offer = _Offer(
                customer_id=customer_id,
                stripe_id=contact.stripe_customer_id,
                code=discount_code(customer_id, contact),
                params=params,
                expires=int((day + timedelta(days=params.valid_days + 1)).timestamp()),
            )
            made = await run_blocking(lambda: self._find_or_create(offer, key), self._limiter)
            await self._table.set_discount(customer_id, offer.code, now)
        except ActuatorError as exc:
            return exc.outcome()
        return Outcome.success(f"{'created' if made else 'adopted'} {params.percent_off}% discount")

    def _find_or_create(self, offer: _Offer, key: str) -> bool:
        v1 = self._client.v1
        params, code, stripe_id = offer.params, offer.code, offer.stripe_id
        metadata = {METADATA_KEY: offer.customer_id}
        try:
            found = v1.promotion_codes.list(
                params={"code": code, "customer": stripe_id, "limit": 1}
            )
            if found.data:
                return False
            coupon = v1.coupons.create(
                params={
                    "percent_off": float(params.percent_off),
                    "duration": "once",
                    "max_redemptions": 1,
                    "name": f"Welcome back: {params.percent_off}% off",
                    "metadata": metadata,
                },
                options={"idempotency_key": f"{key}-coupon"},
            )
            v1.promotion_codes.create(
                params={
                    "promotion": {"type": "coupon", "coupon": coupon.id},
                    "code": code,
                    "customer": stripe_id,
                    "max_redemptions": 1,
                    "expires_at": offer.expires,
                    "metadata": metadata,
                },
                options={"idempotency_key": key},
            )
        except TEMPORARY as exc:
            raise ActuatorError(describe(exc), code=exc.code or type(exc).__name__) from None
        except stripe.StripeError as exc:
            raise ActuatorError(
                describe(exc), kind=ErrorKind.TERMINAL, code=exc.code or type(exc).__name__
            ) from None
        return True

    async def aclose(self) -> None:
        await self._table.aclose()
