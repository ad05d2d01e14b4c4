"""The simulated customers' actuators: the sensor, Stripe and the mailer, over the world.

Built by the harness (`jarvis.simulation.harness`) in place of the ``access``,
``stripe`` and ``email`` providers of the registry, with the same names,
scheme and action kinds, so the composition root routes the onboarding
policy's actions (and any other policy's ``send_email``) to them exactly as it
would to the real ones. Every apply goes through the simulated provider's API
(`SimulatedProvider.call`): its faults strike customers too, and its witness
log orders each Stripe call and each message against the operator's
kill-switch flips. Like the real actuators, each answers "already applied"
when the world's row says the step is done, and Stripe receives the action's
idempotency key, which the simulated Stripe records with the call.
"""

from __future__ import annotations

from collections.abc import Sequence

from jarvis.actuators.base import Scope
from jarvis.model import (
    CUSTOMER_SCHEME,
    Action,
    Clock,
    CreateBillingCustomer,
    ErrorKind,
    GrantAccess,
    Outcome,
    ResourceState,
    SendEmail,
)
from jarvis.simulation.customers import SimulatedCustomers
from jarvis.simulation.provider import SimulatedProvider

__all__ = ["customer_actuators"]


class _Base:
    provider = CUSTOMER_SCHEME

    def __init__(self, world: SimulatedCustomers, clock: Clock, api: SimulatedProvider) -> None:
        self._world = world
        self._clock = clock
        self._api = api

    async def observe(self, _scope: Scope | None = None) -> Sequence[ResourceState]:
        return []

    async def aclose(self) -> None:
        """Nothing to release: the world lives in memory."""


class SimulatedCustomersSensor(_Base):
    """``customer://ID`` from the world's table; applies ``grant_access``."""

    name = "customers"
    action_kinds = frozenset({GrantAccess.kind})

    async def observe(self, _scope: Scope | None = None) -> Sequence[ResourceState]:
        now = self._clock.now()
        self._world.advance(now)
        return self._world.states(now)

    async def apply(self, action: Action, key: str) -> Outcome:
        customer = action.target.name

        def grant(_: Action) -> Outcome:
            self._world.grant_access(customer)
            return Outcome.success("dashboard access granted")

        return await self._api.call(action, key, grant)


class SimulatedStripe(_Base):
    """Applies ``create_billing_customer``, sending the key as Stripe's ``Idempotency-Key``."""

    name = "stripe"
    action_kinds = frozenset({CreateBillingCustomer.kind})

    async def apply(self, action: Action, key: str) -> Outcome:
        customer = action.target.name
        row = self._world.rows.get(customer)
        if row is None:
            return Outcome.failure(f"no customer {customer}", kind=ErrorKind.TERMINAL)
        if row.stripe_id is not None:
            return Outcome.success(f"already applied: {row.stripe_id}")

        def create(_: Action) -> Outcome:
            made = self._world.create_billing_customer(customer, key, self._clock.now())
            return Outcome.success(f"created {made}")

        return await self._api.call(action, key, create)


class SimulatedMailer(_Base):
    """Applies ``send_email`` for any template; the welcome email once per customer."""

    name = "email"
    action_kinds = frozenset({SendEmail.kind})

    async def apply(self, action: Action, key: str) -> Outcome:
        params, customer = action.params, action.target.name
        row = self._world.rows.get(customer)
        if not isinstance(params, SendEmail) or row is None:
            return Outcome.failure(f"email cannot send {params!r}", kind=ErrorKind.TERMINAL)
        if params.template == "welcome" and row.welcomed:
            return Outcome.success("already applied: welcome email sent before")

        def send(_: Action) -> Outcome:
            self._world.send(customer, params.template, self._clock.now())
            return Outcome.success(f"{params.template} email sent")

        return await self._api.call(action, key, send)


def customer_actuators(
    world: SimulatedCustomers, clock: Clock, api: SimulatedProvider
) -> list[SimulatedCustomersSensor | SimulatedStripe | SimulatedMailer]:
    return [
        SimulatedCustomersSensor(world, clock, api),
        SimulatedStripe(world, clock, api),
        SimulatedMailer(world, clock, api),
    ]
