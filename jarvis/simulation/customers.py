"""Simulated customers: an in-memory customers table whose life over the run is seeded.

Built by the harness (`jarvis.simulation.harness`) when `SimulationConfig.customers`
asks for some (``jarvis simulate --customers N``); off by default, so the
default run, its pinned digests and its cost do not change. The scenario
(`jarvis.simulation.customer_scenario`) says who was there before the run,
who signs up, whose activity fades, and what Stripe's webhooks will say.

The rows become ``customer://ID`` states through the real sensor's
`customer_state`, with this world as its activity source (last use and weekly
request counts, as the usage table would give them), so policies read exactly
what the daemon gives them. As the real sensor, a customer's state is rebuilt
only when its row or its activity moved, and every customer's when a week ends.
The simulated Stripe, mailer and access (`jarvis.simulation.customer_actuators`)
write back here what the real ones write to the table (Stripe customer,
discount code and stamp, ``welcomed``, ``dunned_invoice``, ``reengaged_at``,
access), and record each call with its idempotency key (Stripe), each message
with what the world knew when it went (the mailer) and each access change with
the subscription status then: the witnesses
`jarvis.simulation.invariant_customers` checks. MRR at the end is
`jarvis.model.revenue`'s, the daemon's arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jarvis.actuators.customers.activity import week_start
from jarvis.actuators.customers.sensor import customer_state
from jarvis.model import BookEntry, ResourceState, RevenueDay, Subscription, settle
from jarvis.policies.churn import ChurnRules, RiskLevel, assess
from jarvis.simulation.customer_scenario import AccessChange, Change, Row, Sent, StripeCall, draw

__all__ = ["SIM_PLANS", "AccessChange", "Sent", "SimulatedCustomers", "StripeCall"]

SIM_PLANS: dict[str, Any] = {
    "free": 0,
    "starter": 19,
    "pro": 49,
    "team": {"usd": 1200, "interval": "year"},
}
"""The simulation's plan prices (``[customers.plans]``), unless the configuration has some."""
WEEKS = 4
"""Complete weeks of counts in ``weekly_usage``, as ``[customers.activity] weeks``."""
_DAY = timedelta(days=1)
_WEEK = timedelta(days=7)


@dataclass
class SimulatedCustomers:
    """The table, the scenario still to come, and the witnesses' logs."""

    prices: dict[str, float]
    rows: dict[str, Row] = field(default_factory=dict)
    sends: list[Sent] = field(default_factory=list)
    stripe_calls: list[StripeCall] = field(default_factory=list)
    access_changes: list[AccessChange] = field(default_factory=list)
    discounts: int = 0
    """Discounts made (a replayed key makes none)."""
    changes: dict[str, int] = field(default_factory=dict)
    _plan: list[Change] = field(default_factory=list)
    _states: dict[str, ResourceState] = field(default_factory=dict)
    _dirty: set[str] = field(default_factory=set)
    """Rows changed since their state was last built: as the real sensor, unchanged
    customers are handed back as they were, so a tick costs what changed."""
    _drained: tuple[int, int, int] = (0, 0, 0)
    """How many sends, Stripe calls and access changes the checker has been fed."""
    _stripe_keys: dict[str, str] = field(default_factory=dict)
    """Idempotency key to the object it made: a replay returns the same one."""
    _invoices: int = 0
    _now: datetime | None = None

    @classmethod
    def scenario(
        cls, *, seed: int, count: int, start: datetime, days: float, prices: dict[str, float]
    ) -> SimulatedCustomers:
        """``count`` customers, about half there at ``start``, the rest signing up over ``days``."""
        rows, changes = draw(seed, count, start, days)
        return cls.of(rows, prices=prices, changes=changes)

    @classmethod
    def of(
        cls, rows: list[Row], *, prices: dict[str, float], changes: list[Change] | None = None
    ) -> SimulatedCustomers:
        """A world holding ``rows``, with ``changes`` (latest first) still to come."""
        world = cls(prices=prices, rows={row.id: row for row in rows}, _plan=changes or [])
        world._dirty.update(world.rows)
        return world

    def advance(self, now: datetime) -> None:
        """Apply every scenario change due by ``now``, and today's activity."""
        while self._plan and self._plan[-1].at <= now:
            self._apply(self._plan.pop())
        if self._now is not None and week_start(now) != week_start(self._now):
            self._dirty.update(self.rows)  # a week ended: every count moved
        self._now = now
        for row in self.rows.values():
            if row.stopped_at is None and now - row.last_active_at >= _DAY:
                row.last_active_at = now
                self._dirty.add(row.id)

    def _apply(self, change: Change) -> None:
        self.changes[change.what] = self.changes.get(change.what, 0) + 1
        self._dirty.add(change.customer)
        if change.what == "sign_up":
            plan = change.plan or "free"
            status = None if plan == "free" else "active"
            self.rows[change.customer] = Row(
                change.customer, plan, change.at, status, change.at, rate=change.rate
            )
            return
        row = self.rows[change.customer]
        if change.what == "stop":
            row.stopped_at = row.last_active_at = change.at
        elif change.what == "opt_out":
            row.opted_out = True
        elif change.what == "change" and row.status in ("active", "past_due"):
            row.plan = change.plan or row.plan
        elif change.what == "payment_failed" and row.status == "active":
            # invoice.payment_failed and customer.subscription.updated
            self._invoices += 1
            row.status, row.unpaid_invoice = "past_due", f"in_sim{self._invoices:06d}"
        elif change.what == "paid" and row.status in ("past_due", "unpaid"):
            row.status, row.unpaid_invoice = "active", None  # invoice.paid
        elif change.what == "unpaid" and row.status == "past_due":
            row.status = "unpaid"  # Stripe's retries ran out; the invoice stays open
        elif change.what == "cancel" and row.status is not None:
            row.status = "canceled"

    def states(self, now: datetime) -> list[ResourceState]:
        for customer in self._dirty:
            self._states[customer] = customer_state(self.rows[customer].sensor_row(now), now, self)
        self._dirty.clear()
        return list(self._states.values())

    # -- the activity source (`jarvis.actuators.customers.sensor.Activity`) --

    def last_active(self, customer_id: str) -> datetime | None:
        return self.rows[customer_id].last_active_at

    def weekly(self, customer_id: str) -> tuple[int, ...]:
        """Requests in each of the last complete weeks, oldest first: the rate per active day."""
        if self._now is None:
            return ()
        row = self.rows[customer_id]
        until = row.stopped_at or self._now
        this_week = week_start(self._now)
        counts = []
        for n in range(WEEKS, 0, -1):
            begin = this_week - n * _WEEK
            active = min(until, begin + _WEEK) - max(row.signed_up_at, begin)
            counts.append(max(0, int(row.rate * active / _DAY)))
        return tuple(counts)

    # -- what the simulated actuators do ------------------------------------

    def create_billing_customer(self, customer: str, key: str | None, now: datetime) -> str:
        """Stripe's ``POST /v1/customers``: a replayed key returns the customer it made."""
        stripe_id = self._stripe(customer, "customers.create", key, now, "cus_sim")
        self.rows[customer].stripe_id = stripe_id
        self._dirty.add(customer)
        return stripe_id

    def create_discount(self, customer: str, key: str | None, now: datetime) -> str:
        """A coupon, then a promotion code for it only this customer may redeem, as the real
        actuator makes them (the coupon's key is the action's with ``-coupon``); the code
        and its stamp are written to the row. A replayed key returns the code it made."""
        self._stripe(customer, "coupons.create", key and f"{key}-coupon", now, "co_sim")
        code = self._stripe(customer, "promotion_codes.create", key, now, "BACK-SIM")
        row = self.rows[customer]
        row.discount_code, row.discount_at = code, now
        self._dirty.add(customer)
        return code

    def _stripe(self, customer: str, method: str, key: str | None, now: datetime, kind: str) -> str:
        self.stripe_calls.append(StripeCall(now, customer, method, key))
        made = self._stripe_keys.get(key) if key else None
        if made is not None:
            return made
        made = f"{kind}{len(self.stripe_calls):06d}"
        if method == "promotion_codes.create":
            self.discounts += 1
        if key:
            self._stripe_keys[key] = made
        return made

    def send(self, customer: str, template: str, now: datetime) -> None:
        """A message accepted; the row records it as the real mailer does."""
        row = self.rows[customer]
        about = {"payment_failed": row.unpaid_invoice, "win_back": row.discount_code}
        self.sends.append(
            Sent(
                now,
                customer,
                template,
                row.opted_out,
                about=about.get(template) or "",
                status=row.status,
                previous=row.reengaged_at,
            )
        )
        if template == "welcome":
            row.welcomed = True
        elif template == "payment_failed":
            row.dunned_invoice = row.unpaid_invoice
        elif template == "win_back":
            row.reengaged_at = now
        self._dirty.add(customer)

    def set_access(self, customer: str, granted: bool, now: datetime) -> None:
        row = self.rows[customer]
        self.access_changes.append(AccessChange(now, customer, granted, row.status))
        row.access = granted
        self._dirty.add(customer)

    def drain(self) -> tuple[list[Sent], list[StripeCall], list[AccessChange]]:
        """The sends, Stripe calls and access changes since the last drain (the logs are kept)."""
        sends, calls, access = self._drained
        self._drained = (len(self.sends), len(self.stripe_calls), len(self.access_changes))
        return self.sends[sends:], self.stripe_calls[calls:], self.access_changes[access:]

    # -- the report ---------------------------------------------------------

    def revenue(self, now: datetime) -> RevenueDay:
        """MRR now, by the ledger's arithmetic (an empty book: only the totals mean much)."""
        subs = [Subscription(r.id, r.plan, r.status) for r in self.rows.values()]
        book: dict[str, BookEntry] = {}
        revenue, _ = settle(now.date(), subs, book, self.prices)
        return revenue

    def at_risk(self, now: datetime, rules: ChurnRules) -> dict[str, int]:
        """Customers at medium and high churn risk now, by the churn policy's own `assess`."""
        counts = {RiskLevel.MEDIUM.value: 0, RiskLevel.HIGH.value: 0}
        for state in self.states(now):
            if state.customer is not None:
                level = assess(state.customer, now, rules).level
                if level is not RiskLevel.LOW:
                    counts[level.value] += 1
        return counts

    def _restored(self) -> int:
        """Grants to a customer whose access was revoked earlier in the run."""
        revoked: set[str] = set()
        restored = 0
        for change in self.access_changes:
            if not change.granted:
                revoked.add(change.customer)
            elif change.customer in revoked:
                revoked.discard(change.customer)
                restored += 1
        return restored

    def as_dict(self, now: datetime, rules: ChurnRules) -> dict[str, Any]:
        by_template: dict[str, int] = {}
        for sent in self.sends:
            by_template[sent.template] = by_template.get(sent.template, 0) + 1
        revenue = self.revenue(now)
        return {
            "customers": len(self.rows),
            "sign_ups": self.changes.get("sign_up", 0),
            "changes": dict(sorted(self.changes.items())),
            "emails_by_template": dict(sorted(by_template.items())),
            "stripe_calls": len(self.stripe_calls),
            "discounts": self.discounts,
            "revocations": sum(1 for c in self.access_changes if not c.granted),
            "access_restored": self._restored(),
            "at_risk": self.at_risk(now, rules),
            "mrr_usd": round(revenue.mrr_usd, 2),
            "paying": revenue.paying,
            "by_status": dict(revenue.customers),
        }
