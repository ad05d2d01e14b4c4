"""The simulated customers' rows, their witnesses' records, and the seeded scenario of their lives.

Used by the world (`jarvis.simulation.customers`), which holds the rows and
applies the scenario's changes as their time comes, and by the customer
invariants (`jarvis.simulation.invariant_customers`), which read the records.
The scenario is drawn from its own seeded stream before the run starts, so the
default run's streams (and its pinned digests) never see it:

- half the customers were there before the run (signed up 10 to 400 days
  earlier, already onboarded, some already opted out or won back within the
  last 60 days); the other half sign up over the run, on ``free`` (half),
  ``starter``, ``pro`` or ``team`` (yearly); a paid plan is ``active``;
- activity: each customer uses the product at their own daily rate, and about
  a third stop for good, up to 45 days before the run or during it (activity
  that fades: quiet 30 days is high churn risk);
- upgrades and downgrades of paid customers, and cancellations;
- failed payments as Stripe's webhooks set them: ``past_due`` with an unpaid
  invoice, then later in the run paid (``active``, no unpaid invoice) or
  ``unpaid`` (Stripe gave up), and an unpaid one sometimes paid after all;
- marketing opt-outs.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from jarvis.actuators.customers.table import CustomerRow

__all__ = ["AccessChange", "Change", "Row", "Sent", "StripeCall", "draw"]

PAID = ("starter", "pro", "team")


@dataclass
class Row:
    """One customer as the product's table holds it (the email address is made up)."""

    id: str
    plan: str
    signed_up_at: datetime
    status: str | None
    last_active_at: datetime
    rate: int = 0
    """Requests per active day (the usage table's rows)."""
    stripe_id: str | None = None
    welcomed: bool = False
    access: bool = False
    opted_out: bool = False
    stopped_at: datetime | None = None
    """When the customer stops using the product (activity that fades); None: never."""
    unpaid_invoice: str | None = None
    dunned_invoice: str | None = None
    reengaged_at: datetime | None = None
    discount_at: datetime | None = None
    discount_code: str | None = None

    def sensor_row(self, now: datetime) -> CustomerRow:
        """The row as the real sensor reads it; activity comes beside it (the usage table)."""
        return CustomerRow(
            id=self.id,
            plan=self.plan,
            signed_up_at=self.signed_up_at,
            billing=self.stripe_id is not None,
            welcomed=self.welcomed,
            access=self.access,
            opted_out=self.opted_out,
            subscription_status=self.status,
            updated_at=now,
            unpaid_invoice=self.unpaid_invoice,
            dunned_invoice=self.dunned_invoice,
            reengaged_at=self.reengaged_at,
            discount_at=self.discount_at,
        )


@dataclass(frozen=True, slots=True)
class Sent:
    """A message the simulated mailer accepted, with what the world knew when it went."""

    at: datetime
    customer: str
    template: str
    opted_out: bool
    about: str = ""
    """The invoice (payment failed) or the discount code (win-back) the message is about."""
    status: str | None = None
    """The customer's subscription status when it went."""
    previous: datetime | None = None
    """The row's last win-back before this one (it may predate the run)."""


@dataclass(frozen=True, slots=True)
class StripeCall:
    """A request the simulated Stripe received."""

    at: datetime
    customer: str
    method: str
    idempotency_key: str | None


@dataclass(frozen=True, slots=True)
class AccessChange:
    """Dashboard access granted or revoked, with the subscription status at that moment."""

    at: datetime
    customer: str
    granted: bool
    status: str | None


@dataclass(order=True, frozen=True, slots=True)
class Change:
    at: datetime
    seq: int
    customer: str = field(compare=False)
    what: str = field(compare=False)
    plan: str | None = field(default=None, compare=False)
    rate: int = field(default=0, compare=False)


def draw(seed: int, count: int, start: datetime, days: float) -> tuple[list[Row], list[Change]]:
    """The customers already there at ``start``, and every change to come, latest first."""
    rng = random.Random(f"{seed}:customers")  # noqa: S311 -- a reproducible simulation
    end = start + timedelta(days=days)
    rows: list[Row] = []
    changes: list[Change] = []

    def plan(
        at: datetime, customer: str, what: str, new_plan: str | None = None, rate: int = 0
    ) -> None:
        changes.append(Change(at, len(changes), customer, what, new_plan, rate))

    for n in range(count):
        cid = f"c{n:05d}"
        paid = rng.random() < 0.5
        name = rng.choice(PAID) if paid else "free"
        rate = rng.randint(5, 200)
        if rng.random() < 0.5:
            at = start - timedelta(days=rng.uniform(10, 400))
            rows.append(_onboarded(cid, name, at, rate, n))
            row = rows[-1]
            row.opted_out = rng.random() < 0.1
            if rng.random() < 0.15:
                row.reengaged_at = start - timedelta(days=rng.uniform(1, 60))
            if rng.random() < 0.35:
                row.stopped_at = max(at, start - timedelta(days=rng.uniform(0, 45)))
                row.last_active_at = row.stopped_at
        else:
            at = start + (end - start) * rng.random()
            plan(at, cid, "sign_up", name, rate)
            if rng.random() < 0.35:
                plan(at + (end - at) * rng.random(), cid, "stop")
        if rng.random() < 0.1:
            plan(at + (end - max(at, start)) * rng.random(), cid, "opt_out")
        if paid:
            _billing(rng, plan, cid, max(at, start), end)
    changes.sort(reverse=True)
    return rows, changes


def _onboarded(cid: str, plan: str, at: datetime, rate: int, n: int) -> Row:
    status = None if plan == "free" else "active"
    row = Row(cid, plan, at, status, at, rate=rate, stripe_id=f"cus_old{n:06d}")
    row.welcomed = row.access = True
    return row


def _billing(
    rng: random.Random, plan: Callable[..., None], cid: str, at: datetime, end: datetime
) -> None:
    """A paid customer's subscription over the run, as Stripe's webhooks will tell it."""
    roll = rng.random()
    later = at + (end - at) * rng.random()
    if roll < 0.12:
        plan(later, cid, "change", rng.choice(PAID))
    elif roll < 0.32:
        plan(later, cid, "payment_failed")
        settled = later + (end - later) * rng.random()
        gave_up = rng.random() < 0.5
        plan(settled, cid, "unpaid" if gave_up else "paid")
        if gave_up and rng.random() < 0.3:
            plan(settled + (end - settled) * rng.random(), cid, "paid")
    elif roll < 0.38:
        plan(later, cid, "cancel")
