"""Customers as resources: the `Customer` facet and the onboarding action kinds.

The customers sensor (`jarvis.actuators.customers`) reads the ``customers``
table into one `ResourceState` per customer, ``customer://ID`` (kind
``customer``), whose ``customer`` facet is this; the onboarding policy
(`jarvis.policies.onboarding`) and the churn policy (`jarvis.policies.churn`)
read only the facet. The facet holds no
personal data (no e-mail address, no name): it is recorded in
``resource.changed`` events, and the event log must carry none. Actuators read
the address from the table when they send, by customer id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

__all__ = [
    "CUSTOMER_KIND",
    "CUSTOMER_SCHEME",
    "CreateBillingCustomer",
    "CreateDiscount",
    "Customer",
    "GrantAccess",
    "RevokeAccess",
    "SendEmail",
]

CUSTOMER_SCHEME = "customer"
"""The resource scheme of customers: ``customer://ID``."""
CUSTOMER_KIND = "customer"
WITHHOLD_ACCESS = frozenset({"unpaid", "canceled"})
"""Subscription statuses under which a customer has no dashboard access."""


@dataclass(frozen=True, slots=True)
class Customer:
    """What Jarvis knows of one customer, without personal data."""

    plan: str
    signed_up_at: datetime
    billing: bool
    """Whether the customer has a Stripe customer (its id stays in the table)."""
    welcomed: bool
    """Whether the welcome email went out."""
    access: bool
    """Whether the customer may use the dashboard."""
    opted_out: bool
    """Marketing email refused; the welcome email is transactional and still goes."""
    subscription_status: str | None = None
    """Stripe's status of the customer's subscription, as its webhooks last said (None: none)."""
    unpaid_invoice: str | None = None
    """The Stripe id of the open invoice whose payment failed; None once it is paid."""
    dunned_invoice: str | None = None
    """The invoice the last ``payment_failed`` email went out for."""

    last_active_at: datetime | None = None
    """The customer's last use of the product: the later of the row's column and the usage."""
    weekly_usage: tuple[int, ...] = ()
    """Requests in each of the last complete weeks, oldest first (the usage table's counts)."""
    reengaged_at: datetime | None = None
    """When the last win-back email went out."""
    discount_at: datetime | None = None
    """When the last one-time discount was made for the customer (its code stays in the table)."""

    @property
    def access_withheld(self) -> bool:
        """Stripe has given up on the subscription: no dashboard until it is paid or renewed.

        ``past_due`` keeps access: Stripe is still retrying the charge (Smart Retries).
        """
        return self.subscription_status in WITHHOLD_ACCESS

    def stage(self) -> str:
        """The one-line summary that changes when onboarding moves or the customer opts out:
        the state's ``detail``, so either is a ``resource.changed`` event."""
        return (
            f"plan={self.plan} billing={_yes(self.billing)} welcomed={_yes(self.welcomed)} "
            f"access={_yes(self.access)} marketing={'off' if self.opted_out else 'on'}"
        )

    def record(self, out: dict[str, Any]) -> None:
        out["plan"] = self.plan
        out["signed_up_at"] = self.signed_up_at.isoformat()
        out["billing"] = self.billing
        out["welcomed"] = self.welcomed
        out["access"] = self.access
        out["opted_out"] = self.opted_out
        out["subscription_status"] = self.subscription_status
        out["unpaid_invoice"] = self.unpaid_invoice
        out["dunned_invoice"] = self.dunned_invoice
        out["last_active_at"] = _iso(self.last_active_at)
        out["weekly_usage"] = list(self.weekly_usage)
        out["reengaged_at"] = _iso(self.reengaged_at)
        out["discount_at"] = _iso(self.discount_at)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _yes(value: bool) -> str:
    return "yes" if value else "no"


@dataclass(frozen=True, slots=True)
class CreateBillingCustomer:
    """Create the customer's Stripe customer (owned by the ``stripe`` provider)."""

    kind: ClassVar[str] = "create_billing_customer"


@dataclass(frozen=True, slots=True)
class CreateDiscount:
    """Make a one-time discount only this customer can redeem (owned by the ``stripe`` provider).

    A Stripe coupon and a promotion code restricted to the customer's Stripe
    customer, redeemable once; the code is written to the customer's row, where
    the ``win_back`` email reads it, and never into an event.
    """

    kind: ClassVar[str] = "create_discount"
    percent_off: int
    valid_days: int


@dataclass(frozen=True, slots=True)
class SendEmail:
    """Send the customer the email ``template`` (owned by the ``email`` provider)."""

    kind: ClassVar[str] = "send_email"
    template: str


@dataclass(frozen=True, slots=True)
class GrantAccess:
    """Let the customer into the dashboard (owned by the ``access`` provider)."""

    kind: ClassVar[str] = "grant_access"


@dataclass(frozen=True, slots=True)
class RevokeAccess:
    """Shut the customer out of the dashboard (owned by the ``access`` provider)."""

    kind: ClassVar[str] = "revoke_access"
