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
    "SendEmail",
]

CUSTOMER_SCHEME = "customer"
"""The resource scheme of customers: ``customer://ID``."""
CUSTOMER_KIND = "customer"


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
    last_active_at: datetime | None = None
    """The customer's last use of the product: the later of the row's column and the usage."""
    weekly_usage: tuple[int, ...] = ()
    """Requests in each of the last complete weeks, oldest first (the usage table's counts)."""
    reengaged_at: datetime | None = None
    """When the last win-back email went out."""
    discount_at: datetime | None = None
    """When the last one-time discount was made for the customer (its code stays in the table)."""

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
