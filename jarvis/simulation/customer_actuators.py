"""The simulated customers' actuators: the sensor, Stripe and the mailer, over the world.

Built by the harness (`jarvis.simulation.harness`) in place of the ``access``,
``stripe`` and ``email`` providers of the registry, with the same names,
scheme and action kinds, so the composition root routes the onboarding,
dunning and churn policies' actions to them exactly as it would to the real
ones. Every apply goes through the simulated provider's API
(`SimulatedProvider.call`): its faults strike customers too, and its witness
log orders each Stripe call and each message against the operator's
kill-switch flips. Like the real actuators (`jarvis.actuators.customers`),
each reads the world's row when applying and answers "already applied" (or
"not sent") when the row says the step is done or no longer due, and Stripe
receives the action's idempotency key, which the simulated Stripe records
with the call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from jarvis.actuators.base import Scope
from jarvis.model import (
    CUSTOMER_SCHEME,
    Action,
    Clock,
    CreateBillingCustomer,
    CreateDiscount,
    ErrorKind,
    GrantAccess,
    Outcome,
    ResourceState,
    RevokeAccess,
    SendEmail,
)
from jarvis.simulation.customer_scenario import Row
from jarvis.simulation.customers import SimulatedCustomers
from jarvis.simulation.provider import SimulatedProvider

__all__ = ["customer_actuators"]

CANCELLED = frozenset({"canceled", "incomplete_expired"})
"""As the real mailer: no win-back to a customer who has left."""


class _Base:
    provider = CUSTOMER_SCHEME
    in_process = True

    def __init__(self, world: SimulatedCustomers, clock: Clock, api: SimulatedProvider) -> None:
        self._world = world
        self._clock = clock
        self._api = api

    async def observe(self, _scope: Scope | None = None) -> Sequence[ResourceState]:
        return []

    async def aclose(self) -> None:
        """Nothing to release: the world lives in memory."""

    async def _call(self, action: Action, key: str, do: Callable[[], str]) -> Outcome:
        return await self._api.call(action, key, lambda _: Outcome.success(do()))


class SimulatedCustomersSensor(_Base):
    """``customer://ID`` from the world's table; applies ``grant_access`` and ``revoke_access``."""

    name = "customers"
    action_kinds = frozenset({GrantAccess.kind, RevokeAccess.kind})

    async def observe(self, _scope: Scope | None = None) -> Sequence[ResourceState]:
        now = self._clock.now()
        self._world.advance(now)
        return self._world.states(now)

    async def apply(self, action: Action, key: str) -> Outcome:
        customer, granted = action.target.name, isinstance(action.params, GrantAccess)
        if customer not in self._world.rows:
            return Outcome.failure(f"no customer {customer}", kind=ErrorKind.TERMINAL)

        def write() -> str:
            self._world.set_access(customer, granted, self._clock.now())
            return f"dashboard access {'granted' if granted else 'revoked'}"

        return await self._call(action, key, write)


class SimulatedStripe(_Base):
    """Applies ``create_billing_customer`` and ``create_discount``, each with its key."""

    name = "stripe"
    action_kinds = frozenset({CreateBillingCustomer.kind, CreateDiscount.kind})

    async def apply(self, action: Action, key: str) -> Outcome:
        customer, params = action.target.name, action.params
        row = self._world.rows.get(customer)
        if row is None:
            return Outcome.failure(f"no customer {customer}", kind=ErrorKind.TERMINAL)
        world, clock = self._world, self._clock
        if isinstance(params, CreateDiscount):
            if _fresh_discount(row, clock.now(), timedelta(days=params.valid_days)):
                return Outcome.success("already applied: a discount is on offer")
            if row.stripe_id is None:
                return Outcome.failure(
                    f"customer {customer} has no Stripe customer", kind=ErrorKind.TERMINAL
                )
            return await self._call(
                action, key, lambda: f"created {world.create_discount(customer, key, clock.now())}"
            )
        if row.stripe_id is not None:
            return Outcome.success(f"already applied: {row.stripe_id}")
        return await self._call(
            action,
            key,
            lambda: f"created {world.create_billing_customer(customer, key, clock.now())}",
        )


class SimulatedMailer(_Base):
    """Applies ``send_email``: welcome once, payment failed once per invoice, win-back with a code.

    Any other template is sent as asked (a broken policy's, for the invariants to catch).
    """

    name = "email"
    action_kinds = frozenset({SendEmail.kind})

    async def apply(self, action: Action, key: str) -> Outcome:
        params, customer = action.params, action.target.name
        row = self._world.rows.get(customer)
        if not isinstance(params, SendEmail) or row is None:
            return Outcome.failure(f"email cannot send {params!r}", kind=ErrorKind.TERMINAL)
        held = _held(params.template, row)
        if held is not None:
            return Outcome.success(held)
        if params.template == "win_back" and row.discount_code is None:
            return Outcome.failure(
                "no discount to offer: create_discount first",
                kind=ErrorKind.TERMINAL,
                code="NoDiscount",
            )

        def send() -> str:
            self._world.send(customer, params.template, self._clock.now())
            return f"{params.template} email sent"

        return await self._call(action, key, send)


def _fresh_discount(row: Row, now: datetime, valid: timedelta) -> bool:
    """As the real ``fresh_discount``: a code made since the last win-back, not yet expired."""
    made = row.discount_at
    if made is None or row.discount_code is None:
        return False
    return (row.reengaged_at is None or made > row.reengaged_at) and now - made < valid


def _held(template: str, row: Row) -> str | None:
    """Why the row says the message is sent already or not due (as the real mailer reads it)."""
    if template == "welcome":
        return "already applied: welcome email sent before" if row.welcomed else None
    if template == "payment_failed":
        return _dunning_held(row)
    return _win_back_held(row) if template == "win_back" else None


def _dunning_held(row: Row) -> str | None:
    if row.unpaid_invoice is None:
        return "not sent: no unpaid invoice any more"
    if row.dunned_invoice == row.unpaid_invoice:
        return f"already applied: payment failed email sent for {row.unpaid_invoice}"
    return None


def _win_back_held(row: Row) -> str | None:
    if row.opted_out:
        return "not sent: the customer opted out of marketing email"
    if row.status in CANCELLED:
        return "not sent: the customer's subscription is cancelled"
    sent, offered = row.reengaged_at, row.discount_at
    if sent is not None and (offered is None or sent >= offered):
        return "already applied: win-back email sent for this discount"
    return None


def customer_actuators(
    world: SimulatedCustomers, clock: Clock, api: SimulatedProvider
) -> list[SimulatedCustomersSensor | SimulatedStripe | SimulatedMailer]:
    return [
        SimulatedCustomersSensor(world, clock, api),
        SimulatedStripe(world, clock, api),
        SimulatedMailer(world, clock, api),
    ]
