"""Monthly recurring revenue: one customer's MRR, and how a day's MRR moved. Pure.

Shared by the revenue ledger (`jarvis.store.revenue`, which keeps the book in
SQL and stores one `RevenueDay` per UTC day), the daemon's revenue keeper
(`jarvis.loop.revenue`, gauges) and the simulation's customers
(`jarvis.simulation.customers`, an in-memory book), so the daemon and the
simulation count revenue the same way.

A customer's MRR is its plan's monthly price (``[customers.plans]``, yearly
prices already divided by 12) while its subscription is ``active`` or
``past_due`` (Stripe still collects a past-due invoice through its retries), and
zero otherwise: free plans, trials, ``unpaid``, ``canceled`` and customers with
no subscription. A paying customer on a plan without a price counts as
``unpriced`` and at zero, so a missing price shows in the report rather than as
invented revenue.

Movements compare each customer's MRR at the day's settlement with its MRR when
the day began (the last settlement of an earlier day), per customer:

- from zero to more: **new**. A reactivation (a customer who paid, stopped,
  and pays again) is new MRR too: expansion and contraction are kept for
  customers who paid on both sides, so "expansion" always means an existing
  payer spends more. ChartMogul's separate "reactivation" would be a fifth
  gauge that no report here reads;
- up: **expansion** (upgrade), by the difference;
- down but not to zero: **contraction** (downgrade), by the difference;
- to zero: **churned** (cancel, unpaid, deleted), by all it paid.

So ``mrr(day) = mrr(day before) + new + expansion - contraction - churned``
holds for every settled day. Changes within one day net out: an upgrade and a
downgrade back before the settlement are no movement.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum

__all__ = [
    "PAYING_STATUSES",
    "BookEntry",
    "Movement",
    "RevenueDay",
    "Subscription",
    "customer_mrr",
    "movement",
    "settle",
]

PAYING_STATUSES = frozenset({"active", "past_due"})
"""Subscription statuses that count toward MRR."""


class Movement(StrEnum):
    NEW = "new"
    EXPANSION = "expansion"
    CONTRACTION = "contraction"
    CHURNED = "churned"


@dataclass(frozen=True, slots=True)
class Subscription:
    """One customer as revenue sees it: no personal data."""

    customer_id: str
    plan: str
    status: str | None


@dataclass(frozen=True, slots=True)
class BookEntry:
    """A customer's MRR since day ``since``, and what it was before that day."""

    mrr_usd: float
    since: date
    before_usd: float

    def baseline(self, day: date) -> float:
        """The customer's MRR when ``day`` began."""
        return self.before_usd if self.since == day else self.mrr_usd


@dataclass(frozen=True, slots=True)
class RevenueDay:
    """MRR at a day's settlement and how it moved since the day began."""

    day: date
    mrr_usd: float = 0.0
    moved: Mapping[Movement, float] = field(default_factory=dict)
    customers: Mapping[str, int] = field(default_factory=dict)
    """Customers by subscription status (``none`` for no subscription)."""
    paying: int = 0
    unpriced: int = 0

    def usd(self, kind: Movement) -> float:
        return self.moved.get(kind, 0.0)

    @property
    def net_usd(self) -> float:
        m = Movement
        return (
            self.usd(m.NEW) + self.usd(m.EXPANSION) - self.usd(m.CONTRACTION) - self.usd(m.CHURNED)
        )

    @property
    def customer_count(self) -> int:
        return sum(self.customers.values())


def customer_mrr(plan: str, status: str | None, prices: Mapping[str, float]) -> float:
    """The customer's monthly recurring revenue in USD (see the module docstring)."""
    if status not in PAYING_STATUSES:
        return 0.0
    return prices.get(plan, 0.0)


def movement(before: float, after: float) -> tuple[Movement, float] | None:
    """How one customer's MRR moved from ``before`` to ``after``; None when it did not."""
    if after == before:
        return None
    if before <= 0:
        return Movement.NEW, after
    if after <= 0:
        return Movement.CHURNED, before
    if after > before:
        return Movement.EXPANSION, after - before
    return Movement.CONTRACTION, before - after


def _advance(entry: BookEntry | None, after: float, day: date) -> BookEntry | None:
    if entry is None:
        return BookEntry(after, day, 0.0) if after > 0 else None
    if entry.mrr_usd == after:
        return entry
    if entry.since == day:
        return replace(entry, mrr_usd=after)
    return BookEntry(after, day, entry.mrr_usd)


def settle(
    day: date,
    subscriptions: Iterable[Subscription],
    book: Mapping[str, BookEntry],
    prices: Mapping[str, float],
) -> tuple[RevenueDay, dict[str, BookEntry]]:
    """The day's revenue and the book entries that change (settling a day twice is idempotent).

    A customer in the book but not among ``subscriptions`` (deleted) is at zero.
    Raises ValueError for a day before one already settled: the customers table
    holds only the present, so a past day cannot be settled again.
    """
    latest = max((e.since for e in book.values()), default=day)
    if day < latest:
        raise ValueError(f"revenue of {day} cannot be settled after {latest}")
    moved: dict[Movement, float] = {}
    statuses: Counter[str] = Counter()
    changed: dict[str, BookEntry] = {}
    total, paying, unpriced = 0.0, 0, 0
    seen: set[str] = set()

    def account(customer_id: str, after: float) -> None:
        entry = book.get(customer_id)
        step = movement(0.0 if entry is None else entry.baseline(day), after)
        if step is not None:
            moved[step[0]] = moved.get(step[0], 0.0) + step[1]
        advanced = _advance(entry, after, day)
        if advanced is not None and advanced != entry:
            changed[customer_id] = advanced

    for sub in subscriptions:
        seen.add(sub.customer_id)
        statuses[sub.status or "none"] += 1
        after = customer_mrr(sub.plan, sub.status, prices)
        if sub.status in PAYING_STATUSES:
            paying += 1
            unpriced += sub.plan not in prices
        total += after
        account(sub.customer_id, after)
    for customer_id in book.keys() - seen:
        account(customer_id, 0.0)
    revenue = RevenueDay(
        day=day,
        mrr_usd=total,
        moved={kind: moved[kind] for kind in Movement if kind in moved},
        customers=dict(sorted(statuses.items())),
        paying=paying,
        unpriced=unpriced,
    )
    return revenue, changed
