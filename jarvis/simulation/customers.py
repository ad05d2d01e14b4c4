"""Simulated customers: an in-memory customers table whose life over the run is seeded.

Built by the harness (`jarvis.simulation.harness`) when `SimulationConfig.customers`
asks for some (``jarvis simulate --customers N``); off by default, so the
default run, its pinned digests and its cost do not change. The scenario, drawn
from its own seeded stream before the run starts:

- sign-ups spread over the run, on ``free`` (half), ``starter``, ``pro`` or
  ``team`` (yearly); a paid plan's subscription is ``active`` from sign-up;
- activity: every customer is active at sign-up and daily after it, and about
  a third stop for good at some point (activity that fades);
- upgrades and downgrades of paid customers, and cancellations;
- failed payments: ``past_due``, then after three days either paid again
  (``active``) or ``unpaid`` (Stripe gave up);
- marketing opt-outs.

The rows become ``customer://ID`` states through the real sensor's
`customer_state`, so policies read exactly what the daemon gives them. The
simulated Stripe and mailer (`jarvis.simulation.customer_actuators`) write back
here as the real ones write back to the table, and record each call with its
idempotency key (Stripe) and each message with what the world knew when it
went (the mailer): the witnesses `jarvis.simulation.invariant_customers` checks.
MRR at the end is `jarvis.model.revenue`'s, the daemon's arithmetic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jarvis.actuators.customers.sensor import customer_state
from jarvis.actuators.customers.table import CustomerRow
from jarvis.model import BookEntry, ResourceState, RevenueDay, Subscription, settle

__all__ = ["SIM_PLANS", "Sent", "SimulatedCustomers", "StripeCall"]

SIM_PLANS: dict[str, Any] = {
    "free": 0,
    "starter": 19,
    "pro": 49,
    "team": {"usd": 1200, "interval": "year"},
}
"""The simulation's plan prices (``[customers.plans]``), unless the configuration has some."""
_PAID = ("starter", "pro", "team")
_PAYMENT_GRACE = timedelta(days=3)


@dataclass
class Row:
    """One customer as the product's table holds it (the email address is made up)."""

    id: str
    plan: str
    signed_up_at: datetime
    status: str | None
    last_active_at: datetime
    stripe_id: str | None = None
    welcomed: bool = False
    access: bool = False
    opted_out: bool = False
    stopped_at: datetime | None = None
    """When the customer stops using the product (activity that fades); None: never."""

    def sensor_row(self, now: datetime) -> CustomerRow:
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
        )


@dataclass(frozen=True, slots=True)
class Sent:
    """A message the simulated mailer accepted, with what the world knew when it went."""

    at: datetime
    customer: str
    template: str
    opted_out: bool


@dataclass(frozen=True, slots=True)
class StripeCall:
    """A request the simulated Stripe received."""

    at: datetime
    customer: str
    method: str
    idempotency_key: str | None


@dataclass(order=True, frozen=True, slots=True)
class _Change:
    at: datetime
    seq: int
    customer: str = field(compare=False)
    what: str = field(compare=False)
    plan: str | None = field(default=None, compare=False)


@dataclass
class SimulatedCustomers:
    """The table, the scenario still to come, and the witnesses' logs."""

    prices: dict[str, float]
    rows: dict[str, Row] = field(default_factory=dict)
    sends: list[Sent] = field(default_factory=list)
    stripe_calls: list[StripeCall] = field(default_factory=list)
    changes: dict[str, int] = field(default_factory=dict)
    _plan: list[_Change] = field(default_factory=list)
    _states: dict[str, ResourceState] = field(default_factory=dict)
    _dirty: set[str] = field(default_factory=set)
    """Rows changed since their state was last built: as the real sensor, unchanged
    customers are handed back as they were, so a tick costs what changed."""
    _drained: tuple[int, int] = (0, 0)
    """How many sends and Stripe calls the checker has been fed."""
    _stripe_keys: dict[str, str] = field(default_factory=dict)
    """Idempotency key to the Stripe customer it created: a replay returns the same one."""

    @classmethod
    def scenario(
        cls, *, seed: int, count: int, start: datetime, days: float, prices: dict[str, float]
    ) -> SimulatedCustomers:
        """``count`` customers signing up over ``days`` from ``start``, their lives seeded."""
        rng = random.Random(f"{seed}:customers")  # noqa: S311 -- a reproducible simulation
        span = timedelta(days=days)
        world = cls(prices=prices)
        seq = 0

        def plan(at: datetime, customer: str, what: str, new_plan: str | None = None) -> None:
            nonlocal seq
            seq += 1
            world._plan.append(_Change(at, seq, customer, what, new_plan))

        for n in range(count):
            cid = f"c{n:05d}"
            at = start + span * rng.random()
            paid = rng.random() < 0.5
            plan(at, cid, "sign_up", rng.choice(_PAID) if paid else "free")
            left = start + span - at
            if rng.random() < 0.35:
                plan(at + left * rng.random(), cid, "stop")
            if rng.random() < 0.1:
                plan(at + left * rng.random(), cid, "opt_out")
            if not paid:
                continue
            roll = rng.random()
            later = at + left * rng.random()
            if roll < 0.12:
                plan(later, cid, "change", rng.choice(_PAID))
            elif roll < 0.2:
                plan(later, cid, "payment_failed")
                plan(later + _PAYMENT_GRACE, cid, "paid" if rng.random() < 0.5 else "unpaid")
            elif roll < 0.26:
                plan(later, cid, "cancel")
        world._plan.sort(reverse=True)
        return world

    def advance(self, now: datetime) -> None:
        """Apply every scenario change due by ``now``, and today's activity."""
        while self._plan and self._plan[-1].at <= now:
            self._apply(self._plan.pop())
        for row in self.rows.values():
            if row.stopped_at is None and now - row.last_active_at >= timedelta(days=1):
                row.last_active_at = now

    def _apply(self, change: _Change) -> None:
        self.changes[change.what] = self.changes.get(change.what, 0) + 1
        self._dirty.add(change.customer)
        if change.what == "sign_up":
            plan = change.plan or "free"
            status = None if plan == "free" else "active"
            self.rows[change.customer] = Row(change.customer, plan, change.at, status, change.at)
            return
        row = self.rows[change.customer]
        if change.what == "stop":
            row.stopped_at = row.last_active_at = change.at
        elif change.what == "opt_out":
            row.opted_out = True
        elif change.what == "change" and row.status in ("active", "past_due"):
            row.plan = change.plan or row.plan
        elif change.what == "payment_failed" and row.status == "active":
            row.status = "past_due"
        elif change.what in ("paid", "unpaid") and row.status == "past_due":
            row.status = "active" if change.what == "paid" else "unpaid"
        elif change.what == "cancel" and row.status is not None:
            row.status = "canceled"

    def states(self, now: datetime) -> list[ResourceState]:
        for customer in self._dirty:
            self._states[customer] = customer_state(self.rows[customer].sensor_row(now), now)
        self._dirty.clear()
        return list(self._states.values())

    # -- what the simulated actuators do ------------------------------------

    def create_billing_customer(self, customer: str, key: str | None, now: datetime) -> str:
        """Stripe's ``POST /v1/customers``: a replayed key returns the customer it made."""
        self.stripe_calls.append(StripeCall(now, customer, "customers.create", key))
        made = self._stripe_keys.get(key) if key else None
        stripe_id = made or f"cus_sim{len(self._stripe_keys) + 1:06d}"
        if key:
            self._stripe_keys[key] = stripe_id
        self.rows[customer].stripe_id = stripe_id
        self._dirty.add(customer)
        return stripe_id

    def send(self, customer: str, template: str, now: datetime) -> None:
        row = self.rows[customer]
        self.sends.append(Sent(now, customer, template, row.opted_out))
        if template == "welcome":
            row.welcomed = True
            self._dirty.add(customer)

    def grant_access(self, customer: str) -> None:
        self.rows[customer].access = True
        self._dirty.add(customer)

    def drain(self) -> tuple[list[Sent], list[StripeCall]]:
        """The sends and Stripe calls since the last drain (the logs themselves are kept)."""
        sends, calls = self._drained
        self._drained = (len(self.sends), len(self.stripe_calls))
        return self.sends[sends:], self.stripe_calls[calls:]

    # -- the report ---------------------------------------------------------

    def revenue(self, now: datetime) -> RevenueDay:
        """MRR now, by the ledger's arithmetic (an empty book: only the totals mean much)."""
        subs = [Subscription(r.id, r.plan, r.status) for r in self.rows.values()]
        book: dict[str, BookEntry] = {}
        revenue, _ = settle(now.date(), subs, book, self.prices)
        return revenue

    def as_dict(self, now: datetime) -> dict[str, Any]:
        by_template: dict[str, int] = {}
        for sent in self.sends:
            by_template[sent.template] = by_template.get(sent.template, 0) + 1
        revenue = self.revenue(now)
        quiet = sum(1 for r in self.rows.values() if now - r.last_active_at >= timedelta(days=14))
        return {
            "sign_ups": self.changes.get("sign_up", 0),
            "changes": dict(sorted(self.changes.items())),
            "emails_by_template": dict(sorted(by_template.items())),
            "stripe_calls": len(self.stripe_calls),
            "inactive_14_days": quiet,
            "mrr_usd": round(revenue.mrr_usd, 2),
            "paying": revenue.paying,
            "by_status": dict(revenue.customers),
        }
